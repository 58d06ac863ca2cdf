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
	// cfg is swapped whole by Reconfigure, between rollouts only; read it
	// once per use through conf.
	cfg          atomic.Pointer[Config]
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
	// decided is the time of the last decision recorded: an analysis
	// begun before it judged a rollout that has moved on since.
	decided time.Time
	// swapMu orders the changes of what serves. A rollback takes the
	// candidate out under it alone, without mu, so it never waits for an
	// analysis; every other decision holds it from its record to its
	// swap, so a rollback cannot land in between (and retire the
	// candidate a promotion is about to serve). Never held while waiting
	// for mu.
	swapMu sync.Mutex
	// rollingBack counts rollbacks that have taken the candidate out of
	// service and wait for mu to record it; until they have, every other
	// decision is refused (ErrRollingBack). Guarded by swapMu.
	rollingBack int
	gen         atomic.Int64 // bumped by every change; stale analyses are discarded
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
	// Clock dates what New decides (a rollout paused at start-up because
	// rollout.steps has fewer steps); nil is time.Now.
	Clock Clock
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
	c := &Controller{router: o.Router, evidence: o.Evidence, store: o.Store, reporter: o.Reporter, notify: o.Notify, probe: o.Probe, lead: o.Leadership, log: o.Logger, shadowSample: o.ShadowSample, state: st}
	cfg := o.Config
	c.cfg.Store(&cfg)
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Leadership == nil {
		if err := c.fitSteps(ctx, o.Clock()); err != nil {
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
	st, steps := c.state, c.confOf(c.state).Steps
	if !st.Phase.Active() || st.Step < len(steps) {
		return nil
	}
	step := 0
	for i, s := range steps {
		if s.Percent <= st.Percent {
			step = i
		}
	}
	next := "promotion"
	if step+1 < len(steps) {
		next = fmt.Sprintf("step %d (%g%%)", step+2, steps[step+1].Percent)
	}
	// Steps are numbered from 1 here, as everywhere a person reads them.
	reason := fmt.Sprintf("rollout.steps has %d steps, the rollout was at step %d: paused at %g%%, the share it serves, as step %d (%g%%); resume goes on to %s once that step's checks pass, or roll back",
		len(steps), st.Step+1, st.Percent, step+1, steps[step].Percent, next)
	st.Step, st.Phase = step, Paused
	_, err := c.apply(ctx, change{st: st, d: Decision{Time: now, Action: ActionPause, Reason: reason, Actor: "startup"}})
	return err
}

// Journal records e, a note that changes nothing served (a start's
// gates overridden), dated by clock and given the state's phase under the
// controller's lock, as every decision is: the journal stays in order.
func (c *Controller) Journal(ctx context.Context, clock Clock, e Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.Time, e.State = clock(), c.state.Phase
	a := AttributionOf(ctx)
	if e.Ticket == "" {
		e.Ticket = a.Ticket
	}
	if e.Claimed == "" {
		e.Claimed = a.Claimed
	}
	if err := c.store.Append(ctx, e); err != nil {
		return fmt.Errorf("journalling %s: %w", e.Action, err)
	}
	return nil
}

// State returns the current state.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Config returns the controller's configuration.
func (c *Controller) Config() Config { return *c.cfg.Load() }

// conf is the configuration in force.
func (c *Controller) conf() *Config { return c.cfg.Load() }

// confOf is the configuration st runs under: the configured one, with the
// steps and max_duration of the preset it started with, if any.
func (c *Controller) confOf(st State) *Config {
	cfg := c.conf()
	if len(st.Steps) == 0 {
		return cfg
	}
	own := *cfg
	own.Steps, own.MaxDuration = st.Steps, st.MaxDuration
	return &own
}

// StepsOf are the steps st runs under: its preset's, or the configured
// ones. It takes no lock: a Notify, called with the controller's held,
// reads the steps of the state it is given.
func (c *Controller) StepsOf(st State) []Step {
	return c.confOf(st).Steps
}

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

// Clock reads the time. The actions take one rather than a time and read
// it under the controller's lock, so the journal's times follow the order
// in which decisions took effect; time.Now is the real clock.
type Clock func() time.Time

// ErrRollingBack refuses a decision while a rollback that has already
// taken the candidate out of service waits to be recorded: the decision
// was taken on a rollout that is ending.
var ErrRollingBack = fmt.Errorf("a rollback is under way: it took the candidate out of service and is being recorded (%w)", ErrConflict)

// change is one decision: as commit records it, and, but for a
// rollback's, as apply carries it out.
type change struct {
	st      State
	d       Decision
	latency time.Duration
	// withdrawn is the candidate a rollback took out that no rollout put
	// in (rulesets.candidate): st has none to name in the journal.
	withdrawn string
	// next is the routing to serve once recorded; nil leaves it.
	next *router.Snapshot
	// resetEvidence starts st's evidence windows between the record and
	// the swap, for a new rollout or step.
	resetEvidence bool
}

// apply records a decision, then serves its routing: recorded first,
// served second. It holds swapMu from the check to the swap, so a
// rollback's swap lands before (and the decision is refused) or after,
// never in between. A decision refused, or one the store does not take,
// leaves nothing recorded and nothing served. next must have been built
// from the routing read under c.mu: no other swap can come between but a
// rollback's, which refuses this one. Called with c.mu held.
func (c *Controller) apply(ctx context.Context, ch change) (State, error) {
	c.swapMu.Lock()
	defer c.swapMu.Unlock()
	if c.rollingBack > 0 {
		return c.state, fmt.Errorf("%s refused: %w", ch.d.Action, ErrRollingBack)
	}
	if ch.next != nil {
		if err := ch.next.Validate(); err != nil {
			return c.state, fmt.Errorf("%s: %w", ch.d.Action, err)
		}
	}
	st, err := c.commit(ctx, ch)
	if err != nil {
		return st, err
	}
	if ch.resetEvidence {
		c.evidence.Reset(windowsOf(st))
	}
	if ch.next != nil {
		// Validated above, and nothing else swaps while swapMu is held.
		if err := c.router.Swap(ch.next); err != nil {
			return st, err
		}
	}
	return st, nil
}

// withdraw takes the candidate out of service at once, holding swapMu
// alone, and counts a rollback under way until done is called (with c.mu
// held, once it is recorded or refused). It returns the candidate it took
// out, nil if none served.
func (c *Controller) withdraw() (out *ruleset.Ruleset, done func(), err error) {
	c.swapMu.Lock()
	defer c.swapMu.Unlock()
	c.rollingBack++
	done = func() {
		c.swapMu.Lock()
		c.rollingBack--
		c.swapMu.Unlock()
	}
	cur := c.router.Snapshot()
	if cur.Candidate == nil {
		return nil, done, nil
	}
	if err := c.router.Swap(&router.Snapshot{Baseline: cur.Baseline}); err != nil {
		return nil, done, err
	}
	return cur.Candidate, done, nil
}

// commit records a change's state with its decision in the store and
// journal, then makes it the controller's state, logs it, reports it to
// the metrics and tells the notifier. If the store refuses, nothing
// changes and the current state is returned with the error. Called with
// c.mu held; apply and the rollbacks call it, nothing else: every
// decision recorded is logged and counted the same way.
func (c *Controller) commit(ctx context.Context, ch change) (State, error) {
	st, d := ch.st, Attribute(ctx, ch.d)
	st.LastDecision = &d
	e := NewEntry(st, d, ch.latency)
	if ch.withdrawn != "" {
		e.Candidate = ch.withdrawn
	}
	if err := c.store.Commit(ctx, st, e); err != nil {
		c.log.Error("rollout "+string(d.Action)+" not recorded", "actor", d.Actor, "error", err.Error())
		return c.state, fmt.Errorf("recording %s: %w", d.Action, err)
	}
	c.gen.Add(1)
	prev := c.state
	c.state = st
	if d.Time.After(c.decided) {
		c.decided = d.Time
	}
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
	t := time.NewTicker(c.conf().Interval) // a new interval takes a restart (Reconfigure)
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
