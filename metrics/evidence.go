package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/verdict"
)

// Evidence counts shadow pairs and disagreements exactly as the rollout's
// collector classifies them (in or out of the rollout's scope), so that a
// fleet's controller can sum them over the replicas in Prometheus.
type Evidence struct {
	pairs, disagreements, rules *prometheus.CounterVec
	// The fixed series, resolved once: the shadow worker counts every
	// pair without a label lookup.
	pair  [2]prometheus.Counter
	inOut map[string][2]prometheus.Counter // kind -> out, in
}

var _ rollout.Counter = (*Evidence)(nil)

// NewEvidence creates the collectors and registers them with reg.
func NewEvidence(reg prometheus.Registerer) *Evidence {
	e := &Evidence{
		pairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_evidence_pairs_total",
			Help: "Shadow pairs counted as rollout evidence, by the arm that enforced.",
		}, []string{"enforcing"}),
		disagreements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_evidence_disagreements_total",
			Help: "Shadow pairs where exactly one ruleset blocks (kind new_block or lost_block), in or out of the rollout's declared scope.",
		}, []string{"kind", "scope"}),
		rules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_evidence_disagreement_rules_total",
			Help: "Rules behind disagreements, in or out of the rollout's scope: those that logged on the blocking side only, score-evaluation rules such as 949110 left out.",
		}, []string{"kind", "scope", "rule_id"}),
	}
	reg.MustRegister(e.pairs, e.disagreements, e.rules)
	// increase() cannot see a series' first sample: all exist from zero.
	for _, a := range verdict.Arms {
		e.pair[a] = e.pairs.WithLabelValues(a.String())
	}
	e.inOut = map[string][2]prometheus.Counter{}
	for _, k := range []string{"new_block", "lost_block"} {
		e.inOut[k] = [2]prometheus.Counter{e.disagreements.WithLabelValues(k, "out"), e.disagreements.WithLabelValues(k, "in")}
	}
	return e
}

// CountPair implements rollout.Counter.
func (e *Evidence) CountPair(enforcing verdict.Arm) { e.pair[enforcing].Inc() }

// CountDisagreement implements rollout.Counter.
func (e *Evidence) CountDisagreement(kind string, inScope bool, rules []int) {
	c, ok := e.inOut[kind]
	if !ok {
		return
	}
	scope := "out"
	if inScope {
		scope = "in"
		c[1].Inc()
	} else {
		c[0].Inc()
	}
	// Rule IDs come from the loaded rulesets' own rules: bounded.
	for _, id := range rules {
		e.rules.WithLabelValues(kind, scope, strconv.Itoa(id)).Inc()
	}
}
