package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// recentBlocks remembers the verdicts of the last blocked requests, with
// no request content, so that explain works with capture off.
type recentBlocks struct {
	mu    sync.Mutex
	max   int
	order []string
	byID  map[string]admin.Explanation
}

func newRecentBlocks(max int) *recentBlocks {
	return &recentBlocks{max: max, byID: map[string]admin.Explanation{}}
}

// BlockBody implements router.BlockObserver: verdicts only, no body.
func (r *recentBlocks) BlockBody() int { return 0 }

// ObserveBlock implements router.BlockObserver.
func (r *recentBlocks) ObserveBlock(b verdict.Block) {
	q := b.Request
	path, _, _ := strings.Cut(q.URI, "?")
	e := admin.Explanation{
		ID: q.ID, Time: b.Time.UTC(), Arm: b.Record.Arm.String(), Version: b.Version,
		Method: q.Method, Host: q.Host, Path: path, ClientIP: q.ClientIP, Status: b.Record.Status,
		InterruptedBy: b.Record.Verdict.RuleID, Score: b.Record.Verdict.InboundScore,
	}
	for _, m := range b.Record.Verdict.Rules {
		e.Rules = append(e.Rules, admin.ExplainedRule{ID: m.ID, Message: m.Message, Targets: m.Targets, Omitted: m.Omitted})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[q.ID]; !ok {
		r.order = append(r.order, q.ID)
	}
	r.byID[q.ID] = e
	for len(r.order) > r.max {
		delete(r.byID, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recentBlocks) get(id string) (admin.Explanation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[id]
	e.Rules = slices.Clone(e.Rules) // Explain annotates its copy
	return e, ok
}

// Explain implements admin.Explainer: the verdict of a recent block, its
// capture if kept, and what the ruleset that judged it says of each rule
// (while that ruleset still serves).
func (s *Node) Explain(id string) (admin.Explanation, error) {
	e, known := s.blocks.get(id)
	if s.capture != nil {
		rec, err := s.capture.Get(id)
		switch {
		case err == nil:
			if !known {
				e = explanationOf(rec)
				known = true
			}
			e.Capture = &rec
		case !errors.Is(err, capture.ErrNotFound):
			return admin.Explanation{}, err
		}
	}
	if !known {
		hint := "the last 1,000 blocks are kept in memory"
		if s.capture == nil {
			hint += "; turn capture.enabled on to keep them across restarts, with the requests"
		}
		return admin.Explanation{}, fmt.Errorf("request %q: no blocked request with that ID (%s): %w", id, hint, admin.ErrNotFound)
	}
	snap := s.router.Snapshot()
	for _, rs := range []*ruleset.Ruleset{snap.Baseline, snap.Candidate} {
		if rs == nil || rs.Version != e.Version {
			continue
		}
		for i := range e.Rules {
			if r, ok := rs.Rule(e.Rules[i].ID); ok {
				e.Rules[i].Tags, e.Rules[i].Paranoia, e.Rules[i].File, e.Rules[i].Line = r.Tags, r.Paranoia, r.File, r.Line
			}
		}
	}
	return e, nil
}

// explanationOf rebuilds a block's explanation from its capture, after a
// restart emptied the memory.
func explanationOf(rec capture.Record) admin.Explanation {
	path, _, _ := strings.Cut(rec.URI, "?")
	e := admin.Explanation{ID: rec.ID, Time: rec.Time, Arm: rec.Arm, Version: rec.Version, Method: rec.Method,
		Host: rec.Host, Path: path, ClientIP: rec.ClientIP, Status: rec.Status,
		InterruptedBy: rec.Verdict.RuleID, Score: rec.Verdict.InboundScore}
	for _, m := range rec.Verdict.Rules {
		e.Rules = append(e.Rules, admin.ExplainedRule{ID: m.ID, Message: m.Message, Targets: m.Targets, Omitted: m.Omitted})
	}
	return e
}

// ServedBaseline implements admin.Rulesets: the bundle of the baseline in
// service, from which `wafcanary tune` writes a candidate.
func (s *Node) ServedBaseline() (ruleset.Bundle, error) {
	snap := s.router.Snapshot()
	if snap.Baseline == nil {
		return ruleset.Bundle{}, errors.New("no baseline in service")
	}
	return snap.Baseline.Bundle()
}
