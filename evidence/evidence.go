// Package evidence is the evidence path: what the controller judges
// (Evidence, with its windows and the rollout's Scope), gathered in
// process by the Collector, counted for a fleet by the Counters, and read
// back from Prometheus, summed over the replicas, by PrometheusEvidence.
// The metric names are constants shared by the counters and the queries.
package evidence

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/wafcanary/wafcanary/verdict"
)

// Scope is what a rollout declares it means to change. A disagreement is
// in scope, expected and not counted against the candidate, only when it
// falls inside every dimension declared: on one of Hosts, under one of
// Paths or exactly on one of ExactPaths, and caused only by RuleIDs. A dimension left empty does not
// restrict; a scope with none declared covers nothing. (It used to be a
// disjunction: a path alone excused an SQL injection the candidate
// stopped blocking on that path for an unrelated reason.)
type Scope struct {
	RuleIDs []int `json:"rule_ids,omitempty"`
	// Paths are prefixes matched by whole segments: /support/tickets
	// covers /support/tickets/42, not /support/ticketsadmin.
	Paths []string `json:"paths,omitempty"`
	// ExactPaths are paths matched whole, as an exclusion's @streq on
	// REQUEST_FILENAME matches them: percent-decoded, nothing resolved or
	// trimmed, so /api/notes covers neither /api/notes/7 nor /api/notes/.
	// With Paths they form one dimension: a path in either is in it.
	ExactPaths []string `json:"exact_paths,omitempty"`
	// Hosts are exact host names, case-insensitive, without port.
	Hosts []string `json:"hosts,omitempty"`
	// Clauses, when set, replace the fields above: a disagreement is in
	// scope if one clause covers it. A candidate with two exclusions, each
	// on its own path and rules, infers one clause per exclusion, so that
	// neither excuses the other's rules on its path.
	Clauses []Scope `json:"clauses,omitempty"`
	// Inferred is set when the scope was read from the candidate's
	// difference from the baseline rather than declared.
	Inferred bool `json:"inferred,omitempty"`
}

// Empty reports whether the scope declares nothing.
func (s Scope) Empty() bool {
	return len(s.RuleIDs) == 0 && len(s.Paths) == 0 && len(s.ExactPaths) == 0 && len(s.Hosts) == 0 && len(s.Clauses) == 0
}

// Equal reports whether s and o declare the same scope, clause by clause.
func (s Scope) Equal(o Scope) bool {
	return slices.Equal(s.RuleIDs, o.RuleIDs) && slices.Equal(s.Paths, o.Paths) && slices.Equal(s.ExactPaths, o.ExactPaths) &&
		slices.Equal(s.Hosts, o.Hosts) && s.Inferred == o.Inferred && slices.EqualFunc(s.Clauses, o.Clauses, Scope.Equal)
}

// String says what the scope covers, as status and the journal print it.
func (s Scope) String() string {
	if len(s.Clauses) > 0 {
		parts := make([]string, len(s.Clauses))
		for i, c := range s.Clauses {
			parts[i] = "(" + c.String() + ")"
		}
		return strings.Join(parts, " or ")
	}
	var parts []string
	if len(s.Hosts) > 0 {
		parts = append(parts, "host "+strings.Join(s.Hosts, " or "))
	}
	paths := slices.Clone(s.ExactPaths)
	for _, p := range s.Paths {
		paths = append(paths, "under "+p)
	}
	if len(paths) > 0 {
		parts = append(parts, "path "+strings.Join(paths, " or "))
	}
	if len(s.RuleIDs) > 0 {
		ids := make([]string, len(s.RuleIDs))
		for i, id := range s.RuleIDs {
			ids[i] = fmt.Sprint(id)
		}
		parts = append(parts, "caused only by rules "+strings.Join(ids, ", "))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", and ")
}

// evaluationRules decide on scores rather than detect anything; they sit
// behind every CRS block and would attribute every disagreement alike.
var evaluationRules = map[int]bool{949110: true, 949111: true, 959100: true, 980170: true}

