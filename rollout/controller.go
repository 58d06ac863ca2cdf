// Package rollout walks a candidate ruleset through its steps, judges it
// against the baseline at every step, and promotes or rolls it back by
// policy. Operators can pause, resume, promote and roll back at any time.
package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// Router is the part of the router the controller drives.
type Router interface {
	Snapshot() *router.Snapshot
	Swap(*router.Snapshot) error
}

// EvidenceSource gives the evidence gathered in the current window: the
// in-process evidence.Collector on one node, Prometheus summed over a fleet.
type EvidenceSource interface {
	// Evidence returns the window's evidence; an error means there is
	// nothing to judge, and the analysis is inconclusive.
	Evidence(ctx context.Context) (evidence.Evidence, error)
	// Reset starts the windows of w; sources that can look back
	// (Prometheus) count from their starts.
	Reset(w evidence.Windows)
}

// Store keeps state, journal and ruleset bundles: FileStore on one node,
// etcd for a fleet.
type Store interface {
	Load(ctx context.Context) (State, error)
	// Commit saves st and journals e as one change. A shared store refuses
	// it with ErrStale when another replica changed the state since this
	// one read it, and with ErrNotLeader, except for a rollback, when this
	// replica no longer leads.
	Commit(ctx context.Context, st State, e Entry) error
	Append(ctx context.Context, e Entry) error
	SaveRuleset(ctx context.Context, rs *ruleset.Ruleset) error
	LoadRuleset(ctx context.Context, version string) (*ruleset.Ruleset, error)
	// PruneRulesets deletes every bundle whose version is not in keep.
	PruneRulesets(ctx context.Context, keep []string) error
}

// Leadership says whether this replica may take decisions. Without one
// (a single node) it always may.
type Leadership interface {
	Leading() bool
	// Leader names the replica that leads, "" when none does or it is
	// not known.
	Leader() string
}

var _ Store = FileStore{}

// Probe checks, at every analysis, that the candidate still blocks what it
// must, judging in process; it returns a reason naming the first case it
// lets through that the baseline blocks, or "".
type Probe func(ctx context.Context, st State, base, cand *ruleset.Ruleset) (string, error)

// Reporter is told about every state change and analysis, for metrics.
type Reporter interface {
	ReportRollout(st State, a *Analysis, decision Action)
}

// Notify is told of every decision recorded, with the state before and
// after, to tell people (notification webhooks). It must not block.
type Notify func(prev, st State, d Decision)

// Controller runs rollouts. It is safe for concurrent use: the analysis
// runs without its lock, so a rollback never waits for one.
type Controller struct {
	cfg          Config
	router       Router
	evidence     EvidenceSource
	store        Store
	reporter     Reporter
	notify       Notify
	probe        Probe
	lead         Leadership
	log          *slog.Logger
	shadowSample router.Share

	mu    sync.Mutex
	state State
	gen   atomic.Int64 // bumped by every change; stale analyses are discarded
	// synced is set by the first Sync: until then the state is what New
	// read (or, in a fleet that could not reach its store, none), and the
	// evidence window has not been set to its step.
	synced bool
	// unrecorded is a rollback in force that the store refused to record
	// (a full disk): the controller's state already says rolled back, and
	// every analysis retries the record first.
	unrecorded *unrecorded
}

// Options wire a Controller.
type Options struct {
	Config   Config
	Router   Router
	Evidence EvidenceSource
	Store    Store
	Reporter Reporter // optional
	Notify   Notify   // optional
	Probe    Probe    // optional
	// Leadership is set for a fleet: only the leader analyses, starts,
	// pauses, resumes and promotes; any replica may roll back.
	Leadership Leadership
	Logger     *slog.Logger
	// ShadowSample is the shadow share used while a rollout runs.
	ShadowSample router.Share
}

