package evidence

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/wafcanary/wafcanary/metrics"
	"github.com/wafcanary/wafcanary/verdict"
)

// PrometheusEvidence reads the evidence of the whole fleet from
// Prometheus: every series summed over the replicas with increase() over
// its window (shadow pairs since the rollout started, split arms since
// the step started); it is the controller's source of evidence for a
// fleet (rollout.EvidenceSource). Prometheus sees
// a replica's counters one scrape interval late, and increase() needs two
// samples in the window, so a step's first scrape intervals read as
// little or no evidence: inconclusive, never a pass.
type PrometheusEvidence struct {
	api      v1.API
	selector string
	timeout  time.Duration
	now      func() time.Time
	local    Scoper // may be nil

	mu      sync.Mutex
	windows Windows
}

// Scoper is this replica's own evidence collector: it classifies each
// disagreement in or out of the rollout's scope as it counts it into the
// series the leader sums (Collector).
type Scoper interface {
	ResetScope(Scope)
}

// PrometheusConfig says where a fleet's evidence is read.
type PrometheusConfig struct {
	URL string `mapstructure:"url"`
	// Selector restricts every query to wafcanary's series, as label
	// matchers without braces, e.g. job="wafcanary".
	Selector string        `mapstructure:"selector"`
	Timeout  time.Duration `mapstructure:"timeout"`
}

// NewPrometheusEvidence queries the Prometheus at cfg.URL. local is told
// the scope at every Reset.
func NewPrometheusEvidence(cfg PrometheusConfig, local Scoper) (*PrometheusEvidence, error) {
	c, err := api.NewClient(api.Config{Address: cfg.URL})
	if err != nil {
		return nil, fmt.Errorf("rollout.prometheus.url: %w", err)
	}
	now := time.Now()
	return &PrometheusEvidence{api: v1.NewAPI(c), selector: cfg.Selector, timeout: cfg.Timeout, now: time.Now,
		windows: Windows{Rollout: now, Step: now}, local: local}, nil
}

// Reset starts the windows w. Every replica's controller
// resets its source when the rollout moves (the leader when it decides,
// followers when they sync), so each replica's collector learns the
// rollout's scope here, and the in/out split summed in Prometheus is the
// rollout's own.
func (p *PrometheusEvidence) Reset(w Windows) {
	p.mu.Lock()
	p.windows = w
	p.mu.Unlock()
	if p.local != nil {
		p.local.ResetScope(w.Scope)
	}
}

// Queries returns the PromQL this source runs, by what it feeds, for
// shadow pairs counted over the last rollout and split arms over the last
// step; the README documents them.
func (p *PrometheusEvidence) Queries(rollout, step time.Duration) map[string]string {
	rng := func(d time.Duration) string {
		return "[" + strconv.FormatInt(int64(math.Ceil(max(d, time.Second).Seconds())), 10) + "s]"
	}
	r, w := rng(rollout), rng(step)
	sel := "{" + p.selector + "}"
	outOfScope := `{scope="out"}`
	if p.selector != "" {
		outOfScope = `{scope="out",` + p.selector + "}"
	}
	return map[string]string{
		"pairs":         "sum(increase(" + PairsTotal + sel + r + "))",
		"disagreements": "sum by (kind, scope) (increase(" + DisagreementsTotal + sel + r + "))",
		"rules":         "sum by (kind, rule_id) (increase(" + DisagreementRulesTotal + outOfScope + r + ")) > 0",
		"step_pairs":    "sum by (enforcing) (increase(" + PairsTotal + sel + w + "))",
		"requests":      "sum by (arm, action) (increase(" + metrics.RequestsTotal + sel + w + "))",
		"upstream":      "sum by (arm) (increase(" + metrics.UpstreamErrorsTotal + sel + w + "))",
		"response":      "sum by (arm) (increase(" + metrics.ResponseBlocksTotal + sel + w + "))",
		"dropped":       "sum(increase(" + metrics.ShadowDroppedTotal + sel + w + "))",
		"waf_time":      "sum by (arm, le) (increase(" + metrics.WAFDurationSeconds + "_bucket" + sel + w + "))",
	}
}

