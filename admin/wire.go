package admin

import (
	"time"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/rollout"
)

// Status is the document GET /api/v1/status returns: the routing in force
// (what this process serves, not what the state says it should), the
// rollout's state, its last decision with the evidence behind it, the
// baselines an undo can go back to, and, in a fleet, every replica.
type Status struct {
	State               string              `json:"state"`
	CandidatePercent    float64             `json:"candidate_percent"`
	ShadowSamplePercent float64             `json:"shadow_sample_percent"`
	Step                int                 `json:"step"`
	Steps               int                 `json:"steps"`
	Baseline            *rollout.RulesetRef `json:"baseline"`
	Candidate           *rollout.RulesetRef `json:"candidate"`
	Scope               evidence.Scope      `json:"scope"`
	// ScopeNote says, while a rollout runs with no scope, why none was
	// inferred from its candidate.
	ScopeNote string `json:"scope_note,omitempty"`
	// Hosts are the only hosts the candidate judges; empty for every host.
	Hosts []string `json:"hosts,omitempty"`
	// Awaiting is set while the next step waits for `wafcanary promote`.
	Awaiting     bool              `json:"awaiting_approval,omitempty"`
	Started      time.Time         `json:"started,omitzero"`
	StepStarted  time.Time         `json:"step_started,omitzero"`
	LastDecision *rollout.Decision `json:"last_decision"`
	// Baselines are the baselines kept for undo, oldest first; the last
	// one serves.
	Baselines []rollout.RulesetRef `json:"baselines"`
	Fleet     *FleetStatus         `json:"fleet,omitempty"`
	// Plan is the rollout's steps (rollout.steps, or its preset's), for
	// progress against each step's minimums.
	Plan []StepPlan `json:"plan"`
	// Preset names the preset the rollout took its steps from; empty
	// for rollout.steps.
	Preset string `json:"preset,omitempty"`
	// Now is the server's clock, so a page can show how long a step has
	// run without trusting the browser's.
	Now time.Time `json:"now"`
	// Unchanged, in an action's answer, says why the action changed
	// nothing (an undo asked for again once in force); empty when it took
	// effect, and in GET /api/v1/status.
	Unchanged string `json:"unchanged,omitempty"`
	// Composed, in start's answer only, says what start made of the
	// candidate: the baseline it runs on and where its scope came from.
	Composed *StartReport `json:"start,omitempty"`
	// StartedBy is the identity that started the rollout, and Ticket the
	// change ticket it was started under.
	StartedBy string `json:"started_by,omitempty"`
	Ticket    string `json:"ticket,omitempty"`
	// Approvers, while a rollout runs with admin.users, are the
	// identities that may promote it: the users with the approver or
	// admin role (and admin.token's identity when set), less its starter
	// under four-eyes.
	Approvers []string `json:"approvers,omitempty"`
	// FourEyes says, while a rollout runs with admin.users, how its
	// approval is bound: "distinct: not STARTER..." or "off: ...".
	FourEyes string `json:"four_eyes,omitempty"`
}

// Scope sources, StartReport.ScopeFrom.
const (
	ScopeDeclared = "declared" // --scope-* flags
	ScopeInferred = "inferred" // read from the candidate's exclusions
	ScopeNone     = "none"     // nothing declared or inferred: every disagreement counts
)

// StartReport is what start made of the candidate before its rollout,
// also written into the start's journal entry.
type StartReport struct {
	// Base says how the candidate relates to the served baseline: written
	// from it, rebased onto it (a candidate tuned from a baseline that no
	// longer serves), the exclusions of --exclusion applied to it, or
	// started on it despite not being built on it (--force-base).
	Base string `json:"base,omitempty"`
	// ScopeFrom is ScopeDeclared, ScopeInferred or ScopeNone.
	ScopeFrom string `json:"scope_from"`
	// ScopeWhy says, for ScopeNone, why nothing was inferred.
	ScopeWhy string `json:"scope_why,omitempty"`
	// ScopeLeft are what the candidate takes away that an inferred scope
	// does not cover (on every path, too many rules, inspection turned
	// down): their lost blocks count against it.
	ScopeLeft []string `json:"scope_left,omitempty"`
	// Preset names the steps the rollout takes when not rollout.steps
	// (start --preset, or crs-upgrade for a candidate that changes the
	// CRS version), and why.
	Preset string `json:"preset,omitempty"`
	// Retired is the exception a retire's candidate takes away, as the
	// served baseline had it.
	Retired *exception.Exception `json:"retired,omitempty"`
	// Renewed is the exception a renewal changed, as the new baseline
	// reads it, and Proof why it went into service without steps.
	Renewed *exception.Exception `json:"renewed,omitempty"`
	Proof   string               `json:"proof,omitempty"`
}

