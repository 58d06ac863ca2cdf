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
	c.ResetScope(Scope{RuleIDs: []int{930120}, Paths: []string{"/support/"}, Hosts: []string{"shop.example"}})
	pairs := []verdict.ShadowRecord{
		{Host: "shop.example", Path: "/", Baseline: verdictWith(false), Candidate: verdictWith(false)},
		// Lost block caused only by the rule in scope, on the path and host
		// in scope (the host's case and port aside): expected.
		{Host: "Shop.Example:8443", Path: "/support/tickets", Baseline: verdictWith(true, 920350, 930120, 949110), Candidate: verdictWith(false, 920350)},
		// The rule in scope, elsewhere: a conjunction, so it counts.
		{Host: "shop.example", Path: "/contact", Baseline: verdictWith(true, 930120, 949110), Candidate: verdictWith(false)},
		// The path in scope, another rule: an injection the candidate stopped
		// blocking for an unrelated reason; it counts.
		{Host: "shop.example", Path: "/support/tickets", Baseline: verdictWith(true, 942100, 949110), Candidate: verdictWith(false)},
		// Rule and path in scope, on another site of the same server: counts.
		{Host: "blog.example", Path: "/support/tickets", Baseline: verdictWith(true, 930120, 949110), Candidate: verdictWith(false)},
		// New block: 942520 only on the candidate side.
		{Host: "shop.example", Path: "/search", Enforcing: verdict.Candidate, Baseline: verdictWith(false, 920350), Candidate: verdictWith(true, 920350, 942520, 949110)},
	}
	for _, p := range pairs {
		c.ObserveShadow(p)
	}
	e := c.Snapshot()
	if e.Pairs != 6 || e.LostBlocks.InScope != 1 || e.LostBlocks.OutOfScope != 3 || e.NewBlocks.OutOfScope != 1 {
		t.Fatalf("pairs %d, lost %+v, new %+v", e.Pairs, e.LostBlocks, e.NewBlocks)
	}
	if got := e.LostBlocks.TopRules(5); len(got) != 2 || got[0].ID != 930120 || got[0].Count != 2 || got[1].ID != 942100 {
		t.Errorf("lost-block rules %v, want 930120 x2 and 942100 (949110 is evaluation, the in-scope one excluded)", got)
	}
	if got := e.NewBlocks.TopRules(5); len(got) != 1 || got[0].ID != 942520 {
		t.Errorf("new-block rules %v, want 942520 (920350 fired on both sides)", got)
	}
	if e.CandidateRequests() != 5 {
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
		if got := s.covers("shop.example", tt.path, nil); got != tt.in {
			t.Errorf("%s in scope %v: %v, want %v", tt.path, s.Paths, got, tt.in)
		}
	}
	for _, bad := range []Scope{{Paths: []string{""}}, {Paths: []string{"support"}}, {Paths: []string{"/a/../b"}}, {RuleIDs: []int{0}},
		{Paths: []string{"/"}}, {Hosts: []string{""}}, {Hosts: []string{"Shop.Example"}}, {Hosts: []string{"shop.example:443"}}, {Hosts: []string{"*.example.com"}},
		{Hosts: []string{"shop.example,blog.example"}}, // why: two names in one entry matched no request; it was accepted
		{RuleIDs: []int{1}, Clauses: []Scope{{RuleIDs: []int{2}}}}, {Clauses: []Scope{{}}}, {Clauses: []Scope{{Paths: []string{"x"}}}},
		{Clauses: []Scope{{Clauses: []Scope{{RuleIDs: []int{2}}}}}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("scope %+v accepted", bad)
		}
	}
	if err := (Scope{Paths: []string{"/", "/support/tickets/"}, RuleIDs: []int{930120}, Hosts: []string{"shop.example", "2001:db8::1"}}).Validate(); err != nil {
		t.Errorf("good scope refused: %v", err)
	}
}

// An empty scope covers nothing; each declared dimension must hold.
var twoClauses = Scope{Clauses: []Scope{
	{Hosts: []string{"shop.example"}, Paths: []string{"/api/notes"}, RuleIDs: []int{941100, 941120}},
	{Paths: []string{"/support/tickets"}, RuleIDs: []int{930120}},
}}