// Evidence reads the fleet's evidence in its windows. Any failed query fails the
// whole read: half the evidence could pass what the whole would not.
func (p *PrometheusEvidence) Evidence(ctx context.Context) (Evidence, error) {
	p.mu.Lock()
	win := p.windows
	p.mu.Unlock()
	now := p.now()
	ev := Evidence{NewBlocks: Disagreements{Rules: map[int]int64{}}, LostBlocks: Disagreements{Rules: map[int]int64{}}}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	results := map[string]model.Vector{}
	for name, q := range p.Queries(now.Sub(win.Rollout), now.Sub(win.Step)) {
		v, _, _, err := p.api.Query(ctx, q, now)
		if err != nil {
			return Evidence{}, fmt.Errorf("prometheus query %s: %w", name, err)
		}
		vec, ok := v.(model.Vector)
		if !ok {
			return Evidence{}, fmt.Errorf("prometheus query %s: want a vector, got %s", name, v.Type())
		}
		results[name] = vec
	}
	count := func(s *model.Sample) int64 { return int64(math.Round(float64(s.Value))) }
	arm := func(s *model.Sample, label model.LabelName) (verdict.Arm, bool) {
		switch s.Metric[label] {
		case "baseline":
			return verdict.Baseline, true
		case "candidate":
			return verdict.Candidate, true
		}
		return 0, false
	}
	for _, s := range results["pairs"] {
		ev.Pairs += count(s)
	}
	for _, s := range results["step_pairs"] {
		if a, ok := arm(s, "enforcing"); ok && a == verdict.Baseline {
			ev.ShadowedByCandidate += count(s)
		}
	}
	kinds := map[model.LabelValue]*Disagreements{"new_block": &ev.NewBlocks, "lost_block": &ev.LostBlocks}
	for _, s := range results["disagreements"] {
		d := kinds[s.Metric["kind"]]
		switch {
		case d == nil:
		case s.Metric["scope"] == "in":
			d.InScope += count(s)
		default:
			d.OutOfScope += count(s)
		}
	}
	for _, s := range results["rules"] {
		id, err := strconv.Atoi(string(s.Metric["rule_id"]))
		if d := kinds[s.Metric["kind"]]; d != nil && err == nil && count(s) > 0 {
			d.Rules[id] += count(s)
		}
	}
	for _, s := range results["requests"] {
		if a, ok := arm(s, "arm"); ok {
			ev.Arms[a].Requests += count(s)
			if s.Metric["action"] == "blocked" {
				ev.Arms[a].Blocked += count(s)
			}
		}
	}
	for _, s := range results["upstream"] {
		if a, ok := arm(s, "arm"); ok {
			ev.Arms[a].UpstreamErrors += count(s)
		}
	}
	for _, s := range results["response"] {
		if a, ok := arm(s, "arm"); ok {
			ev.Arms[a].ResponseBlocked += count(s)
		}
	}
	for _, s := range results["dropped"] {
		ev.Dropped += count(s)
	}
	for a, sk := range sketches(results["waf_time"]) {
		ev.Arms[a].WAFTime = sk
	}
	return ev, nil
}

// sketches turns cumulative histogram buckets into one sketch per arm,
// each bucket's count placed at the geometric middle of its bounds (the
// last finite bound for +Inf). Quantiles are then as precise as the
// buckets: the latency checks compare bucket-resolution figures.
func sketches(buckets model.Vector) map[verdict.Arm]*ddsketch.DDSketch {
	type bound struct {
		le    float64
		count float64
	}
	byArm := map[verdict.Arm][]bound{}
	for _, s := range buckets {
		var a verdict.Arm
		switch s.Metric["arm"] {
		case "baseline":
			a = verdict.Baseline
		case "candidate":
			a = verdict.Candidate
		default:
			continue
		}
		le, err := strconv.ParseFloat(string(s.Metric["le"]), 64)
		if err != nil {
			continue
		}
		byArm[a] = append(byArm[a], bound{le, float64(s.Value)})
	}
	out := map[verdict.Arm]*ddsketch.DDSketch{}
	for a, bs := range byArm {
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		sk, _ := ddsketch.NewDefaultDDSketch(0.01)
		lower, prev := 0.0, 0.0
		for _, b := range bs {
			n := math.Round(b.count - prev)
			prev = math.Max(prev, b.count)
			upper := b.le
			if math.IsInf(upper, 1) {
				upper = lower
			}
			if n > 0 && upper > 0 {
				v := upper / 2
				if lower > 0 {
					v = math.Sqrt(lower * upper)
				}
				_ = sk.AddWithCount(v, n)
			}
			if !math.IsInf(b.le, 1) {
				lower = b.le
			}
		}
		if sk.GetCount() > 0 {
			out[a] = sk
		}
	}
	return out
}
