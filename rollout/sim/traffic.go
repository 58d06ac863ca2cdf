// Package sim measures the rollout controller's decisions: it drives the
// real controller, policy and evidence collector (rollout.Controller,
// rollout.Evaluate, evidence.Collector) and the real router's routing
// state, with an injected clock, over synthetic traffic whose truth is
// known, and counts how often each kind of candidate is promoted, rolled
// back, or left inconclusive, and how long that took. The numbers in
// docs/STATISTICS.md come from `go run ./cmd/wafsim`.
//
// Only the requests are synthetic: the verdicts each ruleset would give,
// and their time inside the WAF, are drawn from the distributions below
// instead of being computed by Coraza, so that hours of traffic at
// 1,000 requests/s simulate in about a second.
package sim

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

// Traffic is what clients send, and how the baseline judges it.
type Traffic struct {
	// Rate is requests per second, arriving as a Poisson process.
	Rate float64
	// Clients is how many distinct clients (sticky keys) send them.
	Clients int
	// AttackShare is the share of requests that are attacks the baseline
	// blocks; FalsePositiveShare the share of legitimate requests the
	// baseline blocks by mistake, on the path and by the rule a good
	// exclusion is scoped to.
	AttackShare, FalsePositiveShare float64
	// UpstreamErrorRate is the share of allowed requests the upstream fails.
	UpstreamErrorRate float64
	// ResponseBlockShare is the share of requests both rulesets block in
	// the response phases (outbound rules: a leaking error page).
	ResponseBlockShare float64
	// WAF time of the baseline: lognormal body (median, sigma of the log)
	// with spikes (GC pauses, noisy neighbours) of SpikeMin..SpikeMax on a
	// share SpikeShare of requests.
	Median             time.Duration
	Sigma              float64
	SpikeShare         float64
	SpikeMin, SpikeMax time.Duration
}

// DefaultTraffic is the traffic of every scenario unless it says
// otherwise: 1% attacks, 0.5% false positives, 0.05% of requests blocked
// in the response phases, a 2 ms median WAF time
// with a p99 of about 4.5 ms, and 0.2% spikes of 10-50 ms.
var DefaultTraffic = Traffic{
	Rate:               10,
	Clients:            5000,
	AttackShare:        0.01,
	FalsePositiveShare: 0.005,
	UpstreamErrorRate:  0.001,
	ResponseBlockShare: 0.0005,
	Median:             2 * time.Millisecond,
	Sigma:              0.35,
	SpikeShare:         0.002,
	SpikeMin:           10 * time.Millisecond,
	SpikeMax:           50 * time.Millisecond,
}

// Effect is how a candidate differs from the baseline: the truth the
// controller must find out.
type Effect struct {
	// FixesFalsePositives: the candidate allows the baseline's false
	// positives (lost blocks inside the rollout's scope).
	FixesFalsePositives bool
	// NewBlocks is the share of all requests, legitimate ones, that the
	// candidate blocks and the baseline allows, outside the scope.
	NewBlocks float64
	// LostBlocks is the share of all requests, attacks, that the baseline
	// blocks and the candidate lets through, outside the scope.
	LostBlocks float64
	// ResponseBlocks is the share of legitimate requests the candidate
	// blocks in the response phases: the split arms see it, shadow pairs
	// (request phases only) do not.
	ResponseBlocks float64
	// LatencyFactor multiplies every WAF time (0 means 1).
	LatencyFactor float64
	// TailExtra is added to the WAF time of the slowest TailShare of
	// requests (those above the baseline body's 1-TailShare quantile).
	TailExtra time.Duration
	TailShare float64
}

// Scenario is one kind of candidate under one traffic.
type Scenario struct {
	Name string
	// Good says whether promotion is the right outcome; a rollback of a
	// good candidate, or a promotion of a bad one, is wrong.
	Good    bool
	Effect  Effect
	Traffic Traffic
	// Tweak, if set, adjusts the table's traffic for this scenario.
	Tweak func(*Traffic)
}

// Scenarios are the candidates of the decision table.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "A/A (same rules)", Good: true},
		{Name: "good exclusion", Good: true, Effect: Effect{FixesFalsePositives: true}},
		// Why: on a busy machine GC pauses put p99 in the spikes (the real
		// proxy on two cores measured p50 2.3 ms, p99 20 ms), where the
		// quantile function is steep.
		{Name: "A/A, heavy tail (1% spikes)", Good: true, Tweak: func(t *Traffic) { t.SpikeShare = 0.01 }},
		{Name: "+30% p50", Effect: Effect{LatencyFactor: 1.3}},
		{Name: "+3 ms p99", Effect: Effect{TailExtra: 3 * time.Millisecond, TailShare: 0.03}},
		{Name: "0.5% new blocks", Effect: Effect{NewBlocks: 0.005}},
		{Name: "0.2% lost blocks", Effect: Effect{LostBlocks: 0.002}},
		{Name: "+1 point block rate", Effect: Effect{ResponseBlocks: 0.01}},
	}
}

