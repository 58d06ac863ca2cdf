package rollout

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/router"
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
	// CRS is the Core Rule Set it includes ("CRS 4.25.0 (embedded)"), in
	// the status of what serves; not kept in the state.
	CRS string `json:"crs,omitempty"`
	// Since is when it began serving as the baseline (in State.Baselines).
	Since time.Time `json:"since,omitzero"`
	// By is the decision that put it in service as the baseline (in
	// State.Baselines): promote, undo, reload. An undo without a version
	// does nothing when the serving one came by undo.
	By Action `json:"by,omitempty"`
}

// Action is what a decision did, as the journal and the metrics name it.
type Action string

// Actions. ActionNone is an analysis that could not act (no rollout, the
// state changed under it); ActionHold one that chose not to.
const (
	ActionStart    Action = "start"
	ActionAdvance  Action = "advance"
	ActionPromote  Action = "promote"
	ActionRollback Action = "rollback"
	ActionHold     Action = "hold"
	ActionPause    Action = "pause"
	ActionResume   Action = "resume"
	ActionUndo     Action = "undo"
	ActionReload   Action = "reload"
	ActionNone     Action = "none"
	// ActionAwait is an analysis that would advance into a step with
	// approval: true; the rollout holds until promoted.
	ActionAwait         Action = "await_approval"
	ActionGatesOverride Action = "gates_override"
	// ActionBaseOverride is a start of a candidate not built on the
	// served baseline (start --force-base), journalled with what it undoes.
	ActionBaseOverride Action = "base_override"
	// ActionConfigure is the rollout section changed between rollouts
	// (SIGHUP): it changes no routing, only how the next rollout runs.
	ActionConfigure Action = "configure"
	// ActionRetire is a start of a candidate that is the served baseline
	// without one exception (exceptions retire), journalled before the
	// start with the exception it takes away.
	ActionRetire Action = "retire"
	// ActionRenew is an exception's metadata changed (exceptions renew):
	// a candidate proven to judge as the served baseline does, put in
	// service at once; journalled before its start and promotion.
	ActionRenew Action = "renew"
)

// Decision is what the controller, or an operator, decided.
type Decision struct {
	Time     time.Time `json:"time"`
	Action   Action    `json:"action"`
	Reason   string    `json:"reason"`
	Actor    string    `json:"actor"`
	Analysis *Analysis `json:"analysis,omitempty"`
	// Judged is how many requests the candidate had judged at the step
	// when an analysis decided: the progress against min_requests.
	Judged int64 `json:"judged,omitempty"`
	// Ticket, Claimed and Emergency are an operator's decision's
	// Attribution.
	Ticket    string `json:"ticket,omitempty"`
	Claimed   string `json:"claimed_actor,omitempty"`
	Emergency bool   `json:"emergency,omitempty"`
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
	// ScopeNote says, for an empty Scope, why none was inferred from the
	// candidate, so that status and the page say it for the whole
	// rollout, not only start.
	ScopeNote string `json:"scope_note,omitempty"`
	// Hosts are the only hosts the candidate judges (start --hosts);
	// empty for every host.
	Hosts []string `json:"hosts,omitempty"`
	// Awaiting is set while the next step needs an operator's approval
	// (`wafcanary promote`) and the evidence would advance into it.
	Awaiting bool   `json:"awaiting_approval,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// StartedBy is the identity that started the rollout: with
	// rollout.approvals.distinct, not the one that may approve it.
	StartedBy string `json:"started_by,omitempty"`
	// Ticket is the change ticket the rollout was started under.
	Ticket string `json:"ticket,omitempty"`
	// ShadowSample is the shadow share (percent) while the rollout runs;
	// with Baseline, Candidate and Percent it is the routing every replica
	// serves. Zero means the serving replica's own shadow.sample_percent
	// (states saved before it was recorded).
	ShadowSample float64 `json:"shadow_sample_percent,omitempty"`
	// Cases is the candidate's cases file, whose must_block cases the
	// live probe checks at every analysis.
	Cases        string    `json:"cases,omitempty"`
	LastDecision *Decision `json:"last_decision,omitempty"`
	// Preset names the steps and max_duration the rollout took at start
	// (start --preset, or crs-upgrade for a CRS upgrade), and Steps and
	// MaxDuration are them, kept so that a restart, a reload or another
	// replica goes on with the steps it began with. Empty Steps: the
	// configured rollout.steps (states saved before presets, and the
	// default preset, which follows a reload as before).
	Preset      string        `json:"preset,omitempty"`
	Steps       []Step        `json:"steps,omitempty"`
	MaxDuration time.Duration `json:"max_duration,omitempty"`
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
	// ConsecutiveErrors counts the analyses in a row, up to the last,
	// that could not judge the candidate (Outcome checks CheckEvidence,
	// CheckProbe); at rollout.consecutive_error_limit it rolls back.
	ConsecutiveErrors int `json:"consecutive_errors,omitempty"`
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
	case st.ConsecutiveErrors < 0:
		return fmt.Errorf("consecutive_errors: must not be negative, got %d", st.ConsecutiveErrors)
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

// windowsOf returns the evidence windows of a rollout in state st.
func windowsOf(st State) evidence.Windows {
	return evidence.Windows{Scope: st.Scope, Rollout: st.Started, Step: st.StepStarted}
}

// Spec is what an operator says when starting a rollout.
type Spec struct {
	Scope evidence.Scope
	// ScopeNote is why Scope is empty, when it was to be inferred.
	ScopeNote string
	// Hosts limits the candidate to these hosts' requests; every other
	// host is served by the baseline and is not evidence.
	Hosts  []string
	Actor  string
	Reason string
	Cases  string // cases file for the live probe; optional
	// Preset names the steps the rollout takes (Config.PresetOf): ""
	// for the configured ones.
	Preset string
	// Baseline is the version the candidate was gated against; if another
	// baseline serves by the time the rollout would start (a reload or an
	// undo landed while the gates ran), the start is refused. Empty: not
	// checked.
	Baseline string
}

func phaseOf(percent float64) Phase {
	if percent == 0 {
		return Shadow
	}
	return Progressing
}

// NewEntry is the journal line of decision d, taken in state st (the
// state it leads to); latency is how long it took to take effect.
func NewEntry(st State, d Decision, latency time.Duration) Entry {
	e := Entry{Time: d.Time, Actor: d.Actor, Action: d.Action, Reason: d.Reason, State: st.Phase, Step: st.Step,
		Percent: st.Percent, Baseline: st.Baseline.Version, Analysis: d.Analysis, EffectLatency: latency,
		Ticket: d.Ticket, Claimed: d.Claimed, Emergency: d.Emergency}
	if st.Candidate != nil {
		e.Candidate = st.Candidate.Version
	}
	return e
}

// RolledBackBy is st once decision d has taken its candidate out of
// service. The controller writes it, and the fleet store writes the same
// transition when only etcd is reachable (fleet.Store.Rollback).
func (st State) RolledBackBy(d Decision) State {
	st.Phase, st.Percent, st.LastDecision, st.ConsecutiveErrors = RolledBack, 0, &d, 0
	return st
}
