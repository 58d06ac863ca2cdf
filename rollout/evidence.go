package rollout

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/wafcanary/wafcanary/router"
)

// Scope is what a rollout declares it means to change: disagreements on
// these paths (prefixes), or caused only by these rules, are expected and
// do not count against the candidate.
type Scope struct {
	RuleIDs []int    `json:"rule_ids,omitempty"`
	Paths   []string `json:"paths,omitempty"`
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
}

// ArmEvidence is one arm's split evidence.
type ArmEvidence struct {
	Requests, Blocked, UpstreamErrors int64
	// WAFTime is a sketch of seconds inside Coraza per request, 1%
	// relative accuracy. Nil when the arm saw no request.
	WAFTime *ddsketch.DDSketch
}

// Evidence is everything the controller judges, gathered since the
// current step began.
type Evidence struct {
	Pairs      int64
	NewBlocks  Disagreements // candidate blocks, baseline allows
	LostBlocks Disagreements // baseline blocks, candidate allows
	Arms       [2]ArmEvidence
	Dropped    int64
	// ShadowedByCandidate counts the pairs the baseline enforced on: the
	// candidate judged them in shadow.
	ShadowedByCandidate int64
}

// CandidateRequests is how many requests the candidate judged, enforcing
// on its arm or in shadow: the traffic a step's min_requests counts.
func (e Evidence) CandidateRequests() int64 {
	return e.Arms[router.Candidate].Requests + e.ShadowedByCandidate
}

// Collector gathers Evidence from the router. It implements
// router.Observer; its request-path methods hold a mutex only for a few
// counter updates, and the controller's Snapshot only to copy.
type Collector struct {
	mu      sync.Mutex
	scope   Scope
	ev      Evidence
	counter Counter
}

// Counter is told of every pair and disagreement the collector counts,
// classified as the controller will judge them, so a fleet's evidence can
// be summed over its replicas in Prometheus.
type Counter interface {
	CountPair(enforcing router.Arm)
	CountDisagreement(kind string, inScope bool, rules []int)
}

var (
	_ router.Observer = (*Collector)(nil)
	_ EvidenceSource  = (*Collector)(nil)
)

// NewCollector returns an empty collector; counter may be nil.
func NewCollector(counter Counter) *Collector {
	c := &Collector{counter: counter}
	c.ResetScope(Scope{})
	return c
}

// Evidence implements EvidenceSource.
func (c *Collector) Evidence(context.Context) (Evidence, error) { return c.Snapshot(), nil }

// Reset implements EvidenceSource: the window starts now, whatever since
// says, as the process saw nothing before.
func (c *Collector) Reset(scope Scope, _ time.Time) { c.ResetScope(scope) }

// ResetScope starts a new evidence window with scope.
func (c *Collector) ResetScope(scope Scope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scope = scope
	c.ev = Evidence{NewBlocks: Disagreements{Rules: map[int]int64{}}, LostBlocks: Disagreements{Rules: map[int]int64{}}}
}

// Snapshot returns a copy of the evidence gathered since the last Reset.
func (c *Collector) Snapshot() Evidence {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.ev
	e.NewBlocks.Rules = cloneCounts(c.ev.NewBlocks.Rules)
	e.LostBlocks.Rules = cloneCounts(c.ev.LostBlocks.Rules)
	for i := range e.Arms {
		if s := c.ev.Arms[i].WAFTime; s != nil {
			e.Arms[i].WAFTime = s.Copy()
		}
	}
	return e
}

func cloneCounts(m map[int]int64) map[int]int64 {
	out := make(map[int]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ObserveRequest implements router.Observer.
func (c *Collector) ObserveRequest(r router.RequestRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &c.ev.Arms[r.Arm]
	a.Requests++
	if r.Action == router.Blocked {
		a.Blocked++
	}
	if r.UpstreamError {
		a.UpstreamErrors++
	}
	if a.WAFTime == nil {
		a.WAFTime, _ = ddsketch.NewDefaultDDSketch(0.01)
	}
	if s := r.WAFDuration.Seconds(); s > 0 {
		_ = a.WAFTime.Add(s)
	}
}

// ObserveShadow implements router.Observer.
func (c *Collector) ObserveShadow(s router.ShadowRecord) {
	var d *Disagreements
	var kind string
	var blocking, other router.Verdict
	switch {
	case s.Candidate.Blocked && !s.Baseline.Blocked:
		d, kind, blocking, other = &c.ev.NewBlocks, "new_block", s.Candidate, s.Baseline
	case s.Baseline.Blocked && !s.Candidate.Blocked:
		d, kind, blocking, other = &c.ev.LostBlocks, "lost_block", s.Baseline, s.Candidate
	}
	var rules []int
	if d != nil {
		rules = attribute(blocking, other)
	}
	inScope := c.count(s.Enforcing, d, s.Path, rules)
	// Prometheus counters take their own locks; not under ours.
	if c.counter != nil {
		c.counter.CountPair(s.Enforcing)
		if d != nil {
			c.counter.CountDisagreement(kind, inScope, rules)
		}
	}
}

// count adds a pair, and its disagreement d if any, to the window, and
// reports whether the disagreement is in the rollout's scope.
func (c *Collector) count(enforcing router.Arm, d *Disagreements, path string, rules []int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ev.Pairs++
	if enforcing == router.Baseline {
		c.ev.ShadowedByCandidate++
	}
	if d == nil {
		return false
	}
	if c.scope.covers(path, rules) {
		d.InScope++
		return true
	}
	d.OutOfScope++
	for _, id := range rules {
		d.Rules[id]++
	}
	return false
}

// ShadowDropped implements router.Observer.
func (c *Collector) ShadowDropped() {
	c.mu.Lock()
	c.ev.Dropped++
	c.mu.Unlock()
}

// ObserveSnapshot implements router.Observer; the controller resets the
// window itself when it changes the share.
func (c *Collector) ObserveSnapshot(*router.Snapshot) {}

// attribute returns the rules behind a disagreement: those that logged on
// the blocking side and not on the other, evaluation rules left out.
func attribute(blocking, other router.Verdict) []int {
	var out []int
	for _, r := range blocking.Rules {
		if evaluationRules[r.ID] || slices.ContainsFunc(other.Rules, func(o router.RuleMatch) bool { return o.ID == r.ID }) || slices.Contains(out, r.ID) {
			continue
		}
		out = append(out, r.ID)
	}
	return out
}

func (s Scope) covers(path string, rules []int) bool {
	for _, p := range s.Paths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	if len(rules) == 0 || len(s.RuleIDs) == 0 {
		return false
	}
	for _, id := range rules {
		if !slices.Contains(s.RuleIDs, id) {
			return false
		}
	}
	return true
}
