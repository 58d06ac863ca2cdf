package evidence

import (
	"context"
	"slices"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/wafcanary/wafcanary/verdict"
)

// Counter is told of every pair and disagreement the collector counts,
// classified as the controller will judge them, so a fleet's evidence can
// be summed over its replicas in Prometheus.
type Counter interface {
	CountPair(enforcing verdict.Arm)
	CountDisagreement(kind verdict.Disagreement, inScope bool, rules []int)
}

// NewCollector returns an empty collector; counter may be nil.
func NewCollector(counter Counter) *Collector {
	c := &Collector{counter: counter}
	c.ResetScope(Scope{})
	return c
}

// Evidence returns the evidence gathered so far: the collector is a
// source of evidence for the controller (rollout.EvidenceSource).
func (c *Collector) Evidence(context.Context) (Evidence, error) { return c.Snapshot(), nil }

// Reset starts the windows w. The process saw nothing before it
// started, so each window starts now: the step's always, the paired one
// only when it belongs to another rollout than the one counted so far
// (or the scope changed), so shadow pairs add up across a rollout's steps.
func (c *Collector) Reset(w Windows) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !w.Rollout.Equal(c.rollout) || w.Rollout.IsZero() || !w.Scope.Equal(c.scope) {
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

// ObserveRequest counts a proxied request in its arm.
func (c *Collector) ObserveRequest(r verdict.RequestRecord) {
	if r.Outside {
		return // a host the rollout does not judge: not evidence
	}
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

// ObserveShadow counts a shadow pair and its disagreement, if any.
func (c *Collector) ObserveShadow(s verdict.ShadowRecord) {
	var d *Disagreements
	var blocking, other verdict.Verdict
	kind := s.Disagreement()
	switch kind {
	case verdict.NewBlock:
		d, blocking, other = &c.ev.NewBlocks, s.Candidate, s.Baseline
	case verdict.LostBlock:
		d, blocking, other = &c.ev.LostBlocks, s.Baseline, s.Candidate
	}
	var rules []int
	if d != nil {
		rules = attribute(blocking, other)
	}
	inScope := c.count(s.Enforcing, d, s.Host, s.Path, rules)
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
func (c *Collector) count(enforcing verdict.Arm, d *Disagreements, host, path string, rules []int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ev.Pairs++
	if enforcing == verdict.Baseline {
		c.ev.ShadowedByCandidate++
	}
	if d == nil {
		return false
	}
	if c.scope.covers(host, path, rules) {
		d.InScope++
		return true
	}
	d.OutOfScope++
	for _, id := range rules {
		d.Rules[id]++
	}
	return false
}

// ShadowDropped counts a sample not evaluated.
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

// Attribution returns the rules behind s's disagreement exactly as the
// collector counts them (the blocking side's, evaluation rules left out);
// nil when the two verdicts agree. A replayer reports them per request.
func Attribution(s verdict.ShadowRecord) []int {
	switch s.Disagreement() {
	case verdict.NewBlock:
		return attribute(s.Candidate, s.Baseline)
	case verdict.LostBlock:
		return attribute(s.Baseline, s.Candidate)
	}
	return nil
}
