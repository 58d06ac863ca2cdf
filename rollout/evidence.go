package rollout

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/verdict"
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

// accuracy is the relative accuracy of the quantiles read from WAFTime.
func (a ArmEvidence) accuracy() float64 {
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

// windowsOf returns the evidence windows of a rollout in state st.
func windowsOf(st State) Windows {
	return Windows{Scope: st.Scope, Rollout: st.Started, Step: st.StepStarted}
}

// Collector gathers Evidence from the router. It implements
// router.Observer; its request-path methods hold a mutex only for a few
// counter updates, and the controller's Snapshot only to copy.
type Collector struct {
	mu      sync.Mutex
	scope   Scope
	rollout time.Time // start of the paired window
	ev      Evidence
	counter Counter
}

// Counter is told of every pair and disagreement the collector counts,
// classified as the controller will judge them, so a fleet's evidence can
// be summed over its replicas in Prometheus.
type Counter interface {
	CountPair(enforcing verdict.Arm)
	CountDisagreement(kind string, inScope bool, rules []int)
}

var (
	_ router.RequestObserver = (*Collector)(nil)
	_ router.ShadowObserver  = (*Collector)(nil)
	_ EvidenceSource         = (*Collector)(nil)
)

// NewCollector returns an empty collector; counter may be nil.
func NewCollector(counter Counter) *Collector {
	c := &Collector{counter: counter}
	c.ResetScope(Scope{})
	return c
}

// Evidence implements EvidenceSource.
func (c *Collector) Evidence(context.Context) (Evidence, error) { return c.Snapshot(), nil }

// Reset implements EvidenceSource. The process saw nothing before it
// started, so each window starts now: the step's always, the paired one
// only when it belongs to another rollout than the one counted so far
// (or the scope changed), so shadow pairs add up across a rollout's steps.
func (c *Collector) Reset(w Windows) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !w.Rollout.Equal(c.rollout) || w.Rollout.IsZero() || !slices.Equal(w.Scope.Paths, c.scope.Paths) || !slices.Equal(w.Scope.RuleIDs, c.scope.RuleIDs) {
		c.resetLocked(w.Scope)
		c.rollout = w.Rollout
		return
	}
	c.ev.Arms, c.ev.Dropped, c.ev.ShadowedByCandidate = [2]ArmEvidence{}, 0, 0
}

// ResetScope starts new evidence windows, all of them, with scope.
func (c *Collector) ResetScope(scope Scope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked(scope)
	c.rollout = time.Time{}
}

func (c *Collector) resetLocked(scope Scope) {
	c.scope = scope
	c.ev = Evidence{NewBlocks: Disagreements{Rules: map[int]int64{}}, LostBlocks: Disagreements{Rules: map[int]int64{}}}
}

// Snapshot returns a copy of the evidence gathered in its windows.
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

// ObserveRequest implements router.RequestObserver.
func (c *Collector) ObserveRequest(r verdict.RequestRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &c.ev.Arms[r.Arm]
	a.Requests++
	if r.Action == verdict.Blocked {
		a.Blocked++
		if r.BlockedInResponse {
			a.ResponseBlocked++
		}
	}
	if r.UpstreamError {
		a.UpstreamErrors++
	}
	if a.WAFTime == nil {
		a.WAFTime, _ = ddsketch.NewDefaultDDSketch(sketchAccuracy)
	}
	if s := r.WAFDuration.Seconds(); s > 0 {
		_ = a.WAFTime.Add(s)
	}
}

// ObserveShadow implements router.ShadowObserver.
func (c *Collector) ObserveShadow(s verdict.ShadowRecord) {
	var d *Disagreements
	var kind string
	var blocking, other verdict.Verdict
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
func (c *Collector) count(enforcing verdict.Arm, d *Disagreements, path string, rules []int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ev.Pairs++
	if enforcing == verdict.Baseline {
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

// ShadowDropped implements router.ShadowObserver.
func (c *Collector) ShadowDropped() {
	c.mu.Lock()
	c.ev.Dropped++
	c.mu.Unlock()
}

// attribute returns the rules behind a disagreement: those that logged on
// the blocking side and not on the other, evaluation rules left out.
func attribute(blocking, other verdict.Verdict) []int {
	var out []int
	for _, r := range blocking.Rules {
		if evaluationRules[r.ID] || slices.ContainsFunc(other.Rules, func(o verdict.RuleMatch) bool { return o.ID == r.ID }) || slices.Contains(out, r.ID) {
			continue
		}
		out = append(out, r.ID)
	}
	return out
}

func (s Scope) covers(path string, rules []int) bool {
	if len(s.Paths) > 0 {
		clean := normalPath(path)
		for _, p := range s.Paths {
			if underPath(clean, p) {
				return true
			}
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
	for i, p := range s.Paths {
		switch {
		case p == "" || !strings.HasPrefix(p, "/"):
			return fmt.Errorf("scope.paths[%d]: want an absolute path such as /support/tickets, got %q", i, p)
		case p != "/" && path.Clean(p) != strings.TrimSuffix(p, "/"):
			return fmt.Errorf("scope.paths[%d]: want a clean path (no ., .. or //), got %q; did you mean %q?", i, p, path.Clean(p))
		}
	}
	for i, id := range s.RuleIDs {
		if id <= 0 {
			return fmt.Errorf("scope.rule_ids[%d]: want a rule ID, got %d", i, id)
		}
	}
	return nil
}
