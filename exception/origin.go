package exception

import (
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
)

// Origin is where an exception came from: the earliest kept baseline
// whose text holds it, and the change that put that baseline in service.
type Origin struct {
	// Baseline is that baseline's version, Since when it began to serve,
	// By the decision that put it in service: promote, undo, reload.
	Baseline string    `json:"baseline"`
	Since    time.Time `json:"since"`
	By       string    `json:"by"`
	// Actor, Reason and Time are who asked for the change and why: for a
	// promotion, the start of the rollout it promoted (who proposed the
	// exception); otherwise the entry of By itself. Empty when the
	// journal no longer holds it, or with BeforeHistory.
	Actor  string    `json:"actor,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time,omitzero"`
	// PromotedBy is who promoted it, when By is promote.
	PromotedBy string `json:"promoted_by,omitempty"`
	// BeforeHistory is set when the oldest baseline kept holds it already:
	// it came in before the kept history, which cannot say how.
	BeforeHistory bool `json:"before_history"`
}

// Kept is a baseline kept for undo, as Trace reads it: the state's
// entry and its own directives (nil when its bundle cannot be read, which
// Trace passes over).
type Kept struct {
	Version    string
	Since      time.Time
	By         string
	Directives []ruleset.Directive
}

// Change is a journal entry, as Trace reads it.
type Change struct {
	Time                  time.Time
	Actor, Action, Reason string
	Baseline, Candidate   string
}

// Journal actions Trace looks for.
const (
	actionStart   = "start"
	actionPromote = "promote"
)

// Trace sets the Origin of each exception in list from the baselines
// kept, oldest first, and the journal, oldest first. An exception no kept
// baseline holds (the list is not of the one that serves) keeps a nil
// Origin.
func Trace(list []Exception, kept []Kept, journal []Change) {
	texts := make([]map[string]bool, len(kept))
	for i, k := range kept {
		if k.Directives == nil {
			continue
		}
		texts[i] = map[string]bool{}
		for _, rule := range ruleset.Chains(k.Directives) {
			if len(ruleset.ExclusionsOf(rule)) > 0 {
				texts[i][textOf(rule)] = true
			}
		}
	}
	for n := range list {
		e := &list[n]
		for i, k := range kept {
			if !texts[i][e.text] {
				continue
			}
			o := &Origin{Baseline: k.Version, Since: k.Since, By: k.By, BeforeHistory: i == firstRead(texts)}
			if !o.BeforeHistory {
				o.find(journal)
			}
			e.Origin = o
			break
		}
	}
}

// firstRead is the index of the oldest kept baseline that could be read.
func firstRead(texts []map[string]bool) int {
	for i, t := range texts {
		if t != nil {
			return i
		}
	}
	return -1
}

// find fills who and why from the journal: the last entry of o.By that
// put o.Baseline in service and, for a promotion, the last start of that
// candidate before it.
func (o *Origin) find(journal []Change) {
	for i := len(journal) - 1; i >= 0; i-- {
		c := journal[i]
		if c.Action != o.By || c.Baseline != o.Baseline {
			continue
		}
		o.Actor, o.Reason, o.Time = c.Actor, c.Reason, c.Time
		if o.By != actionPromote {
			return
		}
		o.PromotedBy = c.Actor
		for j := i - 1; j >= 0; j-- {
			if s := journal[j]; s.Action == actionStart && s.Candidate == o.Baseline {
				o.Actor, o.Reason, o.Time = s.Actor, s.Reason, s.Time
				return
			}
		}
		return
	}
}
