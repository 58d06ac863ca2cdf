// Package rollout walks a candidate ruleset through its steps, judges it
// against the baseline at every step, and promotes or rolls it back by
// policy. Operators can pause, resume, promote and roll back at any time.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// Phase is where a rollout stands.
type Phase string

// Phases. Shadow, Progressing and Paused are active; the others are at rest.
const (
	Idle        Phase = "idle"
	Shadow      Phase = "shadow"      // share 0, candidate judged in shadow
	Progressing Phase = "progressing" // candidate enforcing on a step's share
	Paused      Phase = "paused"      // share held, analysis goes on
	Promoted    Phase = "promoted"
	RolledBack  Phase = "rolled_back"
)

// Phases lists every phase, for one metric series each.
var Phases = []Phase{Idle, Shadow, Progressing, Paused, Promoted, RolledBack}

// Active reports whether a rollout is under way.
func (p Phase) Active() bool { return p == Shadow || p == Progressing || p == Paused }

// RulesetRef names a ruleset by version, with where it came from.
type RulesetRef struct {
	Version string `json:"version"`
	Path    string `json:"path"`
	// Since is when it began serving as the baseline (in State.Baselines).
	Since time.Time `json:"since,omitzero"`
}

// Action is what a decision did, as the journal and the metrics name it.
type Action string

// Actions. ActionNone is an analysis that could not act (no rollout, the
// state changed under it); ActionHold one that chose not to.
const (
	ActionStart         Action = "start"
	ActionAdvance       Action = "advance"
	ActionPromote       Action = "promote"
	ActionRollback      Action = "rollback"
	ActionHold          Action = "hold"
	ActionPause         Action = "pause"
	ActionResume        Action = "resume"
	ActionUndo          Action = "undo"
	ActionReload        Action = "reload"
	ActionNone          Action = "none"
	ActionGatesOverride Action = "gates_override"
)

// Decision is what the controller, or an operator, decided.
type Decision struct {
	Time     time.Time `json:"time"`
	Action   Action    `json:"action"`
	Reason   string    `json:"reason"`
	Actor    string    `json:"actor"`
	Analysis *Analysis `json:"analysis,omitempty"`
}

// State is the durable rollout state.
type State struct {
	Phase       Phase          `json:"state"`
	Step        int            `json:"step"`
	Percent     float64        `json:"candidate_percent"`
	Started     time.Time      `json:"started,omitzero"`
	StepStarted time.Time      `json:"step_started,omitzero"`
	Baseline    RulesetRef     `json:"baseline"`
	Candidate   *RulesetRef    `json:"candidate,omitempty"`
	Scope       evidence.Scope `json:"scope"`
	Reason      string         `json:"reason,omitempty"`
	// ShadowSample is the shadow share (percent) while the rollout runs;
	// with Baseline, Candidate and Percent it is the routing every replica
	// serves. Zero means the serving replica's own shadow.sample_percent
	// (states saved before it was recorded).
	ShadowSample float64 `json:"shadow_sample_percent,omitempty"`
	// Cases is the candidate's cases file, whose must_block cases the
	// live probe checks at every analysis.
	Cases        string    `json:"cases,omitempty"`
	LastDecision *Decision `json:"last_decision,omitempty"`
	// Configured is the version of the configured baseline file
	// (rulesets.baseline) this state last took: a reload or restart that
	// finds the file at this version keeps the state's own baseline (a
	// promotion or an undo outlives an unchanged file); another version is
	// a new baseline, journalled.
	Configured string `json:"configured_baseline,omitempty"`
	// Baselines are the baselines that have served, oldest first, the one
	// serving last: the versions undo can go back to. Their bundles are
	// kept (rollout.keep_baselines of them).
	Baselines []RulesetRef `json:"baselines,omitempty"`
	// Withdrawn is the version of a candidate the configuration names
	// (rulesets.candidate) that was rolled back: reloads and restarts do
	// not serve it again until the file changes.
	Withdrawn string `json:"withdrawn_candidate,omitempty"`
}

