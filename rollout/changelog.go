package rollout

import (
	"slices"
	"time"
)

// Change is one change that reached production, read from the journal:
// a promotion, an undo, or a rollback after the candidate had served
// clients. It says what changed, who proposed and who approved it, under
// which ticket and why, what the evidence measured before it, and how to
// back it out.
type Change struct {
	Time time.Time `json:"time"`
	// Kind is ActionPromote, ActionUndo or ActionRollback.
	Kind Action `json:"kind"`
	// From is the baseline that served before; To the one that serves
	// after (From again for a rollback, which changes no baseline).
	From string `json:"from_version"`
	To   string `json:"to_version"`
	// Candidate is the rollout's candidate, for a promotion or a rollback.
	Candidate string `json:"candidate_version,omitempty"`
	// ProposedBy started the rollout, with Rationale, its reason; for an
	// undo, whoever asked for it.
	ProposedBy string `json:"proposed_by"`
	Rationale  string `json:"rationale"`
	// ApprovedBy are the people who moved the rollout on by hand (each
	// promote), in order; empty when the evidence alone promoted it.
	ApprovedBy []string `json:"approved_by,omitempty"`
	// By took the change, and Reason is its journal entry's reason (for
	// the controller's own promotion, the evidence's summary).
	By     string `json:"by"`
	Reason string `json:"reason"`
	// Tickets are the change tickets the rollout's actions named, first
	// seen first.
	Tickets   []string `json:"tickets,omitempty"`
	Emergency bool     `json:"emergency,omitempty"`
	// Impact is the last analysis before the change: the checks with the
	// numbers they measured (requests judged, new and lost blocks with
	// their rules, block rate, latency); nil when none was journalled.
	Impact *Analysis `json:"impact,omitempty"`
	// BackOut is the baseline `wafcanary undo --to` serves again to take
	// the change back; empty for a rollback (nothing to back out).
	BackOut string `json:"back_out,omitempty"`
	// Exceptions are the exceptions the change added, removed or altered
	// (From to To), each said in a line with the rules it touches; filled
	// by whoever can compile both (the journal alone cannot), nil when
	// not read.
	Exceptions *ExceptionChanges `json:"exceptions,omitempty"`
}

// ExceptionChanges is what a change did to the baseline's exceptions.
type ExceptionChanges struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Altered []string `json:"altered"`
	// Unknown says why they could not be read (a version no longer kept).
	Unknown string `json:"unknown,omitempty"`
}

// Changes reads the changes that reached production from entries, oldest
// first, and returns those at or after since (all for the zero time).
func Changes(entries []Entry, since time.Time) []Change {
	var (
		out     []Change
		cur     *Change // the rollout under way, as its promotion would be
		exposed bool    // the candidate served clients in it
		served  string  // the baseline serving, as the entries say
	)
	for _, e := range entries {
		switch e.Action {
		case ActionStart:
			cur = &Change{Kind: ActionPromote, From: e.Baseline, Candidate: e.Candidate, ProposedBy: e.Actor, Rationale: e.Reason}
			cur.Tickets = addTicket(cur.Tickets, e.Ticket)
			exposed = e.Percent > 0
		case ActionAdvance, ActionPromote, ActionRollback, ActionHold, ActionAwait, ActionPause, ActionResume:
			if cur == nil {
				break
			}
			exposed = exposed || e.Percent > 0
			if e.Analysis != nil {
				cur.Impact = e.Analysis
			}
			cur.Tickets = addTicket(cur.Tickets, e.Ticket)
			if (e.Action == ActionAdvance || e.Action == ActionPromote) && e.Actor != "controller" {
				cur.ApprovedBy = append(cur.ApprovedBy, e.Actor)
			}
			if e.Action != ActionPromote && e.Action != ActionRollback {
				break
			}
			c := *cur
			c.Time, c.By, c.Reason, c.Emergency = e.Time, e.Actor, e.Reason, e.Emergency
			if e.Action == ActionPromote {
				c.To, c.BackOut = e.Baseline, c.From
			} else {
				c.Kind, c.To = ActionRollback, c.From
			}
			if e.Action == ActionPromote || exposed {
				out = append(out, c)
			}
			cur = nil
		case ActionUndo:
			if e.Baseline == served {
				break // an undo that changed nothing is not journalled; a torn one is not a change
			}
			out = append(out, Change{Time: e.Time, Kind: ActionUndo, From: served, To: e.Baseline, ProposedBy: e.Actor, Rationale: e.Reason,
				By: e.Actor, Reason: e.Reason, Tickets: addTicket(nil, e.Ticket), BackOut: served})
		}
		if e.Baseline != "" {
			served = e.Baseline
		}
	}
	i := 0
	for i < len(out) && out[i].Time.Before(since) {
		i++
	}
	return out[i:]
}

func addTicket(tickets []string, t string) []string {
	if t == "" || slices.Contains(tickets, t) {
		return tickets
	}
	return append(tickets, t)
}
