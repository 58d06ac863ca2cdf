package rollout

import (
	"strings"
	"testing"
	"time"
)

// decide, the controller's rule, one line per branch and per precedence
// between branches.
func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cfg := DefaultConfig
	cfg.MaxDuration = time.Hour
	cfg.Steps = []Step{{Percent: 0, MinDuration: time.Minute, MinRequests: 100}, {Percent: 50, MinDuration: time.Minute, MinRequests: 100}}
	pass := Analysis{Status: Pass, Outcomes: []Outcome{{Check: "new_blocks", Status: Pass, Required: true, Reason: "new blocks fine"}}}
	fail := Analysis{Status: Fail, Outcomes: []Outcome{{Check: "new_blocks", Status: Fail, Required: true, Reason: "942100 blocks customers"}}}
	wait := Analysis{Status: Inconclusive, Outcomes: []Outcome{{Check: "p99", Status: Inconclusive, Required: true, Reason: "p99 not yet conclusive"}}}
	down := Analysis{Status: Inconclusive, Outcomes: []Outcome{{Check: CheckEvidence, Status: Inconclusive, Required: true, Reason: "evidence unavailable: prometheus down"}}}
	errs := func(st State, n int) State { st.ConsecutiveErrors = n; return st }
	at := func(step int, phase Phase, started, stepStarted time.Duration) State {
		return State{Phase: phase, Step: step, Percent: cfg.Steps[step].Percent, Started: t0.Add(-started), StepStarted: t0.Add(-stepStarted)}
	}
	onMax := func(w OnMaxDuration) Config { c := cfg; c.Policy.OnMaxDuration = w; return c }
	approvalNext := cfg
	approvalNext.Steps = []Step{cfg.Steps[0], {Percent: 10, Approval: true}, cfg.Steps[1]}
	for _, tc := range []struct {
		name   string
		st     State
		a      Analysis
		judged int64
		probe  string
		cfg    Config
		want   Action
		reason string
	}{
		{"a failed probe rolls back even when every check passes", at(0, Shadow, 2*time.Minute, 2*time.Minute), pass, 500, "probe sqli-1 passed", cfg, ActionRollback, "probe sqli-1"},
		{"a failed check rolls back", at(1, Progressing, 2*time.Minute, 2*time.Minute), fail, 500, "", cfg, ActionRollback, "942100"},
		{"a failed check wins over max_duration", at(1, Progressing, 2*time.Hour, time.Hour), fail, 500, "", onMax(PauseAtMaxDuration), ActionRollback, "942100"},
		{"errors in a row up to the limit roll back", errs(at(1, Progressing, 2*time.Minute, 2*time.Minute), 5), down, 500, "", cfg, ActionRollback,
			"5 analyses in a row could not judge the candidate (rollout.consecutive_error_limit 5); the last: evidence unavailable: prometheus down"},
		{"the error limit ends a paused rollout too", errs(at(1, Paused, 2*time.Minute, 2*time.Minute), 5), down, 500, "", cfg, ActionRollback, "5 analyses in a row"},
		{"the error limit comes before max_duration", errs(at(1, Progressing, 2*time.Hour, time.Hour), 5), down, 500, "", onMax(PauseAtMaxDuration), ActionRollback, "5 analyses in a row"},
		{"errors below the limit hold, counting", errs(at(1, Progressing, 2*time.Minute, 2*time.Minute), 4), down, 500, "", cfg, ActionHold,
			"evidence unavailable: prometheus down [4 of rollout.consecutive_error_limit 5 analyses in a row"},
		{"inconclusive at max_duration rolls back by default", at(1, Progressing, 2*time.Hour, time.Hour), wait, 500, "", cfg, ActionRollback, "within max_duration 1h0m0s"},
		// on_max_duration is a policy word, not an action cast from a string:
		// "promote", which these rows once used, is refused by Validate.
		{"inconclusive at max_duration can pause", at(1, Progressing, 2*time.Hour, time.Hour), wait, 500, "", onMax(PauseAtMaxDuration), ActionPause, "within max_duration"},
		{"max_duration does not end a paused rollout", at(1, Paused, 2*time.Hour, time.Hour), pass, 500, "", cfg, ActionHold, "paused: "},
		{"a paused rollout holds even when it passes", at(0, Paused, 2*time.Minute, 2*time.Minute), pass, 500, "", cfg, ActionHold, "paused"},
		{"inconclusive holds", at(0, Shadow, 2*time.Minute, 2*time.Minute), wait, 500, "", cfg, ActionHold, "p99 not yet conclusive"},
		{"passing before min_duration holds", at(0, Shadow, 30*time.Second, 30*time.Second), pass, 500, "", cfg, ActionHold, "needs 1m0s, has 30s"},
		{"passing below min_requests holds", at(0, Shadow, 2*time.Minute, 2*time.Minute), pass, 99, "", cfg, ActionHold, "needs 100 requests judged by the candidate, has 99"},
		{"a step with approval next awaits it", at(0, Shadow, 2*time.Minute, 2*time.Minute), pass, 100, "", approvalNext, ActionAwait, "step 1 passed (0%, 100 requests); step 2 (10%) needs approval"},
		{"passing a step advances", at(0, Shadow, 2*time.Minute, 2*time.Minute), pass, 100, "", cfg, ActionAdvance, "step 1 passed (0%, 100 requests): new blocks fine"},
		{"passing the last step promotes", at(1, Progressing, 3*time.Minute, 2*time.Minute), pass, 100, "", cfg, ActionPromote, "all checks pass at 50% after 3m0s"},
	} {
		got, reason := decide(tc.st, tc.a, tc.judged, tc.probe, tc.cfg, t0)
		if got != tc.want || !strings.Contains(reason, tc.reason) {
			t.Errorf("%s: %s (%s), want %s (%s)", tc.name, got, reason, tc.want, tc.reason)
		}
	}
}
