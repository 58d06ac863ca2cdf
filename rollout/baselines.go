package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// What serves when no rollout owns the rulesets is decided here, under
// the controller's lock, recorded first and served second: the
// configuration (at start-up and on SIGHUP, Reload) and an operator's
// undo. The configured baseline file and the state's baseline can
// disagree after a promotion or an undo; the rule is that the state wins
// while the file is unchanged, and a changed file is a new baseline.

// Configured is what the configuration says should serve when no rollout
// owns the rulesets: the baseline file, compiled, and a candidate it names
// (rulesets.candidate) with its share.
type Configured struct {
	Baseline            *ruleset.Ruleset
	Candidate           *ruleset.Ruleset // nil: none
	Share, ShadowSample router.Share
}

// Reload serves what the configuration says, unless a rollout owns the
// rulesets (ErrConflict). The baseline is the configured file's if its
// version differs from the one the state last took from the
// configuration, or if the state has none; otherwise the state's own (a
// promotion or an undo outlives an unchanged file). A change of the
// baseline, or of the configured candidate or its share, is journalled
// with actor (sighup, startup) and the old and new versions before it
// serves. It reports whether anything that serves changed. Reload owns
// cfg's rulesets: those it does not serve are retired.
func (c *Controller) Reload(ctx context.Context, cfg Configured, actor string, clock Clock) (changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := clock()
	var loaded *ruleset.Ruleset // the state's baseline, from its bundle
	defer func() {
		// cfg's rulesets (and a bundle loaded) that do not serve now are
		// retired; at start-up the router may already hold cfg's.
		served := c.router.Snapshot()
		for _, rs := range []*ruleset.Ruleset{cfg.Baseline, cfg.Candidate, loaded} {
			if rs != nil && rs != served.Baseline && rs != served.Candidate {
				rs.Retire()
			}
		}
	}()
	if c.lead != nil {
		return false, fmt.Errorf("a fleet changes rulesets through rollouts, so that every replica serves the same ones: reload refused: %w", ErrConflict)
	}
	if c.state.Phase.Active() {
		return false, fmt.Errorf("a rollout is %s: reload refused, the rollout owns the rulesets in service (roll back or promote first): %w", c.state.Phase, ErrConflict)
	}
	st, cur := c.state, c.router.Snapshot()
	next := router.Snapshot{Baseline: cur.Baseline}
	var why []string
	switch fileChanged := cfg.Baseline.Version != st.Configured; {
	case st.Baseline.Version == "" || fileChanged:
		// The configured file is new to the state: it is the baseline.
		if fileChanged && st.Configured != "" {
			why = append(why, fmt.Sprintf("rulesets.baseline changed to version %s", cfg.Baseline.Version))
		}
		if cur.Baseline.Version != cfg.Baseline.Version {
			next.Baseline = cfg.Baseline
		}
		st.Configured = cfg.Baseline.Version
	case cur.Baseline.Version != st.Baseline.Version:
		// The state's own baseline: in service already, or the file's
		// (same version), or from its bundle.
		rs := cfg.Baseline
		if rs.Version != st.Baseline.Version {
			if loaded, err = c.store.LoadRuleset(ctx, st.Baseline.Version); err != nil {
				return false, fmt.Errorf("serving the state's baseline %s: %w", st.Baseline.Version, err)
			}
			rs = loaded
		}
		next.Baseline = rs
	}
	if next.Baseline != cur.Baseline {
		why = append(why, fmt.Sprintf("baseline %s -> %s", cur.Baseline.Version, next.Baseline.Version))
	}
	if st.Baseline.Version != next.Baseline.Version {
		if err := c.store.SaveRuleset(ctx, next.Baseline); err != nil { // undo must be able to come back to it
			return false, err
		}
	}
	st.Baseline = RulesetRef{Version: next.Baseline.Version, Path: next.Baseline.Path}
	st.Baselines = served(st.Baselines, st.Baseline, ActionReload, now, c.conf().KeepBaselines)

	switch {
	case cfg.Candidate != nil && cfg.Candidate.Version == st.Withdrawn:
		// Rolled back: not served again until the file changes.
		c.log.Warn("rulesets.candidate is not served: it was rolled back; change the file, or remove it from the configuration", "version", st.Withdrawn)
	case cfg.Candidate != nil:
		st.Withdrawn = ""
		next.Candidate, next.Share, next.ShadowSample = cfg.Candidate, cfg.Share, cfg.ShadowSample
		if cur.Candidate != nil && cur.Candidate.Version == cfg.Candidate.Version {
			next.Candidate = cur.Candidate // the one in service, not a second compile
		}
	}
	if v, w := versionOf(cur.Candidate), versionOf(next.Candidate); v != w || (w != "" && (cur.Share != next.Share || cur.ShadowSample != next.ShadowSample)) {
		why = append(why, fmt.Sprintf("configured candidate %q at %g%% -> %q at %g%%", v, cur.Share.Percent(), w, next.Share.Percent()))
	}
	if len(why) == 0 && stateEqual(st, c.state) {
		return false, nil
	}
	reason := strings.Join(why, "; ")
	switch {
	case reason != "":
	case c.state.Configured == "":
		reason = fmt.Sprintf("baseline %s from rulesets.baseline (%s): kept from now on for undo", st.Baseline.Version, cfg.Baseline.Path)
	default:
		reason = "rulesets.baseline now names the version in service: nothing served changes"
	}
	d := Decision{Time: now, Action: ActionReload, Reason: reason, Actor: actor}
	ch := change{st: st, d: d}
	if !next.Same(cur) {
		ch.next = &next
	}
	if _, err := c.apply(ctx, ch); err != nil {
		return false, err
	}
	c.prune(ctx)
	return len(why) > 0, nil
}