// Disagreements counts one kind of disagreement (new or lost blocks).
type Disagreements struct {
	InScope, OutOfScope int64
	// Rules counts, per rule ID, the out-of-scope disagreements it was
	// behind: the rules that logged on the blocking side only.
	Rules map[int]int64
}

// TopRules returns up to n rule IDs behind the most disagreements.
func (d Disagreements) TopRules(n int) []RuleCount {
	out := make([]RuleCount, 0, len(d.Rules))
	for id, c := range d.Rules {
		out = append(out, RuleCount{ID: id, Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// RuleCount is a rule ID with a count.
type RuleCount struct {
	ID    int   `json:"id"`
	Count int64 `json:"count"`
	// Upgrade is, when the candidate reads another CRS than the baseline,
	// what the upgrade did to the rule: new, changed or unchanged.
	Upgrade string `json:"upgrade,omitempty"`
}

// ArmEvidence is one arm's split evidence.
type ArmEvidence struct {
	Requests, Blocked, UpstreamErrors int64
	// ResponseBlocked counts the blocks (among Blocked) from a response
	// phase, which shadow pairs cannot see.
	ResponseBlocked int64
	// WAFTime is a sketch of seconds inside Coraza per request. Nil when
	// the arm saw no request.
	WAFTime *ddsketch.DDSketch
}

// sketchAccuracy is the relative accuracy of the in-process WAF-time
// sketches. The latency checks widen their bounds by it, and a +30% p50
// regression is only 4% past the default limit (1.2 x + 0.1 ms at 2 ms),
// so 0.5% rather than 1%: about 900 bins between 10 µs and 50 ms.
const sketchAccuracy = 0.005

// Accuracy is the relative accuracy of the quantiles read from WAFTime.
func (a ArmEvidence) Accuracy() float64 {
	if a.WAFTime == nil {
		return 0
	}
	return a.WAFTime.IndexMapping.RelativeAccuracy()
}

// Evidence is everything the controller judges. Shadow pairs (Pairs,
// NewBlocks, LostBlocks) count from the rollout's start: the same
// request judged by both rulesets says the same whatever the share. The
// rest counts from the step's start.
type Evidence struct {
	Pairs      int64
	NewBlocks  Disagreements // candidate blocks, baseline allows
	LostBlocks Disagreements // baseline blocks, candidate allows
	Arms       [2]ArmEvidence
	Dropped    int64
	// ShadowedByCandidate counts the pairs of this step the baseline
	// enforced on: the candidate judged them in shadow.
	ShadowedByCandidate int64
}

// CandidateRequests is how many requests the candidate judged at this
// step, enforcing on its arm or in shadow: the traffic a step's
// min_requests counts.
func (e Evidence) CandidateRequests() int64 {
	return e.Arms[verdict.Candidate].Requests + e.ShadowedByCandidate
}

// Windows says where evidence starts counting: the rollout's scope
// classifies disagreements, shadow pairs count from Rollout (the
// rollout's start) and split arms from Step (the step's start).
type Windows struct {
	Scope   Scope
	Rollout time.Time
	Step    time.Time
}

// Collector gathers Evidence from the proxy, as its request and shadow
// observer; its request-path methods hold a mutex only for a few counter
// updates, and the controller's Snapshot only to copy.
type Collector struct {
	mu      sync.Mutex
	scope   Scope
	rollout time.Time // start of the paired window
	ev      Evidence
	counter Counter
}

// Covers reports whether a disagreement on host and path, caused by
// rules, is in the scope, as the collector classifies it.
func (s Scope) Covers(host, path string, rules []int) bool { return s.covers(host, path, rules) }

func (s Scope) covers(host, path string, rules []int) bool {
	if len(s.Clauses) > 0 {
		return slices.ContainsFunc(s.Clauses, func(c Scope) bool { return c.covers(host, path, rules) })
	}
	if s.Empty() {
		return false
	}
	if len(s.Hosts) > 0 && !slices.Contains(s.Hosts, HostName(host)) {
		return false
	}
	if len(s.Paths) > 0 || len(s.ExactPaths) > 0 {
		clean := normalPath(path)
		exact, err := url.PathUnescape(path)
		if !slices.ContainsFunc(s.Paths, func(p string) bool { return underPath(clean, p) }) &&
			(err != nil || !slices.Contains(s.ExactPaths, exact)) {
			return false
		}
	}
	if len(s.RuleIDs) > 0 {
		// Rules must explain the disagreement, all of them inside the
		// scope: none attributed (only evaluation rules differ) is not.
		if len(rules) == 0 {
			return false
		}
		for _, id := range rules {
			if !slices.Contains(s.RuleIDs, id) {
				return false
			}
		}
	}
	return true
}

// HostName is a Host header as scopes compare it: lower case, without a
// port or a trailing dot.
func HostName(host string) string { return verdict.HostName(host) }

// normalPath is a request path as the WAF's REQUEST_FILENAME compares it:
// percent-decoded, dot segments resolved, so /support/tickets/../admin is
// /admin and not under /support/tickets.
func normalPath(raw string) string {
	p, err := url.PathUnescape(raw)
	if err != nil {
		p = raw
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p)
}

// underPath reports whether the clean path p is scope path or below it,
// segment by segment: /support/tickets covers /support/tickets/42, not
// /support/ticketsadmin.
func underPath(p, scope string) bool {
	scope = strings.TrimSuffix(scope, "/")
	return scope == "" || p == scope || strings.HasPrefix(p, scope+"/")
}

// Validate refuses a scope that would excuse more than it names: an empty
// or relative path (an empty one put every disagreement in scope), a path
// with dot segments, a rule ID that cannot exist.
func (s Scope) Validate() error {
	if len(s.Clauses) > 0 {
		if len(s.RuleIDs)+len(s.Paths)+len(s.ExactPaths)+len(s.Hosts) > 0 {
			return fmt.Errorf("scope: clauses replace rule_ids, paths and hosts; give one or the other")
		}
		for i, c := range s.Clauses {
			if len(c.Clauses) > 0 || c.Empty() {
				return fmt.Errorf("scope.clauses[%d]: want rule_ids, paths or hosts, without clauses of its own", i)
			}
			if err := c.Validate(); err != nil {
				return fmt.Errorf("scope.clauses[%d]: %w", i, err)
			}
		}
		return nil
	}
	for i, p := range s.Paths {
		switch {
		case p == "" || !strings.HasPrefix(p, "/"):
			return fmt.Errorf("scope.paths[%d]: want an absolute path such as /support/tickets, got %q", i, p)
		case p != "/" && path.Clean(p) != strings.TrimSuffix(p, "/"):
			return fmt.Errorf("scope.paths[%d]: want a clean path (no ., .. or //), got %q; did you mean %q?", i, p, path.Clean(p))
		}
	}
	for i, p := range s.ExactPaths {
		// Taken as written: REQUEST_FILENAME is not cleaned either, so an
		// exclusion may be meant for /a//b, which is not /a/b.
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") || strings.ContainsFunc(p, unicode.IsControl) {
			return fmt.Errorf("scope.exact_paths[%d]: want an absolute path without a query, such as /api/notes, got %q", i, p)
		}
	}
	for i, id := range s.RuleIDs {
		if id <= 0 {
			return fmt.Errorf("scope.rule_ids[%d]: want a rule ID, got %d", i, id)
		}
	}
	if slices.Contains(s.Paths, "/") && len(s.Hosts) == 0 && len(s.RuleIDs) == 0 {
		return fmt.Errorf("scope.paths: / alone excuses every disagreement; name a host or rules with it, or a narrower path")
	}
	for i, h := range s.Hosts {
		if !verdict.ValidHostName(h) {
			return fmt.Errorf("scope.hosts[%d]: want a host name such as shop.example.com (lower case, no port, no wildcard), got %q", i, h)
		}
	}
	return nil
}
