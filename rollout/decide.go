package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// Step analyses the evidence once and acts on it. It takes now so tests
// can drive it one interval at a time.
func (c *Controller) Step(ctx context.Context, now time.Time) (Decision, error) {
	if err := c.recordRollback(ctx); err != nil {
		return Decision{Time: now, Action: ActionNone, Reason: "rollback in force, not yet recorded: " + err.Error()}, nil
	}
	c.mu.Lock()
	st, gen := c.state, c.gen.Load()
	c.mu.Unlock()
	if err := c.leading(); err != nil {
		return Decision{Time: now, Action: ActionNone, Reason: err.Error()}, nil
	}
	if !st.Phase.Active() {
		return Decision{Time: now, Action: ActionNone, Reason: "no rollout under way"}, nil
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	if st.Step >= len(c.confOf(st).Steps) {
		// Another replica's state, written under other steps.
		if err := c.fitSteps(ctx, now); err != nil {
			return Decision{}, err
		}
		return *c.State().LastDecision, nil
	}
	var (
		probeFailure string
		probeErr     error
	)
	if snap := c.router.Snapshot(); c.probe != nil && snap.Candidate != nil {
		if probeFailure, probeErr = c.probe(ctx, st, snap.Baseline, snap.Candidate); probeErr != nil {
			c.log.Error("live probe failed to run", "error", probeErr.Error())
		}
	}
	ev, evErr := c.evidence.Evidence(ctx)
	var changed RuleChange
	if snap := c.router.Snapshot(); snap.Candidate != nil && snap.Baseline.CRS != snap.Candidate.CRS {
		// A CRS upgrade: say which of the release's changes the
		// disagreements come from.
		changes := ruleset.RuleChanges(snap.Baseline, snap.Candidate)
		changed = func(id int) string { return changes[id] }
	}
	a := evaluate(ev, c.conf().Policy, st.Percent, changed)
	d := Decision{Time: now, Actor: "controller", Analysis: &a}
	if evErr != nil {
		// No evidence is never a pass; the probe, the error limit or
		// max_duration ends the rollout while it lasts.
		a = Analysis{Status: Inconclusive, Outcomes: []Outcome{{Check: CheckEvidence, Status: Inconclusive, Required: true,
			Reason: "evidence unavailable: " + evErr.Error()}}}
	}
	if probeErr != nil {
		// A probe that did not run proves nothing of what the candidate
		// still blocks: the rollout cannot advance on this look.
		a.Outcomes = append(a.Outcomes, Outcome{Check: CheckProbe, Status: Inconclusive, Required: true,
			Reason: "live probe did not run: " + probeErr.Error()})
		a.Status = max(a.Status, Inconclusive)
	}
	errs := 0 // in a row, this look's included
	if a.Unjudged() != "" {
		errs = st.ConsecutiveErrors + 1
	}
	st.ConsecutiveErrors = errs
	d.Judged = ev.CandidateRequests()
	d.Action, d.Reason = decide(st, a, d.Judged, probeFailure, *c.confOf(st), now)

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.gen.Load() != gen:
		return Decision{Time: now, Action: ActionNone, Reason: "state changed during analysis"}, nil
	case now.Before(c.decided):
		// A decision recorded after this analysis's time: journalled
		// now, the two would be out of order.
		return Decision{Time: now, Action: ActionNone, Reason: "a decision was recorded after this analysis began"}, nil
	}
	var err error
	switch d.Action {
	case ActionHold:
		// Holding changes nothing served; the analysis is journalled so
		// the history shows what each look saw (st is the state it
		// judged, with its count of errors in a row).
		_, err = c.apply(ctx, change{st: st, d: d})
	case ActionAwait:
		st.Awaiting = true
		_, err = c.apply(ctx, change{st: st, d: d})
	case ActionRollback:
		_, err = c.rollbackLocked(ctx, d, 0)
	case ActionPause:
		st.Phase = Paused
		_, err = c.apply(ctx, change{st: st, d: d})
	case ActionPromote:
		_, err = c.promoteLocked(ctx, d)
	default:
		_, err = c.advanceLocked(ctx, st, d)
	}
	if errors.Is(err, ErrRollingBack) {
		// An operator's rollback took the candidate out during the
		// analysis; it is recorded next, and this look is moot.
		return Decision{Time: now, Action: ActionNone, Reason: err.Error()}, nil
	}
	return d, err
}