// StepPlan is one step of rollout.steps.
type StepPlan struct {
	Percent            float64 `json:"percent"`
	MinDurationSeconds float64 `json:"min_duration_seconds"`
	MinRequests        int64   `json:"min_requests"`
	Approval           bool    `json:"approval,omitempty"`
}

// FleetStatus is the fleet part of the status: who leads, whether etcd
// answers, and what every replica serves, so a stuck one is visible.
type FleetStatus struct {
	Replica    string          `json:"replica"`
	Leader     string          `json:"leader"`
	Leading    bool            `json:"leading"`
	StoreUp    bool            `json:"store_up"`
	StoreError string          `json:"store_error,omitempty"`
	Replicas   []fleet.Replica `json:"replicas"`
}

// StartRequest is the body of POST /api/v1/rollout/start.
type StartRequest struct {
	// Candidate is a ruleset file on the server, or embedded:NAME.
	Candidate string `json:"candidate,omitempty"`
	// Exclusion, instead of Candidate, is a file on the server of
	// exclusion directives only, applied to the baseline that serves when
	// the rollout starts: the candidate is that baseline plus them.
	Exclusion string         `json:"exclusion,omitempty"`
	Reason    string         `json:"reason"`
	Actor     string         `json:"actor"`
	Scope     evidence.Scope `json:"scope"`
	// Hosts limits the candidate to these hosts (start --hosts); every
	// other host is served by the baseline and is not evidence.
	Hosts []string `json:"hosts,omitempty"`
	// Cases is the candidate's cases file (must_pass, must_block),
	// checked at start and by the live probe; optional.
	Cases string `json:"cases,omitempty"`
	// Replay lists recorded traffic on the server (files or directories)
	// replayed through both rulesets before the first step, beside
	// gates.replay: a failed replay refuses the start.
	Replay []string `json:"replay,omitempty"`
	// OverrideGates, when set, is the reason to start despite failed
	// gates (forbidden edits, failing cases); it is written to the journal.
	OverrideGates string `json:"override_gates,omitempty"`
	// ForceBase, when set, is the reason to start a candidate that is not
	// built on the served baseline: written from another baseline and not
	// rebased, or dropping exclusions the served baseline has. It is
	// journalled with what starting it undoes.
	ForceBase string `json:"force_base,omitempty"`
	// Preset names the steps and max_duration the rollout takes instead
	// of rollout.steps (rollout.presets, or the built-in crs-upgrade);
	// empty takes crs-upgrade for a candidate that changes the CRS
	// version and rollout.steps otherwise; "default" is rollout.steps.
	Preset string `json:"preset,omitempty"`
	// Ticket is the change ticket (start --ticket): journalled, kept in
	// the rollout's state, notified; required with
	// rollout.approvals.require_ticket.
	Ticket string `json:"ticket,omitempty"`
	// By is the identity the server found the request's credential to
	// be; set by the server, never read from the body. The journal names
	// it, and Actor only as what the client claimed when it differs.
	By Identity `json:"-"`
	// Retire names the exception of the served baseline that Candidate
	// takes away (exceptions retire). A candidate that is the served
	// baseline without exactly that exception is started as intended,
	// journalled as a retire; any other difference refuses it. Without
	// it, a candidate that drops an exclusion is refused (ForceBase).
	Retire string `json:"retire,omitempty"`
	// Renew, instead of Candidate or Exclusion, changes the metadata of an
	// exception of the served baseline (exceptions renew): the server
	// writes the change, proves the result judges every request as the
	// served baseline does, and puts it in service at once, journalled.
	Renew *Renewal `json:"renew,omitempty"`
}

// Renewal is an exception's new metadata (StartRequest.Renew); empty
// fields are left as they are.
type Renewal struct {
	Exception string `json:"exception"`
	exception.Meta
}

// Who returns the actor the record names and what the client claimed
// besides: By when the server set it, else Actor (an in-process caller).
func (r StartRequest) Who() (actor, claimed string) { return who(r.By, r.Actor) }

// ActionRequest is the body of POST /api/v1/rollout/{action}.
type ActionRequest struct {
	Reason string `json:"reason"`
	Actor  string `json:"actor"`
	// To is, for undo, the version to go back to (or a prefix of it);
	// empty means the baseline that served before the current one.
	To string `json:"to,omitempty"`
	// Full is, for promote, to make the candidate the baseline now,
	// skipping the remaining steps; without it promote moves one step.
	Full bool `json:"full,omitempty"`
	// Ticket is the change ticket (--ticket): journalled and notified;
	// required for promote and undo with rollout.approvals.require_ticket.
	Ticket string `json:"ticket,omitempty"`
	// Emergency is, for promote, an admin's promotion past four-eyes
	// (the starter approving their own rollout), given a reason:
	// journalled and notified as an emergency.
	Emergency bool `json:"emergency,omitempty"`
	// By is the identity the server found the request's credential to
	// be, as in StartRequest.
	By Identity `json:"-"`
}