func TestScopeIsAConjunction(t *testing.T) {
	for _, tc := range []struct {
		s          Scope
		host, path string
		rules      []int
		in         bool
	}{
		{Scope{}, "shop.example", "/x", []int{1}, false},
		{Scope{Hosts: []string{"shop.example"}}, "SHOP.example.", "/anything", []int{942100}, true},
		{Scope{Hosts: []string{"shop.example"}}, "blog.example", "/anything", nil, false},
		{Scope{RuleIDs: []int{930120}}, "any", "/any", []int{930120}, true},
		{Scope{RuleIDs: []int{930120}}, "any", "/any", []int{930120, 942100}, false},
		{Scope{RuleIDs: []int{930120}}, "any", "/any", nil, false}, // nothing attributed: not explained by the rule
		{Scope{RuleIDs: []int{930120}, Paths: []string{"/api/notes"}}, "any", "/api/notes", []int{942100}, false},
		{Scope{RuleIDs: []int{930120}, Paths: []string{"/api/notes"}}, "any", "/api/notes/7", []int{930120}, true},
		// Two exclusions, one clause each: neither excuses the other's
		// rules on its path.
		{twoClauses, "shop.example", "/api/notes", []int{941100}, true},
		{twoClauses, "any", "/support/tickets", []int{930120}, true},
		{twoClauses, "shop.example", "/api/notes", []int{930120}, false},
		{twoClauses, "any", "/support/tickets", []int{941100}, false},
		{twoClauses, "blog.example", "/api/notes", []int{941100}, false},
	} {
		if got := tc.s.covers(tc.host, tc.path, tc.rules); got != tc.in {
			t.Errorf("%+v covers %s %s %v: %v, want %v", tc.s, tc.host, tc.path, tc.rules, got, tc.in)
		}
	}
}

// An exact path covers that path as an @streq exclusion matches it and
// nothing else: not the paths below it, not a trailing slash, and "/" is
// one path, not the site (issue 27, item 4: an @streq exclusion was
// excused as "path under", and one on / as the whole host).
func TestScopeExactPaths(t *testing.T) {
	notes := Scope{ExactPaths: []string{"/api/notes"}, RuleIDs: []int{941100}}
	root := Scope{ExactPaths: []string{"/"}, RuleIDs: []int{941100}}
	both := Scope{ExactPaths: []string{"/api/notes"}, Paths: []string{"/support"}, RuleIDs: []int{941100}}
	for _, tc := range []struct {
		s    Scope
		path string
		in   bool
	}{
		{notes, "/api/notes", true},
		{notes, "/api/%6Eotes", true}, // REQUEST_FILENAME is percent-decoded
		{notes, "/api/notes/7", false},
		{notes, "/api/notes/", false},     // @streq /api/notes does not match it
		{notes, "/api/x/../notes", false}, // nor this: REQUEST_FILENAME is not resolved
		{notes, "/api/notes%", false},     // not decodable: nothing matches it
		{root, "/", true},
		{root, "/index.html", false},
		{root, "", false},
		{both, "/support/tickets", true},
		{both, "/api/notes", true},
		{both, "/api/notes/7", false},
	} {
		if got := tc.s.covers("shop.example", tc.path, []int{941100}); got != tc.in {
			t.Errorf("%s covers %q: %v, want %v", tc.s, tc.path, got, tc.in)
		}
	}
	if got := both.String(); got != "path /api/notes or under /support, and caused only by rules 941100" {
		t.Errorf("String() = %q", got)
	}
	if err := (Scope{ExactPaths: []string{"/"}}).Validate(); err != nil {
		t.Errorf("/ exactly is one path, refused: %v", err)
	}
	for _, bad := range []Scope{{ExactPaths: []string{"api"}}, {ExactPaths: []string{""}}, {ExactPaths: []string{"/a?b=1"}}, {ExactPaths: []string{"/a\nb"}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("scope %+v accepted", bad)
		}
	}
	// A scope that differs only in its exact paths is another scope: the
	// collector starts its paired window again.
	c := NewCollector(nil)
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c.Reset(Windows{Scope: notes, Rollout: t0, Step: t0})
	c.ObserveShadow(verdict.ShadowRecord{Path: "/api/notes", Baseline: verdictWith(true, 941100, 949110), Candidate: verdictWith(false)})
	c.Reset(Windows{Scope: root, Rollout: t0, Step: t0.Add(time.Minute)})
	if e := c.Snapshot(); e.Pairs != 0 {
		t.Errorf("pairs classified under another scope were kept: %d", e.Pairs)
	}
}