func versionOf(rs *ruleset.Ruleset) string {
	if rs == nil {
		return ""
	}
	return rs.Version
}

// stateEqual compares what Reload may change of a state.
func stateEqual(a, b State) bool {
	return a.Baseline.Version == b.Baseline.Version && a.Configured == b.Configured && a.Withdrawn == b.Withdrawn && slices.EqualFunc(a.Baselines, b.Baselines,
		func(x, y RulesetRef) bool { return x.Version == y.Version })
}

// ErrNothingToUndo says no earlier baseline is kept.
var ErrNothingToUndo = fmt.Errorf("no earlier baseline is kept to go back to (wafcanary history lists the versions kept): %w", ErrConflict)

// ErrAlreadyUndone says the undo asked for is in force already: the
// baseline that serves was put back by an undo (undo without a version),
// or is the version asked for. An undo, like a rollback, may be sent twice
// (a double click, two operators at once): the controller answers this as
// a success that changes nothing. It is a conflict for callers that do not.
var ErrAlreadyUndone = fmt.Errorf("already undone (%w)", ErrConflict)

// alreadyUndone is ErrAlreadyUndone with what is in force, which the
// controller's answer gives on its own.
type alreadyUndone struct{ why string }

func (e alreadyUndone) Error() string { return e.why + ": " + ErrAlreadyUndone.Error() }
func (e alreadyUndone) Unwrap() error { return ErrAlreadyUndone }

// Undone is st with the baseline set back to version to (a version in
// st.Baselines, or a unique prefix of one), or, with to empty, to the
// baseline that served before the last promotion (or reload) put the
// current one in service; d is recorded as its last decision. An undo in
// force already is ErrAlreadyUndone. It is the one undo transition, for
// the controller and for a fleet's store written to directly.
func Undone(st State, to string, d Decision) (State, RulesetRef, error) {
	if st.Phase.Active() {
		return st, RulesetRef{}, fmt.Errorf("a rollout is %s: roll it back first (wafcanary rollback); undo changes the baseline when no rollout runs: %w", st.Phase, ErrConflict)
	}
	var target *RulesetRef
	if to == "" {
		if n := len(st.Baselines); n > 0 && st.Baselines[n-1].Version == st.Baseline.Version && st.Baselines[n-1].By == ActionUndo {
			// Undo undoes the last promotion, once: asked again, it
			// must not undo the undo.
			cur := st.Baselines[n-1]
			return st, RulesetRef{}, alreadyUndone{fmt.Sprintf("baseline %s serves again since %s, put back by an undo: the change before it is undone already; to serve another kept baseline, undo --to VERSION (wafcanary history lists them)",
				cur.Version, cur.Since.UTC().Format(time.RFC3339))}
		}
		for i := len(st.Baselines) - 1; i >= 0 && target == nil; i-- {
			if st.Baselines[i].Version != st.Baseline.Version {
				target = &st.Baselines[i]
			}
		}
	}
	for i, b := range st.Baselines {
		if to == "" || !strings.HasPrefix(b.Version, to) {
			continue
		}
		if target != nil && target.Version != b.Version {
			return st, RulesetRef{}, fmt.Errorf("version %q matches both %s and %s; give more of it: %w", to, target.Version, b.Version, ErrBadRequest)
		}
		target = &st.Baselines[i]
	}
	switch {
	case target == nil && to == "":
		return st, RulesetRef{}, ErrNothingToUndo
	case target == nil:
		return st, RulesetRef{}, fmt.Errorf("version %q is not among the baselines kept (wafcanary history lists them): %w", to, ErrBadRequest)
	case target.Version == st.Baseline.Version:
		return st, RulesetRef{}, alreadyUndone{fmt.Sprintf("baseline %s serves already", target.Version)}
	}
	ref := *target
	d.Reason = fmt.Sprintf("%s (baseline %s -> %s)", d.Reason, st.Baseline.Version, ref.Version)
	st.Phase, st.Percent, st.Candidate = Idle, 0, nil
	st.Baseline = RulesetRef{Version: ref.Version, Path: ref.Path}
	st.Baselines = served(st.Baselines, st.Baseline, ActionUndo, d.Time, 0)
	st.LastDecision = &d
	return st, ref, nil
}

