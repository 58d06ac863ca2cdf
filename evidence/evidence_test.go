package evidence

import (
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

func verdictWith(blocked bool, ids ...int) verdict.Verdict {
	v := verdict.Verdict{Blocked: blocked}
	for _, id := range ids {
		v.Rules = append(v.Rules, verdict.RuleMatch{ID: id})
	}
	return v
}

func TestCollectorAttributesAndScopes(t *testing.T) {
	c := NewCollector(nil)
	c.ResetScope(Scope{RuleIDs: []int{930120}, Paths: []string{"/support/"}})
	pairs := []verdict.ShadowRecord{
		{Path: "/", Baseline: verdictWith(false), Candidate: verdictWith(false)},
		// Lost block caused only by the rule in scope: expected.
		{Path: "/contact", Baseline: verdictWith(true, 920350, 930120, 949110), Candidate: verdictWith(false, 920350)},
		// Lost block on a path in scope, whatever the rule: expected.
		{Path: "/support/tickets", Baseline: verdictWith(true, 942100, 949110), Candidate: verdictWith(false)},
		// Lost block by a rule outside scope: counts against the candidate.
		{Path: "/search", Baseline: verdictWith(true, 942100, 949110), Candidate: verdictWith(false)},
		// New block: 942520 only on the candidate side.
		{Path: "/search", Enforcing: verdict.Candidate, Baseline: verdictWith(false, 920350), Candidate: verdictWith(true, 920350, 942520, 949110)},
	}
	for _, p := range pairs {
		c.ObserveShadow(p)
	}
	e := c.Snapshot()
	if e.Pairs != 5 || e.LostBlocks.InScope != 2 || e.LostBlocks.OutOfScope != 1 || e.NewBlocks.OutOfScope != 1 {
		t.Fatalf("pairs %d, lost %+v, new %+v", e.Pairs, e.LostBlocks, e.NewBlocks)
	}
	if got := e.LostBlocks.TopRules(5); len(got) != 1 || got[0].ID != 942100 {
		t.Errorf("lost-block rules %v, want 942100 only (949110 is evaluation, in-scope ones excluded)", got)
	}
	if got := e.NewBlocks.TopRules(5); len(got) != 1 || got[0].ID != 942520 {
		t.Errorf("new-block rules %v, want 942520 (920350 fired on both sides)", got)
	}
	if e.CandidateRequests() != 4 {
		t.Errorf("candidate judged %d requests, want 4 in shadow", e.CandidateRequests())
	}
	c.ResetScope(Scope{})
	if c.Snapshot().Pairs != 0 {
		t.Error("reset kept evidence")
	}
}

// Shadow pairs judge the same request with both rulesets, whatever the
// share: they add up over the rollout's steps. Split arms compare
// different clients at one share: they start again at every step.
func TestCollectorWindows(t *testing.T) {
	c := NewCollector(nil)
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	scope := Scope{Paths: []string{"/support/"}}
	feed := func(n int) {
		for range n {
			c.ObserveRequest(verdict.RequestRecord{Arm: verdict.Candidate, Action: verdict.Blocked, WAFDuration: time.Millisecond})
			c.ObserveShadow(verdict.ShadowRecord{Path: "/search", Enforcing: verdict.Baseline, Baseline: verdictWith(true, 942100, 949110), Candidate: verdictWith(false)})
		}
	}
	c.Reset(Windows{Scope: scope, Rollout: t0, Step: t0})
	feed(10)
	c.Reset(Windows{Scope: scope, Rollout: t0, Step: t0.Add(time.Minute)}) // the next step
	feed(5)
	e := c.Snapshot()
	if e.Pairs != 15 || e.LostBlocks.OutOfScope != 15 || e.LostBlocks.Rules[942100] != 15 {
		t.Errorf("after two steps: %d pairs, %d lost blocks (942100 x%d), want 15 of each: pairs count over the rollout", e.Pairs, e.LostBlocks.OutOfScope, e.LostBlocks.Rules[942100])
	}
	if a := e.Arms[verdict.Candidate]; a.Requests != 5 || a.Blocked != 5 || e.ShadowedByCandidate != 5 || a.WAFTime.GetCount() != 5 {
		t.Errorf("after two steps: candidate arm %d requests, %d blocked, %d shadowed by the candidate; want 5 each: arms count over the step", a.Requests, a.Blocked, e.ShadowedByCandidate)
	}
	c.Reset(Windows{Scope: scope, Rollout: t0.Add(time.Hour), Step: t0.Add(time.Hour)}) // another rollout
	if e := c.Snapshot(); e.Pairs != 0 || e.LostBlocks.OutOfScope != 0 {
		t.Errorf("a new rollout kept %d pairs of the last one", e.Pairs)
	}
	feed(3)
	c.Reset(Windows{Scope: Scope{Paths: []string{"/search"}}, Rollout: t0.Add(time.Hour), Step: t0.Add(2 * time.Hour)})
	if e := c.Snapshot(); e.Pairs != 0 {
		t.Errorf("pairs classified under another scope were kept: %d", e.Pairs)
	}
}

// Scope paths match whole segments of the path as the WAF sees it: the
// fault was a raw string prefix, so /support/tickets covered
// /support/ticketsadmin and /support/tickets/../.., and an empty path
// covered everything.
func TestScopePaths(t *testing.T) {
	s := Scope{Paths: []string{"/support/tickets"}}
	for _, tt := range []struct {
		path string
		in   bool
	}{
		{"/support/tickets", true},
		{"/support/tickets/42", true},
		{"/support/tickets/", true},
		{"/support/%74ickets/42", true}, // percent-encoded, as CRS decodes it
		{"/support/ticketsadmin", false},
		{"/support/tickets/../../admin", false},
		{"/support/tickets/..%2f..%2fadmin", false},
		{"/support", false},
	} {
		if got := s.covers(tt.path, nil); got != tt.in {
			t.Errorf("%s in scope %v: %v, want %v", tt.path, s.Paths, got, tt.in)
		}
	}
	for _, bad := range []Scope{{Paths: []string{""}}, {Paths: []string{"support"}}, {Paths: []string{"/a/../b"}}, {RuleIDs: []int{0}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("scope %+v accepted", bad)
		}
	}
	if err := (Scope{Paths: []string{"/", "/support/tickets/"}, RuleIDs: []int{930120}}).Validate(); err != nil {
		t.Errorf("good scope refused: %v", err)
	}
}
