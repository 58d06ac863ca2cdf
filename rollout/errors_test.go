package rollout

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wafcanary/wafcanary/ruleset"
)

// The fault this guards against: an evidence source that fails (a
// fleet's Prometheus down) held the rollout, the candidate serving, until
// max_duration (6 h by default), and a probe that failed to run was only
// logged. Analyses that cannot judge the candidate are counted; at
// consecutive_error_limit in a row the rollout rolls back, saying how many
// and the last error. A look that judges resets the count. One line per
// analysis, as the controller sees them.
func TestConsecutiveErrorsRollBack(t *testing.T) {
	down := errors.New("prometheus: dial tcp 10.0.0.9:9090: connection refused")
	probeBroke := errors.New("compiling the probe's cases: out of memory")
	for _, tc := range []struct {
		name      string
		limit     int     // rollout.consecutive_error_limit; 0: the default
		evidence  []error // per analysis; nil judges
		probe     []error
		rollback  int // the analysis (from 1) that rolls back; 0: none
		reason    []string
		evErrors  float64
		prbErrors float64
	}{
		{"evidence down five times in a row", 0, []error{down, down, down, down, down}, nil, 5,
			[]string{"5 analyses in a row could not judge the candidate", "rollout.consecutive_error_limit", down.Error()}, 5, 0},
		// Why: the limit is on errors in a row; one look that judges in
		// between starts the count again.
		{"a look that judges resets the count", 0, []error{down, down, down, down, nil, down, down, down, down}, nil, 0, nil, 8, 0},
		{"a probe that fails to run counts too", 0, []error{nil, down, nil, down, nil}, []error{probeBroke, nil, probeBroke, nil, probeBroke}, 5,
			[]string{"5 analyses in a row", probeBroke.Error()}, 2, 3},
		{"a limit of 1 rolls back at the first error", 1, []error{nil, down}, nil, 2, []string{"1 analysis in a row", "(rollout.consecutive_error_limit 1)"}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.MaxDuration = 24 * time.Hour
				if tc.limit > 0 {
					c.ConsecutiveErrorLimit = tc.limit
				}
			})
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			h.c.reporter = m
			// Both series exist, at zero, before the first analysis.
			if n, err := testutil.GatherAndCount(reg, "wafcanary_rollout_evidence_errors_total", "wafcanary_rollout_probe_errors_total"); err != nil || n != 2 {
				t.Fatalf("%d error series at start-up, %v", n, err)
			}
			look := 0
			h.c.probe = func(context.Context, State, *ruleset.Ruleset, *ruleset.Ruleset) (string, error) {
				if look < len(tc.probe) {
					return "", tc.probe[look]
				}
				return "", nil
			}
			if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "r"}, at(h.t0)); err != nil {
				t.Fatal(err)
			}
			for i, evErr := range tc.evidence {
				look = i
				h.ev.mu.Lock()
				h.ev.err = evErr
				h.ev.mu.Unlock()
				h.ev.set(clean(50)) // judges, but never enough to advance
				d := h.step(t, time.Duration(i+1)*15*time.Second)
				want := ActionHold
				if i+1 == tc.rollback {
					want = ActionRollback
				}
				if d.Action != want {
					t.Fatalf("analysis %d: %s (%s), want %s", i+1, d.Action, d.Reason, want)
				}
				if want == ActionRollback {
					for _, w := range tc.reason {
						if !strings.Contains(d.Reason, w) {
							t.Errorf("reason %q lacks %q", d.Reason, w)
						}
					}
					if h.r.Snapshot().Candidate != nil || h.c.State().Phase != RolledBack {
						t.Error("the candidate still serves")
					}
				}
			}
			if got := testutil.ToFloat64(m.evidenceErrors); got != tc.evErrors {
				t.Errorf("wafcanary_rollout_evidence_errors_total %v, want %v", got, tc.evErrors)
			}
			if got := testutil.ToFloat64(m.probeErrors); got != tc.prbErrors {
				t.Errorf("wafcanary_rollout_probe_errors_total %v, want %v", got, tc.prbErrors)
			}
		})
	}
}