// Undo makes a baseline that served before the baseline again, from the
// next request: the one before the last promotion, or version to. It is
// refused while a rollout runs. It is idempotent: an undo in force
// already (ErrAlreadyUndone) records nothing, changes nothing and
// succeeds, unchanged saying why; unchanged is "" when the undo took
// effect. In a fleet any replica may undo, as any may roll back: the
// record is what every other replica follows.
func (c *Controller) Undo(ctx context.Context, to, actor, reason string, clock Clock) (st State, unchanged string, err error) {
	start := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if reason == "" {
		return c.state, "", fmt.Errorf("a reason is required: %w", ErrBadRequest)
	}
	st, ref, err := Undone(c.state, to, Decision{Time: clock(), Action: ActionUndo, Reason: reason, Actor: actor})
	if done, ok := errors.AsType[alreadyUndone](err); ok {
		return c.state, done.why, nil
	}
	if err != nil {
		return c.state, "", err
	}
	cur := c.router.Snapshot()
	rs := cur.Baseline
	if rs.Version != ref.Version {
		if rs, err = c.store.LoadRuleset(ctx, ref.Version); err != nil {
			return c.state, "", fmt.Errorf("undo to %s: %w", ref.Version, err)
		}
	}
	// Recorded first, served second, as every other decision.
	if _, err := c.apply(ctx, change{st: st, d: *st.LastDecision, latency: time.Since(start), next: &router.Snapshot{Baseline: rs}}); err != nil {
		if rs != cur.Baseline {
			rs.Retire()
		}
		return c.state, "", err
	}
	c.prune(ctx)
	return c.state, "", nil
}

// served returns the baselines with ref moved (or added) to the end, as
// the one serving since now, put in service by decision by, and, with
// keep > 0, the oldest dropped so at most keep remain.
func served(list []RulesetRef, ref RulesetRef, by Action, now time.Time, keep int) []RulesetRef {
	out := make([]RulesetRef, 0, len(list)+1)
	for _, b := range list {
		if b.Version != ref.Version {
			out = append(out, b)
		}
	}
	if last := len(list) - 1; last >= 0 && list[last].Version == ref.Version {
		// Still serving: keep when it began, and what began it.
		ref.Since, ref.By = list[last].Since, list[last].By
	} else {
		ref.Since, ref.By = now, by
	}
	out = append(out, ref)
	if keep > 0 && len(out) > keep {
		out = out[len(out)-keep:]
	}
	return out
}

// prune deletes the bundles of baselines no longer kept and of
// candidates other than the last rollout's, so state_dir holds at most
// keep_baselines + 1 of them. Called with c.mu held, after the state that
// drops them is recorded; a failure only leaves files behind.
func (c *Controller) prune(ctx context.Context) {
	keep := make([]string, 0, len(c.state.Baselines)+1)
	for _, b := range c.state.Baselines {
		keep = append(keep, b.Version)
	}
	if c.state.Candidate != nil {
		keep = append(keep, c.state.Candidate.Version)
	}
	if err := c.store.PruneRulesets(ctx, keep); err != nil {
		c.log.Warn("old ruleset bundles not removed", "error", err.Error())
	}
}