// New returns a controller in the state the store holds. Call Restore to
// put that state's rulesets back into service after a restart. In a fleet
// (Options.Leadership set) a store that cannot be read is not fatal: the
// replica starts idle, serving what it was configured with, and takes
// the fleet's state at its first Sync.
func New(o Options) (*Controller, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("rollout.%w", err)
	}
	ctx := context.Background() // start-up: nothing to cancel it yet
	st, err := o.Store.Load(ctx)
	switch {
	case err != nil && o.Leadership == nil:
		return nil, err
	case err != nil:
		o.Logger.Warn("rollout state unreadable; starting idle until the fleet's state store answers", "error", err.Error())
		st = State{Phase: Idle}
	}
	if err := st.Check(); err != nil {
		return nil, fmt.Errorf("rollout state: %w (fix or remove it; the journal keeps its history)", err)
	}
	c := &Controller{cfg: o.Config, router: o.Router, evidence: o.Evidence, store: o.Store, reporter: o.Reporter, notify: o.Notify, probe: o.Probe, lead: o.Leadership, log: o.Logger, shadowSample: o.ShadowSample, state: st}
	if o.Leadership == nil {
		if err := c.fitSteps(ctx, time.Now()); err != nil {
			return nil, err
		}
	}
	c.report(nil, "")
	return c, nil
}

// fitSteps pauses a rollout whose step the configured steps no longer
// have (rollout.steps was shortened while it ran): at the step with the
// largest share not above the one it serves, so resuming never raises
// the share past where it was. It is recorded like any decision. Called
// without c.mu.
func (c *Controller) fitSteps(ctx context.Context, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state
	if !st.Phase.Active() || st.Step < len(c.cfg.Steps) {
		return nil
	}
	step := 0
	for i, s := range c.cfg.Steps {
		if s.Percent <= st.Percent {
			step = i
		}
	}
	next := "promotion"
	if step+1 < len(c.cfg.Steps) {
		next = fmt.Sprintf("step %d (%g%%)", step+2, c.cfg.Steps[step+1].Percent)
	}
	// Steps are numbered from 1 here, as everywhere a person reads them.
	reason := fmt.Sprintf("rollout.steps has %d steps, the rollout was at step %d: paused at %g%%, the share it serves, as step %d (%g%%); resume goes on to %s once that step's checks pass, or roll back",
		len(c.cfg.Steps), st.Step+1, st.Percent, step+1, c.cfg.Steps[step].Percent, next)
	st.Step, st.Phase = step, Paused
	_, err := c.commit(ctx, st, Decision{Time: now, Action: ActionPause, Reason: reason, Actor: "startup"}, 0)
	return err
}

// State returns the current state.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Config returns the controller's configuration.
func (c *Controller) Config() Config { return c.cfg }

// leading refuses a decision on a replica that does not lead.
// CanDecide returns ErrNotLeader, naming the leader, when another
// replica takes this fleet's decisions: a caller can refuse a request
// before doing the work it would need (gates) rather than after.
func (c *Controller) CanDecide() error { return c.leading() }

func (c *Controller) leading() error {
	if c.lead == nil || c.lead.Leading() {
		return nil
	}
	if l := c.lead.Leader(); l != "" {
		return fmt.Errorf("%w: replica %s leads; send this to its admin API", ErrNotLeader, l)
	}
	return fmt.Errorf("%w: no replica leads right now (is the state store reachable?)", ErrNotLeader)
}

// commit records st with its decision in the store and journal, then
// makes it the controller's state. If the store refuses, nothing changes
// and the current state is returned with the error. Called with c.mu held.
func (c *Controller) commit(ctx context.Context, st State, d Decision, latency time.Duration) (State, error) {
	st.LastDecision = &d
	if err := c.store.Commit(ctx, st, NewEntry(st, d, latency)); err != nil {
		c.log.Error("rollout "+string(d.Action)+" not recorded", "actor", d.Actor, "error", err.Error())
		return c.state, fmt.Errorf("recording %s: %w", d.Action, err)
	}
	c.gen.Add(1)
	prev := c.state
	c.state = st
	c.log.Info("rollout "+string(d.Action), "actor", d.Actor, "reason", d.Reason, "state", string(st.Phase), "step", st.Step, "candidate_percent", st.Percent)
	c.report(d.Analysis, d.Action)
	c.told(prev, st, d)
	return st, nil
}

func (c *Controller) told(prev, st State, d Decision) {
	if c.notify != nil {
		c.notify(prev, st, d)
	}
}

func (c *Controller) report(a *Analysis, decision Action) {
	if c.reporter != nil {
		c.reporter.ReportRollout(c.state, a, decision)
	}
}

// Run calls Step every interval until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := c.Step(ctx, now); err != nil {
				c.log.Error("rollout analysis failed", "error", err)
			}
		}
	}
}
