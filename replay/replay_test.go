package replay

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/ruleset"
)

var (
	rulesetsOnce sync.Once
	shipped      map[string]*ruleset.Ruleset
	shippedErr   error
)

// shippedRuleset loads a shipped ruleset once per package run.
func shippedRuleset(t testing.TB, name string) *ruleset.Ruleset {
	t.Helper()
	rulesetsOnce.Do(func() {
		shipped = map[string]*ruleset.Ruleset{}
		for _, n := range []string{"baseline.conf", "candidate-exclusion.conf", "candidate-pl2.conf"} {
			rs, err := ruleset.LoadFS(configs.Rulesets, n, "embedded:"+n)
			if err != nil {
				shippedErr = err
				return
			}
			shipped[n] = rs
		}
	})
	if shippedErr != nil {
		t.Fatal(shippedErr)
	}
	return shipped[name]
}

func replay(t *testing.T, cand string, paths []string, o Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), shippedRuleset(t, "baseline.conf"), shippedRuleset(t, cand), paths, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// fpPaths are the paths of the shipped false positives the exclusion
// fixes: only the ticket (930120 at PL1).
func fpPaths() []string {
	return []string{demo.FalsePositiveRequests()[0].Path}
}

// TestReplayModSecurityV3Logs is the done-when: nginx +
// libmodsecurity v3 on the CRS wafcanary embeds wrote the demo's traffic
// to a real JSON audit log, serial and concurrent; replayed with the
// shipped exclusion the only lost blocks are the false positive it
// fixes, in scope, and the verdict passes; with paranoia level 2 the new
// blocks name its rules and it fails.
func TestReplayModSecurityV3Logs(t *testing.T) {
	l := auditLogs(t)
	serial := Inconclusive
	if bulkLog() {
		serial = Pass
	}
	for _, tc := range []struct {
		name  string
		paths []string
		sent  int
		// verdict: the concurrent logs hold too few pairs for the checks
		// to conclude at their 0.1% limits.
		verdict string
	}{
		{"serial", []string{l.Serial}, len(bulk()), serial},
		{"concurrent index", []string{l.ConcurrentIndex}, len(traffic()), Inconclusive},
		{"concurrent storage directory", []string{l.ConcurrentDir}, len(traffic()), Inconclusive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := replay(t, "candidate-exclusion.conf", tc.paths, Options{})
			want := int64(tc.sent - 1) // nginx refuses the path traversal itself: ModSecurity never sees it
			if rep.Requests != want || rep.Unreadable != 0 || rep.Errors != 0 {
				t.Fatalf("requests %d (want %d), unreadable %d %v, errors %d %v", rep.Requests, want, rep.Unreadable, rep.Problems, rep.Errors, rep.JudgeErrors)
			}
			if rep.NewBlocks.Total != 0 || rep.LostBlocks.OutOfScope != 0 || rep.LostBlocks.InScope != 1 {
				t.Errorf("new %+v lost %+v", rep.NewBlocks, rep.LostBlocks)
			}
			var paths []string
			for _, p := range rep.LostBlocks.Paths {
				paths = append(paths, p.Key)
			}
			if !slices.Equal(paths, fpPaths()) {
				t.Errorf("lost blocks on %v, want exactly %v", paths, fpPaths())
			}
			if rep.Verdict != tc.verdict {
				t.Errorf("verdict %s: %+v", rep.Verdict, rep.Checks)
			}
			t.Logf("agreement with ModSecurity: %d of %d (%.1f%%), derived %d of %d pairs, cases %+v", rep.Agreement.Agree, rep.Agreement.Compared, 100*rep.Agreement.Share, rep.Derived, rep.Pairs, rep.Agreement.Cases)
		})
	}
	t.Run("paranoia level 2", func(t *testing.T) {
		rep := replay(t, "candidate-pl2.conf", []string{l.ConcurrentIndex}, Options{}) // the small log: every pair is evaluated
		var rules []string
		for _, r := range rep.NewBlocks.Rules {
			rules = append(rules, r.Key)
		}
		if rep.NewBlocks.OutOfScope == 0 || !slices.Contains(rules, "942520") && !slices.Contains(rules, "942200") {
			t.Errorf("new blocks %+v, want 942520 or 942200 among %v", rep.NewBlocks, rules)
		}
		if rep.Verdict != Fail {
			t.Errorf("verdict %s: %+v", rep.Verdict, rep.Checks)
		}
	})
}
