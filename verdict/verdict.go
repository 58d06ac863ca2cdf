// Package verdict holds the words the request, evidence and control paths
// share: what a ruleset concluded about a request (Verdict), which ruleset
// enforced (Arm), what happened to the request (Action), and the records
// the proxy reports. It also feeds Coraza a request's phases, once, for the
// proxy, the shadow worker and the in-process judge alike.
package verdict

import (
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
)

// Verdict is what one ruleset concluded about one request. It is copied out
// of the Coraza transaction before the transaction is closed and pooled.
type Verdict struct {
	Blocked bool
	// Action is the interruption's action (deny, drop, redirect), if any.
	Action string
	// Status is the interruption's status, if any.
	Status int
	// RuleID is the rule that interrupted, if any.
	RuleID int
	// Rules are the matched rules that log, in match order.
	Rules []RuleMatch
	// InboundScore is CRS's blocking inbound anomaly score, when CRS ran.
	InboundScore int
}

// RuleMatch is one matched rule, without the matched data: matched values
// can hold cookies, tokens or passwords and never leave the process.
type RuleMatch struct {
	ID      int    `json:"id"`
	Message string `json:"msg,omitempty"`
	// Targets are the variables that matched, such as ARGS:comment; the
	// names an operator needs for an exclusion. At most MaxTargets are
	// kept, each at most MaxTargetBytes long: argument names are the
	// client's, and a binary body once gave one rule hundreds of names,
	// each a piece of the body.
	Targets []string `json:"targets,omitempty"`
	// Omitted counts the matched variables not in Targets: past
	// MaxTargets, or with a name too long to keep, or not printable (not
	// UTF-8, or with control characters: a name made of body bytes). An
	// exclusion cannot be written for them (tune refuses rather than
	// guess).
	Omitted int `json:"omitted,omitempty"`
}

// Bounds of the variables a rule match keeps.
const (
	MaxTargets     = 16
	MaxTargetBytes = 256
)

// RuleIDs returns the IDs of the matched rules.
func (v Verdict) RuleIDs() []int {
	ids := make([]int, len(v.Rules))
	for i, r := range v.Rules {
		ids[i] = r.ID
	}
	return ids
}

// Arm names the ruleset that enforces on a request.
type Arm uint8

// The two arms.
const (
	Baseline Arm = iota
	Candidate
)

// Arms lists every arm, for code that creates per-arm state up front.
var Arms = [...]Arm{Baseline, Candidate}

func (a Arm) String() string {
	if a == Candidate {
		return "candidate"
	}
	return "baseline"
}

// Other returns the arm that did not enforce.
func (a Arm) Other() Arm { return 1 - a }

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
	// Outside is set for a request on a host the rollout does not judge
	// (start --hosts): the baseline served it, and it is not evidence.
	// A refused request is outside too.
	Outside bool
	// Refused says why the proxy refused the request before any ruleset
	// judged it: it could not be judged as it would be forwarded.
	Refused Refusal
}

// Refusal is why the proxy refused a request unjudged. Each is a request
// whose meaning to the WAF and to the upstream could differ, or whose
// inspection would cost more than any legitimate request needs.
type Refusal uint8

// Refusals.
const (
	NotRefused Refusal = iota
	// RefusedFragment: a raw '#' in the request-target. Coraza drops what
	// follows it, as a browser would; the upstream parses it as query.
	RefusedFragment
	// RefusedUserinfo: user:password@ in an absolute-form target
	// (RFC 9110 4.2.4: treat it as an error); it would also put a
	// password in the logs.
	RefusedUserinfo
	// RefusedAuthority: an HTTP/2 or HTTP/3 host header that disagrees with
	// :authority (RFC 9113 8.3.1): the WAF would see both, the upstream
	// one.
	RefusedAuthority
	// RefusedURITooLong: a request-target over proxy.max_uri_bytes.
	RefusedURITooLong
	// RefusedTarget: a request-target in neither origin form (/path) nor
	// absolute form (http://host/path): an asterisk outside OPTIONS, the
	// authority form of CONNECT.
	RefusedTarget
	// RefusedBodyTruncated: a body that reached the WAF cut short (an SPOE
	// agent is sent at most HAProxy's buffer) while the front-end blocks
	// what it cannot read whole (spoa.on_truncated_body block).
	RefusedBodyTruncated
	// RefusedHost: a host with bytes outside ASCII (an absolute-form
	// target's; net/http refuses such a Host header). The WAF would judge
	// the bytes, the upstream be sent the name punycoded.
	RefusedHost
)

