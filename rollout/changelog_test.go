package rollout

import (
	"encoding/json"
	"testing"
	"time"
)

// The changelog reads what reached production from the journal: a
// promotion with its proposer, approvers, tickets, rationale and the last
// analysis; a rollback only once the candidate served clients; an undo
// with the baseline it leaves as the back-out.
func TestChanges(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	pass := &Analysis{Status: Pass, Outcomes: []Outcome{{Check: "new_blocks", Status: Pass, Reason: "new blocks 0 of 9000"}}}
	journal := []Entry{
		{Time: at(0), Action: ActionReload, Actor: "startup", Baseline: "b0"},
		{Time: at(1), Action: ActionStart, Actor: "alice", Claimed: "mallory", Ticket: "CHG-42", Reason: "930120 FP", Baseline: "b0", Candidate: "c1"},
		{Time: at(2), Action: ActionHold, Actor: "controller", Baseline: "b0", Candidate: "c1", Analysis: &Analysis{Status: Inconclusive}},
		{Time: at(3), Action: ActionAwait, Actor: "controller", Baseline: "b0", Candidate: "c1", Analysis: pass},
		{Time: at(4), Action: ActionAdvance, Actor: "bob", Ticket: "CHG-42", Percent: 50, Baseline: "b0", Candidate: "c1", Reason: "approved by bob"},
		{Time: at(5), Action: ActionPromote, Actor: "controller", Percent: 100, Baseline: "c1", Reason: "all checks pass"},
		// Why: a rollback in shadow changed nothing clients saw.
		{Time: at(6), Action: ActionStart, Actor: "alice", Reason: "try", Baseline: "c1", Candidate: "c2"},
		{Time: at(7), Action: ActionRollback, Actor: "alice", Baseline: "c1", Candidate: "c2", Reason: "wrong file"},
		{Time: at(8), Action: ActionStart, Actor: "bob", Reason: "PL2", Ticket: "CHG-50", Baseline: "c1", Candidate: "c3"},
		{Time: at(9), Action: ActionAdvance, Actor: "controller", Percent: 1, Baseline: "c1", Candidate: "c3", Analysis: pass},
		{Time: at(10), Action: ActionRollback, Actor: "controller", Baseline: "c1", Candidate: "c3", Reason: "new blocks 2%"},
		{Time: at(11), Action: ActionUndo, Actor: "carol", Ticket: "INC-7", Baseline: "b0", Reason: "FP back"},
	}
	got := Changes(journal, time.Time{})
	want := []Change{
		{Time: at(5), Kind: ActionPromote, From: "b0", To: "c1", Candidate: "c1", ProposedBy: "alice", Rationale: "930120 FP", ApprovedBy: []string{"bob"},
			By: "controller", Reason: "all checks pass", Tickets: []string{"CHG-42"}, Impact: pass, BackOut: "b0"},
		{Time: at(10), Kind: ActionRollback, From: "c1", To: "c1", Candidate: "c3", ProposedBy: "bob", Rationale: "PL2",
			By: "controller", Reason: "new blocks 2%", Tickets: []string{"CHG-50"}, Impact: pass},
		{Time: at(11), Kind: ActionUndo, From: "c1", To: "b0", ProposedBy: "carol", Rationale: "FP back", By: "carol", Reason: "FP back", Tickets: []string{"INC-7"}, BackOut: "c1"},
	}
	if g, w := marshal(t, got), marshal(t, want); g != w {
		t.Errorf("changes:\n got %s\nwant %s", g, w)
	}
	if got := Changes(journal, at(10)); len(got) != 2 || got[0].Kind != ActionRollback {
		t.Errorf("since the rollback: %+v", got)
	}
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