// kind of request, as the baseline sees it.
type kind uint8

const (
	benign kind = iota
	attack
	falsePositive
)

// Paths and rules the synthetic verdicts use; the good exclusion's scope
// is scopePath and ruleFalsePositive.
const (
	scopePath         = "/support/tickets"
	ruleAttack        = 942100
	ruleFalsePositive = 930120
	ruleNewBlock      = 942520
	ruleEvaluation    = 949110
)

// request is one synthetic request with both rulesets' verdicts.
type request struct {
	client                 int
	path                   string
	baseline, candidate    verdict.Verdict // request phases
	responseBlock          bool            // by both rulesets, in the response phases
	candidateResponseBlock bool
	upstreamError          bool
	baseTime, candTime     time.Duration
}

// generator draws requests for a scenario.
type generator struct {
	t         Traffic
	e         Effect
	rng       *rand.Rand
	tailFrom  float64 // seconds: the baseline body's (1-TailShare) quantile
	lostShare float64 // of attacks, the share the candidate lets through
	newShare  float64 // of benign requests, the share the candidate blocks
	respShare float64 // of benign requests, blocked in the response phases
}

func newGenerator(s Scenario, rng *rand.Rand) *generator {
	g := &generator{t: s.Traffic, e: s.Effect, rng: rng}
	benignShare := 1 - g.t.AttackShare - g.t.FalsePositiveShare
	if g.t.AttackShare > 0 {
		g.lostShare = math.Min(s.Effect.LostBlocks/g.t.AttackShare, 1)
	}
	g.newShare = s.Effect.NewBlocks / benignShare
	g.respShare = s.Effect.ResponseBlocks / benignShare
	if s.Effect.TailShare > 0 {
		g.tailFrom = g.t.Median.Seconds() * math.Exp(g.t.Sigma*normalQuantile(1-s.Effect.TailShare))
	}
	return g
}

func verdictOf(blocked bool, rules ...int) verdict.Verdict {
	v := verdict.Verdict{Blocked: blocked}
	for _, id := range rules {
		v.Rules = append(v.Rules, verdict.RuleMatch{ID: id})
	}
	return v
}

// Verdicts are shared, read-only, by every request of their kind.
var (
	allowed         = verdictOf(false)
	blockedAttack   = verdictOf(true, ruleAttack, ruleEvaluation)
	blockedFalsePos = verdictOf(true, ruleFalsePositive, ruleEvaluation)
	blockedNew      = verdictOf(true, ruleNewBlock, ruleEvaluation)
	pathsByKind     = [...]string{benign: "/", attack: "/search", falsePositive: scopePath}
	baselineByKind  = [...]verdict.Verdict{benign: allowed, attack: blockedAttack, falsePositive: blockedFalsePos}
)

func (g *generator) next() request {
	r := request{client: g.rng.IntN(g.t.Clients)}
	k := benign
	switch u := g.rng.Float64(); {
	case u < g.t.AttackShare:
		k = attack
	case u < g.t.AttackShare+g.t.FalsePositiveShare:
		k = falsePositive
	}
	r.path, r.baseline, r.candidate = pathsByKind[k], baselineByKind[k], baselineByKind[k]
	switch k {
	case attack:
		if g.lostShare > 0 && g.rng.Float64() < g.lostShare {
			r.candidate = allowed
		}
	case falsePositive:
		if g.e.FixesFalsePositives {
			r.candidate = allowed
		}
	case benign:
		if g.newShare > 0 && g.rng.Float64() < g.newShare {
			r.candidate = blockedNew
		}
		r.candidateResponseBlock = g.respShare > 0 && g.rng.Float64() < g.respShare
	}
	r.responseBlock = g.rng.Float64() < g.t.ResponseBlockShare
	r.upstreamError = g.rng.Float64() < g.t.UpstreamErrorRate
	r.baseTime, r.candTime = g.wafTimes()
	return r
}

// wafTimes draws the baseline's WAF time for a request and the
// candidate's on the same request.
func (g *generator) wafTimes() (base, cand time.Duration) {
	var s float64
	if g.t.SpikeShare > 0 && g.rng.Float64() < g.t.SpikeShare {
		s = g.t.SpikeMin.Seconds() + g.rng.Float64()*(g.t.SpikeMax-g.t.SpikeMin).Seconds()
	} else {
		s = g.t.Median.Seconds() * math.Exp(g.t.Sigma*g.rng.NormFloat64())
	}
	c := s
	if f := g.e.LatencyFactor; f > 0 {
		c *= f
	}
	if g.tailFrom > 0 && s > g.tailFrom {
		c += g.e.TailExtra.Seconds()
	}
	return time.Duration(s * float64(time.Second)), time.Duration(c * float64(time.Second))
}

// normalQuantile is the standard normal quantile function, by bisection
// on the error function: the generator needs it once per scenario.
func normalQuantile(p float64) float64 {
	lo, hi := -10.0, 10.0
	for range 100 {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(-mid/math.Sqrt2) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}
