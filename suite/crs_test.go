package suite_test

import (
	"context"
	"sort"
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"

	"github.com/wafcanary/wafcanary/suite"
)

func crsCases(t *testing.T) []suite.Case {
	t.Helper()
	cs, err := suite.Load(crstests.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) < 4500 {
		t.Fatalf("loaded %d CRS cases, expected about 4,674", len(cs))
	}
	return cs
}

// TestShippedBaseline runs the whole CRS regression suite through a real
// wafcanary serving the shipped baseline. Every case passes except those
// left out in ignore.yaml, and every case left out really fails: a stale
// entry would hide a regression later.
func TestShippedBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole CRS suite takes about 10 s; run without -short")
	}
	cases := crsCases(t)
	in := start(t, "../configs/rulesets/baseline.conf")

	ignore := suite.Ignored()
	began := time.Now()
	reps, err := suite.Run(context.Background(), cases, []*suite.Instance{in}, suite.Options{Ignore: ignore})
	if err != nil {
		t.Fatal(err)
	}
	rep := reps[0]
	t.Logf("CRS suite: %d of %d cases pass (%.2f%%), %d left out, %d failed, in %s; median WAF time %s",
		rep.Passed, rep.Total, 100*rep.PassRate(), rep.Ignored, rep.Failed, time.Since(began).Round(time.Millisecond), rep.MedianWAFTime)
	for _, f := range rep.Failures() {
		t.Errorf("%s failed: %s (fired %v)", f.Case, f.Why, f.Fired)
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[r.Case] = true
		if r.Ignored != "" && r.Pass {
			t.Errorf("%s is left out (%s) but passes: remove it from ignore.yaml", r.Case, r.Ignored)
		}
	}
	for id := range ignore {
		if !seen[id] {
			t.Errorf("ignore.yaml lists %s, which is not in the suite", id)
		}
	}
	if rep.PassRate() < 0.99 {
		t.Errorf("pass rate %.4f, below 0.99", rep.PassRate())
	}
}

// TestDiffNamesLostProtection compares the baseline with a candidate that
// removes the SQL injection rules, over the SQL injection and XSS cases:
// the diff lists SQL injection cases that regressed, with the rules lost,
// and no XSS case.
func TestDiffNamesLostProtection(t *testing.T) {
	var cases []suite.Case
	for _, c := range crsCases(t) {
		if (c.RuleID >= 942100 && c.RuleID <= 942160) || (c.RuleID >= 941100 && c.RuleID <= 941120) {
			cases = append(cases, c)
		}
	}
	base := start(t, "../configs/rulesets/baseline.conf")
	cand := start(t, "testdata/no-sqli.conf")
	reps, err := suite.Run(context.Background(), cases, []*suite.Instance{base, cand}, suite.Options{Ignore: suite.Ignored()})
	if err != nil {
		t.Fatal(err)
	}
	changes := suite.Diff(reps[0], reps[1])
	if len(changes) == 0 {
		t.Fatal("no changes between the baseline and a candidate without SQL injection rules")
	}
	rules := map[int]bool{}
	for _, c := range changes {
		if !c.Regression() {
			t.Errorf("%s: %s -> %s, expected only regressions", c.Case, c.Before, c.After)
		}
		if c.RuleID < 942000 || c.RuleID > 942999 {
			t.Errorf("%s changed (%s), but only SQL injection rules were removed", c.Case, c.Why)
		}
		if len(c.Lost) == 0 || c.Why == "" {
			t.Errorf("%s: a regression must say why and which rules were lost: %+v", c.Case, c)
		}
		rules[c.RuleID] = true
	}
	var ids []int
	for id := range rules {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	t.Logf("%d regressions over %d cases, rules %v", len(changes), len(cases), ids)
	if len(ids) < 5 {
		t.Errorf("regressions for only %d SQL injection rules: %v", len(ids), ids)
	}
	if reps[0].MedianWAFTime <= 0 || reps[1].MedianWAFTime <= 0 {
		t.Error("WAF time missing from a report")
	}
}
