package rollout

import (
	"context"
	"fmt"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// Loader compiles a saved ruleset bundle by version (Store.LoadRuleset).
type Loader func(ctx context.Context, version string) (*ruleset.Ruleset, error)

// Restore serves the saved state after a restart: the candidate (and a
// promoted baseline) come back from their bundles at the saved share. A
// static candidate from the configuration stays unless a rollout is under
// way. load fetches a bundle by version.
func (c *Controller) Restore(ctx context.Context, load Loader) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.serve(ctx, c.state, load, true); err != nil {
		return err
	}
	if c.state.Phase.Active() {
		c.evidence.Reset(windowsOf(c.state))
	}
	return nil
}

// Sync adopts a state another replica of the fleet wrote: its routing is
// served at once (bundles fetched by load when not already in service)
// and, if the rollout moved, any analysis in progress is discarded and the
// evidence window restarts at the step's start. adopt runs first, under
// the controller's lock, so the store can record which revision this
// replica's decisions build on; it returns false for a state older than
// the one adopted, which is then ignored. The state is adopted even if
// its rulesets cannot be served (the error says why): the replica keeps
// serving what it has, and its status shows it lagging.
func (c *Controller) Sync(ctx context.Context, st State, load Loader, adopt func() bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if adopt != nil && !adopt() {
		return nil
	}
	err := c.serve(ctx, st, load, false)
	prev := c.state
	c.state = st
	moved := !c.synced || prev.Phase != st.Phase || prev.Step != st.Step || !prev.StepStarted.Equal(st.StepStarted) ||
		!prev.Started.Equal(st.Started) || prev.Baseline != st.Baseline
	c.synced = true
	if moved {
		c.gen.Add(1)
		if st.Phase.Active() {
			c.evidence.Reset(windowsOf(st))
		}
	}
	c.report(nil, "")
	return err
}

// serve puts st's routing in force, reusing rulesets already in service.
// keepStatic keeps a candidate that no rollout owns (one configured in
// the file) when st has none. Called with c.mu held.
func (c *Controller) serve(ctx context.Context, st State, load Loader, keepStatic bool) error {
	cur := c.router.Snapshot()
	var fresh []*ruleset.Ruleset
	fail := func(err error) error {
		for _, rs := range fresh {
			rs.Retire()
		}
		return err
	}
	get := func(v string) (*ruleset.Ruleset, error) {
		for _, rs := range []*ruleset.Ruleset{cur.Baseline, cur.Candidate} {
			if rs != nil && rs.Version == v {
				return rs, nil
			}
		}
		rs, err := load(ctx, v)
		if err == nil {
			fresh = append(fresh, rs)
		}
		return rs, err
	}
	next := router.Snapshot{Baseline: cur.Baseline}
	if keepStatic {
		next = *cur
	}
	if st.Baseline.Version != "" {
		base, err := get(st.Baseline.Version)
		if err != nil {
			return fail(fmt.Errorf("serving baseline %s: %w", st.Baseline.Version, err))
		}
		next.Baseline = base
	}
	if st.Phase.Active() && st.Candidate != nil {
		cand, err := get(st.Candidate.Version)
		if err != nil {
			return fail(fmt.Errorf("serving candidate %s: %w", st.Candidate.Version, err))
		}
		next.Candidate = cand
		next.Share, _ = router.ParseShare(st.Percent)
		if next.Hosts, err = router.NewHosts(st.Hosts); err != nil {
			return fail(fmt.Errorf("state hosts: %w", err))
		}
		next.ShadowSample = c.shadowSample
		if st.ShadowSample > 0 {
			next.ShadowSample, _ = router.ParseShare(st.ShadowSample)
		}
	} else if !keepStatic || next.Baseline != cur.Baseline {
		next.Candidate, next.Share, next.ShadowSample, next.Hosts = nil, 0, 0, nil
	}
	if next.Same(cur) {
		return nil
	}
	c.swapMu.Lock()
	defer c.swapMu.Unlock()
	if c.rollingBack > 0 || c.router.Snapshot() != cur {
		// A rollback took the candidate out while the bundles loaded;
		// serving st now would put it back before it is recorded.
		return fail(ErrRollingBack)
	}
	if err := c.router.Swap(&next); err != nil {
		return fail(err)
	}
	return nil
}