// Who returns the actor the record names and what the client claimed
// besides, as StartRequest.Who.
func (r ActionRequest) Who() (actor, claimed string) { return who(r.By, r.Actor) }

func who(by Identity, sent string) (actor, claimed string) {
	switch {
	case by.Name == "" && sent == "":
		return "api", ""
	case by.Name == "":
		return sent, ""
	case sent != "" && sent != by.Name:
		return by.Name, sent
	}
	return by.Name, ""
}

// Action is what POST /api/v1/rollout/{action} does.
type Action string

// Actions.
const (
	Pause    Action = "pause"
	Resume   Action = "resume"
	Promote  Action = "promote"
	Rollback Action = "rollback"
	Undo     Action = "undo"
)

// Actions lists every action the API takes.
var Actions = []Action{Pause, Resume, Promote, Rollback, Undo}

// Explanation is the answer of GET /api/v1/requests/{id}: why a request
// was blocked, from the verdict the proxy kept, and its capture when
// capture is on. It carries no cookie, credential or redacted value.
type Explanation struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Arm      string    `json:"arm"`
	Version  string    `json:"version"`
	Method   string    `json:"method"`
	Host     string    `json:"host"`
	Path     string    `json:"path"`
	ClientIP string    `json:"client_ip"`
	Status   int       `json:"status"`
	// Shadow is set for a block that did not happen: the candidate judged
	// the request in shadow and would have answered Status; the baseline
	// served it.
	Shadow bool `json:"shadow,omitempty"`
	// Exception is set for a block that did not happen either: the
	// baseline let the request through, and without this exception
	// (wafcanary exceptions) would have answered Status.
	Exception string `json:"exception,omitempty"`
	// InterruptedBy is the rule that ended the request; Score CRS's
	// inbound anomaly score.
	InterruptedBy int             `json:"interrupted_by"`
	Score         int             `json:"inbound_anomaly_score"`
	Rules         []ExplainedRule `json:"rules"`
	// Capture is the request as kept, redacted; nil when capture is off,
	// when its signature had its captures already, or when the capture is
	// gone (capture.max_age, or its signature evicted).
	Capture *capture.Record `json:"capture,omitempty"`
	// Group is the block's signature with its counts, captures and
	// signals, when capture is on and the store still holds it.
	Group *capture.Summary `json:"group,omitempty"`
	// Chosen says, for an explain by signature, which capture answers
	// and why.
	Chosen string `json:"chosen,omitempty"`
}

// BlockList is the answer of GET /api/v1/blocks: the signatures of
// blocked requests seen most recently, newest first, and what the store
// holds against its limits.
type BlockList struct {
	Signatures []capture.Summary `json:"signatures"`
	Store      capture.Stats     `json:"store"`
}

// BlockGroup is the answer of GET /api/v1/blocks/{sig}: one signature
// and every request it keeps, oldest first (what `tune sig:...` replays).
type BlockGroup struct {
	Summary  capture.Summary  `json:"summary"`
	Captures []capture.Record `json:"captures"`
}

// ExplainedRule is one rule that matched, with what the ruleset says of it
// (absent when that ruleset no longer serves).
type ExplainedRule struct {
	ID      int      `json:"id"`
	Message string   `json:"msg,omitempty"`
	Targets []string `json:"targets,omitempty"`
	// Omitted counts matched variables not listed: past the bound, or with
	// a name that is not printable (verdict.RuleMatch.Omitted).
	Omitted  int      `json:"omitted,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Paranoia int      `json:"paranoia_level,omitempty"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
}

// GateProgress is the answer of GET /api/v1/rollout/gates: what a start's
// gates are doing, for `start` to show while it waits.
type GateProgress struct {
	Running   bool    `json:"running"`
	Candidate string  `json:"candidate,omitempty"`
	Stage     string  `json:"stage,omitempty"` // guard, cases, crs_suite
	Done      int     `json:"done,omitempty"`  // CRS suite cases sent
	Total     int     `json:"total,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"`
}

// ExceptionList is the answer of GET /api/v1/exceptions: every exception
// of the baseline in service, in file order, with where it came from, as
// the server judged them at Now.
type ExceptionList struct {
	Baseline   string                `json:"baseline_version"`
	Now        time.Time             `json:"now"`
	Exceptions []exception.Exception `json:"exceptions"`
}