// Errors callers branch on.
var (
	ErrConflict   = errors.New("conflicts with the rollout's state")
	ErrBadRequest = errors.New("bad request")
	// ErrNotLeader: another replica of the fleet takes decisions.
	ErrNotLeader = fmt.Errorf("this replica does not lead the fleet's rollout (%w)", ErrConflict)
	// ErrStale: the shared state changed since this replica read it.
	ErrStale = fmt.Errorf("the rollout state changed on another replica; read the status again and retry if the action still applies (%w)", ErrConflict)
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
	Load() (State, error)
	// Commit saves st and journals e as one change. A shared store refuses
	// it with ErrStale when another replica changed the state since this
	// one read it, and with ErrNotLeader, except for a rollback, when this
	// replica no longer leads.
	Commit(st State, e Entry) error
	Append(Entry) error
	SaveRuleset(*ruleset.Ruleset) error
	LoadRuleset(version string) (*ruleset.Ruleset, error)
	// PruneRulesets deletes every bundle whose version is not in keep.
	PruneRulesets(keep []string) error
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

// Controller runs rollouts. It is safe for concurrent use: the analysis
// runs without its lock, so a rollback never waits for one.
type Controller struct {
	cfg          Config
	router       Router
	evidence     EvidenceSource
	store        Store
	reporter     Reporter
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

type unrecorded struct {
	st      State
	d       Decision
	latency time.Duration
}

// Options wire a Controller.
type Options struct {
	Config   Config
	Router   Router
	Evidence EvidenceSource
	Store    Store
	Reporter Reporter // optional
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
	st, err := o.Store.Load()
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
	c := &Controller{cfg: o.Config, router: o.Router, evidence: o.Evidence, store: o.Store, reporter: o.Reporter, probe: o.Probe, lead: o.Leadership, log: o.Logger, shadowSample: o.ShadowSample, state: st}
	if o.Leadership == nil {
		if err := c.fitSteps(time.Now()); err != nil {
			return nil, err
		}
	}
	c.report(nil, "")
	return c, nil
}

// Check reports a state that cannot have been written by a controller: a
// file edited by hand, or torn by something other than a crash (the file
// store's writes are atomic).
func (st State) Check() error {
	switch {
	case !slices.Contains(Phases, st.Phase):
		return fmt.Errorf("unknown state %q", st.Phase)
	case !(st.Percent >= 0 && st.Percent <= 100):
		return fmt.Errorf("candidate_percent: must be between 0 and 100, got %v", st.Percent)
	case !(st.ShadowSample >= 0 && st.ShadowSample <= 100):
		return fmt.Errorf("shadow_sample_percent: must be between 0 and 100, got %v", st.ShadowSample)
	case st.Step < 0:
		return fmt.Errorf("step: must not be negative, got %d", st.Step)
	case st.Phase.Active() && (st.Candidate == nil || st.Candidate.Version == ""):
		return fmt.Errorf("a rollout %s without a candidate", st.Phase)
	case st.Phase.Active() && st.Baseline.Version == "":
		return fmt.Errorf("a rollout %s without a baseline", st.Phase)
	}
	if _, err := router.ParseShare(st.Percent); err != nil {
		return fmt.Errorf("candidate_percent: %w", err)
	}
	return nil
}

// fitSteps pauses a rollout whose step the configured steps no longer
// have (rollout.steps was shortened while it ran): at the step with the
// largest share not above the one it serves, so resuming never raises
// the share past where it was. It is recorded like any decision. Called
// without c.mu.
func (c *Controller) fitSteps(now time.Time) error {
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
		next = fmt.Sprintf("step %d (%g%%)", step+1, c.cfg.Steps[step+1].Percent)
	}
	reason := fmt.Sprintf("rollout.steps has %d steps, the rollout was at step %d: paused at %g%%, the share it serves, as step %d (%g%%); resume goes on to %s once that step's checks pass, or roll back",
		len(c.cfg.Steps), st.Step, st.Percent, step, c.cfg.Steps[step].Percent, next)
	st.Step, st.Phase = step, Paused
	_, err := c.commit(st, Decision{Time: now, Action: ActionPause, Reason: reason, Actor: "startup"}, 0)
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

// Restore serves the saved state after a restart: the candidate (and a
// promoted baseline) come back from their bundles at the saved share. A
// static candidate from the configuration stays unless a rollout is under
// way. load fetches a bundle by version.
func (c *Controller) Restore(load func(version string) (*ruleset.Ruleset, error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.serve(c.state, load, true); err != nil {
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
func (c *Controller) Sync(st State, load func(version string) (*ruleset.Ruleset, error), adopt func() bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if adopt != nil && !adopt() {
		return nil
	}
	err := c.serve(st, load, false)
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
func (c *Controller) serve(st State, load func(version string) (*ruleset.Ruleset, error), keepStatic bool) error {
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
		rs, err := load(v)
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
		next.ShadowSample = c.shadowSample
		if st.ShadowSample > 0 {
			next.ShadowSample, _ = router.ParseShare(st.ShadowSample)
		}
	} else if !keepStatic || next.Baseline != cur.Baseline {
		next.Candidate, next.Share, next.ShadowSample = nil, 0, 0
	}
	if next == *cur {
		return nil
	}
	if err := c.router.Swap(&next); err != nil {
		return fail(err)
	}
	return nil
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

// windowsOf returns the evidence windows of a rollout in state st.
func windowsOf(st State) evidence.Windows {
	return evidence.Windows{Scope: st.Scope, Rollout: st.Started, Step: st.StepStarted}
}

// Spec is what an operator says when starting a rollout.
type Spec struct {
	Scope  evidence.Scope
	Actor  string
	Reason string
	Cases  string // cases file for the live probe; optional
	// Baseline is the version the candidate was gated against; if another
	// baseline serves by the time the rollout would start (a reload or an
	// undo landed while the gates ran), the start is refused. Empty: not
	// checked.
	Baseline string
}

// Start begins a rollout of candidate from the current baseline.
func (c *Controller) Start(cand *ruleset.Ruleset, spec Spec, now time.Time) (State, error) {
	scope, actor, reason := spec.Scope, spec.Actor, spec.Reason
	c.mu.Lock()
	defer c.mu.Unlock()
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
	cur := c.router.Snapshot()
	if spec.Baseline != "" && spec.Baseline != cur.Baseline.Version {
		return c.state, fmt.Errorf("the baseline changed from %s to %s while the candidate was checked against it; start again: %w", spec.Baseline, cur.Baseline.Version, ErrConflict)
	}
	if cand.Version == cur.Baseline.Version {
		return c.state, fmt.Errorf("candidate %s is the baseline already: %w", cand.Version, ErrBadRequest)
	}
	for _, rs := range []*ruleset.Ruleset{cur.Baseline, cand} {
		if err := c.store.SaveRuleset(rs); err != nil {
			return c.state, err
		}
	}
	step := c.cfg.Steps[0]
	share, _ := router.ParseShare(step.Percent)
	next := &router.Snapshot{Baseline: cur.Baseline, Candidate: cand, Share: share, ShadowSample: c.shadowSample}
	if err := next.Validate(); err != nil {
		return c.state, err
	}
	st := State{
		Phase: phaseOf(step.Percent), Step: 0, Percent: step.Percent, Started: now, StepStarted: now,
		Baseline: RulesetRef{Version: cur.Baseline.Version, Path: cur.Baseline.Path}, Candidate: &RulesetRef{Version: cand.Version, Path: cand.Path},
		ShadowSample: c.shadowSample.Percent(), Scope: scope, Reason: reason, Cases: spec.Cases,
		Configured: c.state.Configured, Baselines: c.state.Baselines,
	}
	if len(st.Baselines) == 0 { // a state from before baselines were kept
		st.Baselines = []RulesetRef{{Version: cur.Baseline.Version, Path: cur.Baseline.Path, Since: now}}
	}
	// Recorded first, served second: a decision the store refused (a
	// fleet's leadership lost) must not be in force anywhere.
	st, err := c.commit(st, Decision{Time: now, Action: ActionStart, Reason: reason, Actor: actor}, 0)
	if err != nil {
		return st, err
	}
	c.evidence.Reset(windowsOf(st))
	return st, c.router.Swap(next)
}

func phaseOf(percent float64) Phase {
	if percent == 0 {
		return Shadow
	}
	return Progressing
}

// commit records st with its decision in the store and journal, then
// makes it the controller's state. If the store refuses, nothing changes
// and the current state is returned with the error. Called with c.mu held.
func (c *Controller) commit(st State, d Decision, latency time.Duration) (State, error) {
	st.LastDecision = &d
	if err := c.store.Commit(st, NewEntry(st, d, latency)); err != nil {
		c.log.Error("rollout "+string(d.Action)+" not recorded", "actor", d.Actor, "error", err.Error())
		return c.state, fmt.Errorf("recording %s: %w", d.Action, err)
	}
	c.gen.Add(1)
	c.state = st
	c.log.Info("rollout "+string(d.Action), "actor", d.Actor, "reason", d.Reason, "state", string(st.Phase), "step", st.Step, "candidate_percent", st.Percent)
	c.report(d.Analysis, d.Action)
	return st, nil
}

// NewEntry is the journal line of decision d, taken in state st (the
// state it leads to); latency is how long it took to take effect.
func NewEntry(st State, d Decision, latency time.Duration) Entry {
	e := Entry{Time: d.Time, Actor: d.Actor, Action: d.Action, Reason: d.Reason, State: st.Phase, Step: st.Step,
		Percent: st.Percent, Baseline: st.Baseline.Version, Analysis: d.Analysis, EffectLatency: latency}
	if st.Candidate != nil {
		e.Candidate = st.Candidate.Version
	}
	return e
}

func (c *Controller) report(a *Analysis, decision Action) {
	if c.reporter != nil {
		c.reporter.ReportRollout(c.state, a, decision)
	}
}

// Step analyses the evidence once and acts on it. It takes now so tests
// can drive it one interval at a time.
func (c *Controller) Step(ctx context.Context, now time.Time) (Decision, error) {
	if err := c.recordRollback(); err != nil {
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
	if st.Step >= len(c.cfg.Steps) {
		// Another replica's state, written under other steps.
		if err := c.fitSteps(now); err != nil {
			return Decision{}, err
		}
		return *c.State().LastDecision, nil
	}
	var probeFailure string
	if snap := c.router.Snapshot(); c.probe != nil && snap.Candidate != nil {
		var err error
		if probeFailure, err = c.probe(ctx, st, snap.Baseline, snap.Candidate); err != nil {
			c.log.Error("live probe failed to run", "error", err.Error())
		}
	}
	ev, evErr := c.evidence.Evidence(ctx)
	a := Evaluate(ev, c.cfg.Policy, st.Percent)
	step := c.cfg.Steps[st.Step]
	d := Decision{Time: now, Actor: "controller", Analysis: &a}
	if evErr != nil {
		// No evidence is never a pass; only the probe or max_duration
		// can end the rollout while it lasts.
		a = Analysis{Verdict: Inconclusive, Outcomes: []Outcome{{Check: "evidence", Verdict: Inconclusive, Required: true,
			Reason: "evidence unavailable: " + evErr.Error()}}}
	}
	switch {
	case probeFailure != "":
		// Known attacks are rare in live traffic: the evidence can look
		// healthy while protection is gone. A failed probe ends it at once.
		d.Action, d.Reason = ActionRollback, probeFailure
	case a.Verdict == Fail:
		d.Action, d.Reason = ActionRollback, a.Reason()
	case now.Sub(st.Started) >= c.cfg.MaxDuration && st.Phase != Paused:
		d.Action = Action(c.cfg.Policy.OnMaxDuration)
		d.Reason = fmt.Sprintf("inconclusive: no conclusion within max_duration %s (%s)", c.cfg.MaxDuration, a.Reason())
	case st.Phase == Paused:
		d.Action, d.Reason = ActionHold, "paused: "+a.Reason()
	case a.Verdict != Pass:
		d.Action, d.Reason = ActionHold, a.Reason()
	case now.Sub(st.StepStarted) < step.MinDuration:
		d.Action, d.Reason = ActionHold, fmt.Sprintf("checks pass; step %d needs %s, has %s", st.Step, step.MinDuration, now.Sub(st.StepStarted).Round(time.Second))
	case ev.CandidateRequests() < step.MinRequests:
		d.Action, d.Reason = ActionHold, fmt.Sprintf("checks pass; step %d needs %d requests judged by the candidate, has %d", st.Step, step.MinRequests, ev.CandidateRequests())
	case st.Step == len(c.cfg.Steps)-1:
		d.Action, d.Reason = ActionPromote, fmt.Sprintf("all checks pass at %v%% after %s: %s", st.Percent, now.Sub(st.Started).Round(time.Second), summary(a))
	default:
		d.Action, d.Reason = ActionAdvance, fmt.Sprintf("step %d passed (%v%%, %d requests): %s", st.Step, st.Percent, ev.CandidateRequests(), summary(a))
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return Decision{Time: now, Action: ActionNone, Reason: "state changed during analysis"}, nil
	}
	switch d.Action {
	case ActionHold:
		// Holding changes nothing; the analysis is journalled so the
		// history shows what each look saw.
		_, err := c.commit(c.state, d, 0)
		return d, err
	case ActionRollback:
		_, err := c.rollbackLocked(d, 0)
		return d, err
	case "pause":
		st.Phase = Paused
		_, err := c.commit(st, d, 0)
		return d, err
	case ActionPromote:
		_, err := c.promoteLocked(d)
		return d, err
	}
	next := c.cfg.Steps[st.Step+1]
	share, _ := router.ParseShare(next.Percent)
	snap := c.router.Snapshot().WithShare(share)
	st.Step, st.Percent, st.StepStarted, st.Phase = st.Step+1, next.Percent, now, phaseOf(next.Percent)
	if _, err := c.commit(st, d, 0); err != nil {
		return d, err
	}
	c.evidence.Reset(windowsOf(st))
	return d, c.router.Swap(snap)
}

func summary(a Analysis) string {
	s := ""
	for _, o := range a.Outcomes {
		if o.Verdict == Pass {
			if s != "" {
				s += "; "
			}
			s += o.Reason
		}
	}
	return s
}

// Rollback takes the candidate out of service at once, from any state, and
// then records why. It is idempotent: after a rollback, another succeeds
// and changes nothing. With no rollout in progress and no candidate
// serving it is refused with ErrConflict, naming undo: a rollback never
// changes the baseline.
func (c *Controller) Rollback(actor, reason string, now time.Time) (State, error) {
	start := time.Now()
	// Traffic first: one atomic swap, without waiting for the lock an
	// analysis in progress might be about to take.
	var static *ruleset.Ruleset
	if cur := c.router.Snapshot(); cur.Candidate != nil {
		if err := c.router.Swap(&router.Snapshot{Baseline: cur.Baseline}); err != nil {
			return c.State(), err
		}
		static = cur.Candidate
	}
	latency := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	if reason == "" {
		reason = "manual rollback"
	}
	switch {
	case c.state.Phase.Active():
		return c.rollbackLocked(Decision{Time: now, Action: ActionRollback, Reason: reason, Actor: actor}, latency)
	case static != nil:
		// A candidate the configuration put in service, no rollout's: it
		// stays withdrawn across reloads and restarts.
		st := c.state
		st.Withdrawn = static.Version
		d := Decision{Time: now, Action: ActionRollback, Reason: reason + " (rulesets.candidate " + static.Version + " withdrawn until the file changes)", Actor: actor}
		e := NewEntry(st, d, latency)
		e.Candidate = static.Version
		st.LastDecision = &d
		if err := c.store.Commit(st, e); err != nil {
			return c.state, fmt.Errorf("recording rollback: %w", err)
		}
		c.gen.Add(1)
		c.state = st
		return st, nil
	case c.state.Phase == RolledBack:
		return c.state, nil
	}
	return c.state, fmt.Errorf("no rollout in progress (state %s) and no candidate serving: rollback only takes a candidate out of service; to serve an earlier baseline again, use `wafcanary undo`: %w", c.state.Phase, ErrConflict)
}

// rollbackLocked restores baseline-only routing (again: an advance may
// have slipped in between an unlocked swap and the lock) and records it.
// In a fleet the record is what takes the candidate off every other
// replica, so a record refused because another replica wrote first is
// retried on the fresh state, which may already be at rest.
func (c *Controller) rollbackLocked(d Decision, latency time.Duration) (State, error) {
	if cur := c.router.Snapshot(); cur.Candidate != nil {
		if err := c.router.Swap(&router.Snapshot{Baseline: cur.Baseline}); err != nil {
			return c.state, err
		}
	}
	for attempt := 0; ; attempt++ {
		st := c.state
		st.Phase, st.Percent = RolledBack, 0
		out, err := c.commit(st, d, latency)
		if err == nil {
			c.prune()
		}
		if err != nil && !errors.Is(err, ErrStale) && !errors.Is(err, ErrConflict) {
			// The rollback wins anyway: the router serves the baseline
			// alone already, and nothing may put the candidate back while
			// the record is retried (Step).
			c.gen.Add(1)
			st.LastDecision = &d
			c.state, c.unrecorded = st, &unrecorded{st: st, d: d, latency: latency}
			c.report(nil, ActionRollback)
			return st, fmt.Errorf("%w: the rollback is in force in this process and recorded as soon as the store takes it (retried at every analysis); until then a restart would serve the candidate again", err)
		}
		if !errors.Is(err, ErrStale) || attempt == 3 {
			return out, err
		}
		fresh, lerr := c.store.Load()
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
func (c *Controller) recordRollback() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.unrecorded
	if u == nil {
		return nil
	}
	err := c.store.Commit(u.st, NewEntry(u.st, u.d, u.latency))
	if errors.Is(err, ErrStale) {
		// Another replica wrote first: roll back its state instead.
		c.unrecorded = nil
		fresh, lerr := c.store.Load()
		if lerr != nil {
			c.unrecorded = u
			return lerr
		}
		c.gen.Add(1)
		c.state = fresh
		if fresh.Phase.Active() {
			_, err = c.rollbackLocked(u.d, u.latency)
		}
		return err
	}
	if err != nil {
		return err
	}
	c.unrecorded = nil
	c.log.Info("rollback recorded", "actor", u.d.Actor, "decided", u.d.Time)
	return nil
}

// Promote makes the candidate the baseline now, skipping remaining steps.
func (c *Controller) Promote(actor, reason string, now time.Time) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.leading(); err != nil {
		return c.state, err
	}
	if !c.state.Phase.Active() {
		return c.state, fmt.Errorf("no rollout to promote (state %s): %w", c.state.Phase, ErrConflict)
	}
	if reason == "" {
		reason = "manual promotion"
	}
	return c.promoteLocked(Decision{Time: now, Action: ActionPromote, Reason: reason, Actor: actor})
}

// promoteLocked swaps the candidate in as the baseline in one step.
func (c *Controller) promoteLocked(d Decision) (State, error) {
	cur := c.router.Snapshot()
	if cur.Candidate == nil {
		return c.state, fmt.Errorf("router has no candidate to promote: %w", ErrConflict)
	}
	st := c.state
	st.Phase, st.Percent = Promoted, 100
	st.Baseline, st.Candidate = *st.Candidate, nil
	st.Baselines = served(st.Baselines, st.Baseline, d.Time, c.cfg.KeepBaselines)
	st, err := c.commit(st, d, 0)
	if err != nil {
		return st, err
	}
	if err := c.router.Swap(&router.Snapshot{Baseline: cur.Candidate}); err != nil {
		return st, err
	}
	c.prune()
	return st, nil
}

// Pause holds the share; analysis goes on and a failure still rolls back.
func (c *Controller) Pause(actor, reason string, now time.Time) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	return c.commit(st, Decision{Time: now, Action: ActionPause, Reason: reason, Actor: actor}, 0)
}

// Resume continues a paused rollout at its step; the step's clock restarts.
func (c *Controller) Resume(actor, reason string, now time.Time) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.leading(); err != nil {
		return c.state, err
	}
	if c.state.Phase != Paused {
		return c.state, fmt.Errorf("rollout is %s, not paused: %w", c.state.Phase, ErrConflict)
	}
	st := c.state
	st.Phase, st.StepStarted = phaseOf(st.Percent), now
	return c.commit(st, Decision{Time: now, Action: ActionResume, Reason: reason, Actor: actor}, 0)
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
