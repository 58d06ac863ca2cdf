package gates

import (
	"context"
	"strings"
	"testing"
)

// TestCRSProbes: the sample is fixed for a baseline, bounded, one case per
// paranoia-level-1 attack rule, and the baseline blocks (nearly) all of
// it; a case it lets through is skipped by the probe, not failed.
func TestCRSProbes(t *testing.T) {
	base := shippedBaseline(t)
	sample := CRSProbes(base, base)
	if len(sample) < 30 || len(sample) > MaxCRSProbes {
		t.Fatalf("%d CRS probes, want 30 to %d", len(sample), MaxCRSProbes)
	}
	pl := map[int]int{}
	for _, r := range base.Rules {
		pl[r.ID] = r.Paranoia
	}
	rules := map[int]bool{}
	blocked := 0
	for i, c := range sample {
		if again := CRSProbes(base, base)[i]; again.ID != c.ID {
			t.Fatalf("sample not fixed: %s then %s", c.ID, again.ID)
		}
		if pl[c.RuleID] != 1 || rules[c.RuleID] || c.RuleID < 930000 || c.RuleID >= 950000 {
			t.Errorf("%s: rule %d at paranoia level %d, seen before %v", c.ID, c.RuleID, pl[c.RuleID], rules[c.RuleID])
		}
		rules[c.RuleID] = true
		v, err := judgeProbe(context.Background(), base, probe{c.ID, c.request})
		if err != nil {
			t.Fatal(err)
		}
		if v.Blocked {
			blocked++
		}
	}
	t.Logf("%d CRS probes, %d blocked by the baseline", len(sample), blocked)
	if blocked < len(sample)*2/3 {
		t.Errorf("only %d of %d CRS probes are blocked by the baseline", blocked, len(sample))
	}
}

// TestProbeCatchesWhatTheClassicAttacksMiss: a candidate without the PHP
// injection rules passes the rollout's must_block cases and the classic
// attacks, and is caught by a CRS PHP injection case.
func TestProbeCatchesWhatTheClassicAttacksMiss(t *testing.T) {
	base := shippedBaseline(t)
	noPHP := loadText(t, before+crs+"SecRuleRemoveByTag attack-injection-php\n")
	ctx := context.Background()
	for _, c := range ProbeAttacks {
		if v, err := Judge(ctx, noPHP, c); err != nil || !v.Blocked {
			t.Fatalf("%s is not blocked without the PHP rules (%v): the test would not show what the CRS sample adds", c.Name, err)
		}
	}
	got, err := Probe(ctx, base, noPHP, nil)
	if err != nil || !strings.HasPrefix(got, "live probe: CRS case 933") || !strings.Contains(got, "let through by the candidate") {
		t.Errorf("probe of a candidate without PHP injection rules: %q %v", got, err)
	}
	t.Log(got)
}
