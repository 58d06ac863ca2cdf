package router

import (
	"log/slog"
	"time"
)

// Action is what the WAF did with a request.
type Action uint8

// Actions. Error means no verdict was reached: Coraza failed, or the client
// broke off before its request could be judged. An upstream failure after
// an allowed verdict is still Allowed, and counted apart.
const (
	Allowed Action = iota
	Blocked
	Error
)

// Actions lists every action, for code that creates per-action state up front.
var Actions = [...]Action{Allowed, Blocked, Error}

func (a Action) String() string {
	switch a {
	case Blocked:
		return "blocked"
	case Error:
		return "error"
	}
	return "allowed"
}

// Observer receives what the request and shadow paths learn. Its methods
// are called on the request path and by shadow workers: implementations
// must be safe for concurrent use and must not block.
type Observer interface {
	// ObserveRequest is called once per proxied request, after the
	// response has been sent.
	ObserveRequest(RequestRecord)
	// ObserveShadow is called for each evaluated shadow pair.
	ObserveShadow(ShadowRecord)
	// ShadowDropped is called when a sample is not evaluated because the
	// queue was full or the request too large to capture.
	ShadowDropped()
	// ObserveSnapshot is called after a snapshot is installed.
	ObserveSnapshot(*Snapshot)
}

// RequestRecord is the outcome of one proxied request.
type RequestRecord struct {
	ID     string
	Arm    Arm
	Action Action
	// Status is the status sent to the client; 0 if the client left first
	// or the connection was dropped.
	Status int
	// Verdict is what the enforcing ruleset found, over all phases.
	Verdict Verdict
	// WAFDuration is the time spent inside Coraza; Duration the whole request.
	WAFDuration, Duration time.Duration
	// UpstreamError is set when the upstream could not be reached or failed
	// mid-response; a client that went away is not an upstream error.
	UpstreamError bool
	// BlockedInResponse is set when the block came from a response phase,
	// after the upstream answered: a block shadow pairs, which compare the
	// request phases only, cannot see.
	BlockedInResponse bool
}

// ShadowRecord is one request judged by both rulesets: the enforcing one
// live, the other in shadow. Verdicts cover the request phases (headers and
// body), the only ones both rulesets see.
type ShadowRecord struct {
	ID, Method, Path string
	// Enforcing is the arm whose verdict the client got.
	Enforcing           Arm
	Baseline, Candidate Verdict
	// BaselineVersion and CandidateVersion identify the rulesets compared.
	BaselineVersion, CandidateVersion string
}

// Disagree reports whether exactly one of the two rulesets blocks.
func (s ShadowRecord) Disagree() bool { return s.Baseline.Blocked != s.Candidate.Blocked }

// slogVerdict renders one side of a shadow pair for a log line: rule IDs,
// messages, matched variable names and score; never matched values.
func slogVerdict(key, version string, v Verdict) slog.Attr {
	return slog.Group(key,
		"version", version, "blocked", v.Blocked, "rule_ids", v.RuleIDs(),
		"rules", v.Rules, "inbound_anomaly_score", v.InboundScore)
}

// Tee returns an Observer that tells each of obs, in order.
func Tee(obs ...Observer) Observer { return tee(obs) }

type tee []Observer

func (t tee) ObserveRequest(r RequestRecord) {
	for _, o := range t {
		o.ObserveRequest(r)
	}
}

func (t tee) ObserveShadow(s ShadowRecord) {
	for _, o := range t {
		o.ObserveShadow(s)
	}
}

func (t tee) ShadowDropped() {
	for _, o := range t {
		o.ShadowDropped()
	}
}

func (t tee) ObserveSnapshot(s *Snapshot) {
	for _, o := range t {
		o.ObserveSnapshot(s)
	}
}