// Refusals lists every refusal, for code that creates per-reason state up
// front.
var Refusals = [...]Refusal{RefusedFragment, RefusedUserinfo, RefusedAuthority, RefusedURITooLong, RefusedTarget, RefusedBodyTruncated, RefusedHost}

func (r Refusal) String() string {
	switch r {
	case RefusedFragment:
		return "fragment"
	case RefusedUserinfo:
		return "userinfo"
	case RefusedAuthority:
		return "authority"
	case RefusedURITooLong:
		return "uri_too_long"
	case RefusedTarget:
		return "target"
	case RefusedBodyTruncated:
		return "body_truncated"
	case RefusedHost:
		return "host"
	}
	return ""
}

// ShadowRecord is one request judged by both rulesets: the enforcing one
// live, the other in shadow. Verdicts cover the request phases (headers and
// body), the only ones both rulesets see.
type ShadowRecord struct {
	// Host is the request's Host header, as the client sent it.
	ID, Method, Host, Path string
	// Enforcing is the arm whose verdict the client got.
	Enforcing           Arm
	Baseline, Candidate Verdict
	// BaselineVersion and CandidateVersion identify the rulesets compared.
	BaselineVersion, CandidateVersion string
	// Derived is set when the shadow verdict was not evaluated: the
	// candidate only takes rules or targets away and nothing it touches
	// matched on the enforcing side, so the other verdict is the same
	// (ruleset.Difference).
	Derived bool
}

// Disagreement is how the two verdicts of a pair differ.
type Disagreement uint8

// Disagreements.
const (
	// Agree: both block, or neither does.
	Agree Disagreement = iota
	// NewBlock: the candidate blocks what the baseline allows.
	NewBlock
	// LostBlock: the candidate allows what the baseline blocks.
	LostBlock
)

func (d Disagreement) String() string {
	switch d {
	case NewBlock:
		return "new_block"
	case LostBlock:
		return "lost_block"
	}
	return "agree"
}

// Disagreement reports whether, and how, exactly one of the rulesets blocks.
func (s ShadowRecord) Disagreement() Disagreement {
	switch {
	case s.Candidate.Blocked && !s.Baseline.Blocked:
		return NewBlock
	case s.Baseline.Blocked && !s.Candidate.Blocked:
		return LostBlock
	}
	return Agree
}

// Disagree reports whether exactly one of the two rulesets blocks.
func (s ShadowRecord) Disagree() bool { return s.Disagreement() != Agree }

// Serving is what the proxy serves from a routing snapshot on: the
// rulesets and the shares, as fractions of 1.
type Serving struct {
	Baseline *ruleset.Ruleset
	// Candidate is nil when no candidate serves.
	Candidate      *ruleset.Ruleset
	CandidateShare float64
	ShadowShare    float64
	// Hosts are the only hosts the candidate judges; nil for every host.
	Hosts []string
}

// Ruleset returns the ruleset of arm, nil for a missing candidate.
func (s Serving) Ruleset(a Arm) *ruleset.Ruleset {
	if a == Candidate {
		return s.Candidate
	}
	return s.Baseline
}

// Block is a request its enforcing ruleset blocked, as Coraza saw it, for
// whoever explains or reproduces it, or (Shadow) one the candidate would
// have blocked, judged in shadow, that the baseline let through. Request
// shares nothing with the live request; Body is what Coraza had buffered
// of the request body, at most a bounded prefix (none when it blocked
// before reading it).
type Block struct {
	Record  RequestRecord
	Request Request
	Body    []byte
	// BodyTruncated is set when the body was longer than Body.
	BodyTruncated bool
	Version       string
	Time          time.Time
	// Shadow is set for a candidate's new block seen in shadow: the
	// client was served by the baseline, and Record holds the candidate's
	// request-phase verdict with the status it would have answered. A
	// rollout's new blocks are what an upgrade's exceptions are tuned
	// from, so they are kept as blocks are.
	Shadow bool
}
