package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

type unrecorded struct {
	st      State
	d       Decision
	latency time.Duration
}

// Start begins a rollout of candidate from the current baseline.
func (c *Controller) Start(ctx context.Context, cand *ruleset.Ruleset, spec Spec, clock Clock) (State, error) {
	scope, actor, reason := spec.Scope, spec.Actor, spec.Reason
	c.mu.Lock()
	defer c.mu.Unlock()
	now := clock()
	if err := c.leading(); err != nil {
		return c.state, err
	}
	if c.state.Phase.Active() {
		return c.state, fmt.Errorf("a rollout of %s is already %s: %w", c.state.Candidate.Version, c.state.Phase, ErrConflict)
	}
	if c.unrecorded != nil {
		return c.state, fmt.Errorf("the last rollback is not recorded yet (is state_dir full?): %w", ErrConflict)
	}
	if reason == "" {
		return c.state, fmt.Errorf("a reason is required: %w", ErrBadRequest)
	}
	if err := scope.Validate(); err != nil {
		return c.state, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	preset, err := c.conf().PresetOf(spec.Preset)
	if err != nil {
		return c.state, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	cur := c.router.Snapshot()
	if spec.Baseline != "" && spec.Baseline != cur.Baseline.Version {
		return c.state, fmt.Errorf("the baseline changed from %s to %s while the candidate was checked against it; start again: %w", spec.Baseline, cur.Baseline.Version, ErrConflict)
	}
	if cand.Version == cur.Baseline.Version {
		return c.state, fmt.Errorf("candidate %s is the baseline already: %w", cand.Version, ErrBadRequest)
	}
	for _, rs := range []*ruleset.Ruleset{cur.Baseline, cand} {
		if err := c.store.SaveRuleset(ctx, rs); err != nil {
			return c.state, err
		}
	}
	step := preset.Steps[0]
	share, _ := router.ParseShare(step.Percent)
	hosts, err := router.NewHosts(spec.Hosts)
	if err != nil {
		return c.state, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	next := &router.Snapshot{Baseline: cur.Baseline, Candidate: cand, Share: share, ShadowSample: c.shadowSample, Hosts: hosts}
	st := State{
		Phase: phaseOf(step.Percent), Step: 0, Percent: step.Percent, Started: now, StepStarted: now,
		Baseline: RulesetRef{Version: cur.Baseline.Version, Path: cur.Baseline.Path}, Candidate: &RulesetRef{Version: cand.Version, Path: cand.Path},
		ShadowSample: c.shadowSample.Percent(), Scope: scope, ScopeNote: spec.ScopeNote, Hosts: hosts.List(), Reason: reason, Cases: spec.Cases,
		Configured: c.state.Configured, Baselines: c.state.Baselines, StartedBy: actor, Ticket: AttributionOf(ctx).Ticket,
	}
	if spec.Preset != "" && spec.Preset != PresetDefault {
		st.Preset, st.Steps, st.MaxDuration = spec.Preset, preset.Steps, preset.MaxDuration
		reason += fmt.Sprintf(" [preset %s: %s; max_duration %s]", spec.Preset, describeSteps(preset.Steps), preset.MaxDuration)
	}
	if len(st.Baselines) == 0 { // a state from before baselines were kept
		st.Baselines = []RulesetRef{{Version: cur.Baseline.Version, Path: cur.Baseline.Path, Since: now, By: ActionStart}}
	}
	// Recorded first, served second: a decision the store refused (a
	// fleet's leadership lost) must not be in force anywhere.
	if len(st.Hosts) > 0 {
		reason += " [candidate judges only " + strings.Join(st.Hosts, ", ") + "]"
	}
	return c.apply(ctx, change{st: st, d: Decision{Time: now, Action: ActionStart, Reason: reason, Actor: actor}, next: next, resetEvidence: true})
}

// Rollback takes the candidate out of service at once, from any state, and
// then records why. It is idempotent: after a rollback, another succeeds
// and changes nothing. With no rollout in progress and no candidate
// serving it is refused with ErrConflict, naming undo: a rollback never
// changes the baseline. Every other decision that would have come between
// its swap and its record is refused (ErrRollingBack).
func (c *Controller) Rollback(ctx context.Context, actor, reason string, clock Clock) (State, error) {
	start := time.Now()
	// Traffic first: one atomic swap, without waiting for the lock an
	// analysis in progress might be about to take.
	static, done, err := c.withdraw()
	latency := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer done() // recorded (or refused) first, under c.mu
	if err != nil {
		return c.state, err
	}
	now := clock()
	if reason == "" {
		reason = "manual rollback"
	}
	switch {
	case c.state.Phase.Active():
		return c.rollbackLocked(ctx, Decision{Time: now, Action: ActionRollback, Reason: reason, Actor: actor}, latency)
	case static != nil:
		// A candidate the configuration put in service, no rollout's: it
		// stays withdrawn across reloads and restarts.
		st := c.state
		st.Withdrawn = static.Version
		d := Decision{Time: now, Action: ActionRollback, Reason: reason + " (rulesets.candidate " + static.Version + " withdrawn until the file changes)", Actor: actor}
		return c.commit(ctx, change{st: st, d: d, latency: latency, withdrawn: static.Version})
	case c.state.Phase == RolledBack:
		return c.state, nil
	}
	return c.state, fmt.Errorf("no rollout in progress (state %s) and no candidate serving: rollback only takes a candidate out of service; to serve an earlier baseline again, use `wafcanary undo`: %w", c.state.Phase, ErrConflict)
}

// rollbackLocked restores baseline-only routing (the controller's own
// rollback has not swapped yet; an operator's has) and records it.
// In a fleet the record is what takes the candidate off every other
// replica, so a record refused because another replica wrote first is
// retried on the fresh state, which may already be at rest.
func (c *Controller) rollbackLocked(ctx context.Context, d Decision, latency time.Duration) (State, error) {
	d = Attribute(ctx, d) // kept whole in c.unrecorded if the store refuses it
	_, done, err := c.withdraw()
	defer done()
	if err != nil {
		return c.state, err
	}
	for attempt := 0; ; attempt++ {
		st := c.state.RolledBackBy(d)
		out, err := c.commit(ctx, change{st: st, d: d, latency: latency})
		if err == nil {
			c.prune(ctx)
		}
		if err != nil && !errors.Is(err, ErrStale) && !errors.Is(err, ErrConflict) {
			// The rollback wins anyway: the router serves the baseline
			// alone already, and nothing may put the candidate back while
			// the record is retried (Step).
			c.gen.Add(1)
			c.state, c.unrecorded = st, &unrecorded{st: st, d: d, latency: latency}
			c.report(nil, ActionRollback)
			return st, fmt.Errorf("%w: the rollback is in force in this process and recorded as soon as the store takes it (retried at every analysis); until then a restart would serve the candidate again", err)
		}
		if !errors.Is(err, ErrStale) || attempt == 3 {
			return out, err
		}
		fresh, lerr := c.store.Load(ctx)
		if lerr != nil {
			return out, errors.Join(err, lerr)
		}
		c.gen.Add(1)
		c.state = fresh
		if !fresh.Phase.Active() {
			return fresh, nil
		}
	}
}

// recordRollback retries recording a rollback the store refused; nil when
// there is none left to record.
func (c *Controller) recordRollback(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.unrecorded
	if u == nil {
		return nil
	}
	err := c.store.Commit(ctx, u.st, NewEntry(u.st, u.d, u.latency))
	if errors.Is(err, ErrStale) {
		// Another replica wrote first: roll back its state instead.
		c.unrecorded = nil
		fresh, lerr := c.store.Load(ctx)
		if lerr != nil {
			c.unrecorded = u
			return lerr
		}
		c.gen.Add(1)
		c.state = fresh
		if fresh.Phase.Active() {
			_, err = c.rollbackLocked(ctx, u.d, u.latency)
		}
		return err
	}
	if err != nil {
		return err
	}
	c.unrecorded = nil
	c.log.Info("rollback recorded", "actor", u.d.Actor, "decided", u.d.Time)
	c.told(State{Phase: Progressing}, u.st, u.d) // in force since u.d.Time; told once recorded
	return nil
}

// PromoteStep moves the rollout on by one step, whatever the evidence
// (Argo Rollouts' promote): the way past a step with approval: true. From
// the last step it promotes. Every promotion is an approval: refused
// with ErrSameApprover when the rollout's starter asks for it with a
// personal identity and rollout.approvals.distinct holds (Attribution).
func (c *Controller) PromoteStep(ctx context.Context, actor, reason string, clock Clock) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := clock()
	if err := c.leading(); err != nil {
		return c.state, err
	}
	st := c.state
	if !st.Phase.Active() {
		return st, fmt.Errorf("no rollout to promote (state %s): %w", st.Phase, ErrConflict)
	}
	if reason == "" {
		reason = "promoted by hand"
	}
	note, err := c.approval(ctx, st, actor)
	if err != nil {
		return st, err
	}
	reason += note
	if st.Step >= len(c.confOf(st).Steps)-1 {
		return c.promoteLocked(ctx, Decision{Time: now, Action: ActionPromote, Reason: reason, Actor: actor})
	}
	what := "approved"
	if !st.Awaiting {
		what = "promoted one step"
	}
	d := Decision{Time: now, Action: ActionAdvance, Actor: actor,
		Reason: fmt.Sprintf("%s by %s to step %d (%v%%): %s", what, actor, st.Step+2, c.confOf(st).Steps[st.Step+1].Percent, reason)}
	return c.advanceLocked(ctx, st, d)
}

// Promote makes the candidate the baseline now, skipping remaining steps.
// It is an approval, as PromoteStep is.
func (c *Controller) Promote(ctx context.Context, actor, reason string, clock Clock) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := clock()
	if err := c.leading(); err != nil {
		return c.state, err
	}
	if !c.state.Phase.Active() {
		return c.state, fmt.Errorf("no rollout to promote (state %s): %w", c.state.Phase, ErrConflict)
	}
	if reason == "" {
		reason = "manual promotion"
	}
	note, err := c.approval(ctx, c.state, actor)
	if err != nil {
		return c.state, err
	}
	reason += note
	return c.promoteLocked(ctx, Decision{Time: now, Action: ActionPromote, Reason: reason, Actor: actor})
}

// promoteLocked swaps the candidate in as the baseline in one step.
func (c *Controller) promoteLocked(ctx context.Context, d Decision) (State, error) {
	cur := c.router.Snapshot()
	if cur.Candidate == nil {
		return c.state, fmt.Errorf("router has no candidate to promote: %w", ErrConflict)
	}
	st := c.state
	if len(st.Hosts) > 0 {
		// The new baseline serves every host; the journal says on which
		// the evidence was gathered.
		d.Reason += " [evidence from " + strings.Join(st.Hosts, ", ") + " only; the new baseline serves every host]"
	}
	st.Phase, st.Percent, st.ConsecutiveErrors = Promoted, 100, 0
	st.Baseline, st.Candidate, st.Hosts = *st.Candidate, nil, nil
	st.Baselines = served(st.Baselines, st.Baseline, ActionPromote, d.Time, c.conf().KeepBaselines)
	st, err := c.apply(ctx, change{st: st, d: d, next: &router.Snapshot{Baseline: cur.Candidate}})
	if err != nil {
		return st, err
	}
	c.prune(ctx)
	return st, nil
}

// Pause holds the share; analysis goes on and a failure still rolls back.
func (c *Controller) Pause(ctx context.Context, actor, reason string, clock Clock) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := clock()
	if err := c.leading(); err != nil {
		return c.state, err
	}
	switch {
	case c.state.Phase == Paused:
		return c.state, nil
	case !c.state.Phase.Active():
		return c.state, fmt.Errorf("no rollout to pause (state %s): %w", c.state.Phase, ErrConflict)
	}
	st := c.state
	st.Phase = Paused
	return c.apply(ctx, change{st: st, d: Decision{Time: now, Action: ActionPause, Reason: reason, Actor: actor}})
}

// Resume continues a paused rollout at its step; the step's clock restarts.
func (c *Controller) Resume(ctx context.Context, actor, reason string, clock Clock) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := clock()
	if err := c.leading(); err != nil {
		return c.state, err
	}
	if c.state.Phase != Paused {
		return c.state, fmt.Errorf("rollout is %s, not paused: %w", c.state.Phase, ErrConflict)
	}
	st := c.state
	st.Phase, st.StepStarted = phaseOf(st.Percent), now
	return c.apply(ctx, change{st: st, d: Decision{Time: now, Action: ActionResume, Reason: reason, Actor: actor}})
}