// advanceLocked moves st to its next step: recorded first, served second.
func (c *Controller) advanceLocked(ctx context.Context, st State, d Decision) (State, error) {
	next := c.confOf(st).Steps[st.Step+1]
	share, _ := router.ParseShare(next.Percent)
	snap := c.router.Snapshot().WithShare(share)
	st.Step, st.Percent, st.StepStarted, st.Phase, st.Awaiting = st.Step+1, next.Percent, d.Time, phaseOf(next.Percent), false
	return c.apply(ctx, change{st: st, d: d, next: snap, resetEvidence: true})
}

// decide is the controller's rule, and only the rule: from the state, the
// analysis of its evidence, the requests the candidate judged at this
// step and a failed live probe's reason (empty if none), what to do now
// and why. It reads no clock and touches nothing, so it is tested as a
// table (decide_test.go); Step gathers its inputs and applies its answer.
func decide(st State, a Analysis, judged int64, probeFailure string, cfg Config, now time.Time) (Action, string) {
	step := cfg.Steps[st.Step]
	switch {
	case probeFailure != "":
		// Known attacks are rare in live traffic: the evidence can look
		// healthy while protection is gone. A failed probe ends it at once.
		return ActionRollback, probeFailure
	case a.Status == Fail:
		return ActionRollback, a.Reason()
	case st.ConsecutiveErrors >= cfg.ConsecutiveErrorLimit:
		// A candidate that cannot be judged must not keep serving until
		// max_duration, paused or not.
		return ActionRollback, fmt.Sprintf("%s in a row could not judge the candidate (rollout.consecutive_error_limit %d); the last: %s",
			analyses(st.ConsecutiveErrors), cfg.ConsecutiveErrorLimit, a.Unjudged())
	case now.Sub(st.Started) >= cfg.MaxDuration && st.Phase != Paused:
		return cfg.Policy.OnMaxDuration.Action(), fmt.Sprintf("inconclusive: no conclusion within max_duration %s (%s)", cfg.MaxDuration, a.Reason())
	case st.Phase == Paused:
		return ActionHold, "paused: " + a.Reason() + errorCount(st, cfg)
	case a.Status != Pass:
		return ActionHold, a.Reason() + errorCount(st, cfg)
	case now.Sub(st.StepStarted) < step.MinDuration:
		return ActionHold, fmt.Sprintf("checks pass; step %d needs %s, has %s", st.Step+1, step.MinDuration, now.Sub(st.StepStarted).Round(time.Second))
	case judged < step.MinRequests:
		return ActionHold, fmt.Sprintf("checks pass; step %d needs %d requests judged by the candidate, has %d", st.Step+1, step.MinRequests, judged)
	case st.Step == len(cfg.Steps)-1:
		return ActionPromote, fmt.Sprintf("all checks pass at %v%% after %s: %s", st.Percent, now.Sub(st.Started).Round(time.Second), summary(a))
	case cfg.Steps[st.Step+1].Approval:
		return ActionAwait, fmt.Sprintf("step %d passed (%v%%, %d requests); step %d (%v%%) needs approval: `wafcanary promote` to go on: %s",
			st.Step+1, st.Percent, judged, st.Step+2, cfg.Steps[st.Step+1].Percent, summary(a))
	}
	return ActionAdvance, fmt.Sprintf("step %d passed (%v%%, %d requests): %s", st.Step+1, st.Percent, judged, summary(a))
}

// errorCount says how near the rollout is to its error limit, for a hold
// on an analysis that could not judge the candidate.
func errorCount(st State, cfg Config) string {
	if st.ConsecutiveErrors == 0 {
		return ""
	}
	return fmt.Sprintf(" [%d of rollout.consecutive_error_limit %d analyses in a row that could not judge the candidate; it rolls back at the limit]",
		st.ConsecutiveErrors, cfg.ConsecutiveErrorLimit)
}

func analyses(n int) string {
	if n == 1 {
		return "1 analysis"
	}
	return fmt.Sprintf("%d analyses", n)
}

func summary(a Analysis) string {
	s := ""
	for _, o := range a.Outcomes {
		if o.Status == Pass {
			if s != "" {
				s += "; "
			}
			s += o.Reason
		}
	}
	return s
}
