package evidence

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/verdict"
)

// The series the evidence counters write and the Prometheus reader sums.
const (
	PairsTotal             = "wafcanary_evidence_pairs_total"
	DisagreementsTotal     = "wafcanary_evidence_disagreements_total"
	DisagreementRulesTotal = "wafcanary_evidence_disagreement_rules_total"
)

// Counters count shadow pairs and disagreements exactly as the collector
// classifies them (in or out of the rollout's scope), so that a fleet's
// controller can sum them over the replicas in Prometheus.
type Counters struct {
	pairs, disagreements, rules *prometheus.CounterVec
	// The fixed series, resolved once: the shadow worker counts every
	// pair without a label lookup.
	pair  [2]prometheus.Counter
	inOut map[verdict.Disagreement][2]prometheus.Counter // kind -> out, in
}

var _ Counter = (*Counters)(nil)

// NewCounters creates the counters and registers them with reg.
func NewCounters(reg prometheus.Registerer) *Counters {
	e := &Counters{
		pairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: PairsTotal,
			Help: "Shadow pairs counted as rollout evidence, by the arm that enforced.",
		}, []string{"enforcing"}),
		disagreements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: DisagreementsTotal,
			Help: "Shadow pairs where exactly one ruleset blocks (kind new_block or lost_block), in or out of the rollout's declared scope.",
		}, []string{"kind", "scope"}),
		rules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: DisagreementRulesTotal,
			Help: "Rules behind disagreements, in or out of the rollout's scope: those that logged on the blocking side only, score-evaluation rules such as 949110 left out.",
		}, []string{"kind", "scope", "rule_id"}),
	}
	reg.MustRegister(e.pairs, e.disagreements, e.rules)
	// increase() cannot see a series' first sample: all exist from zero.
	for _, a := range verdict.Arms {
		e.pair[a] = e.pairs.WithLabelValues(a.String())
	}
	e.inOut = map[verdict.Disagreement][2]prometheus.Counter{}
	for _, k := range []verdict.Disagreement{verdict.NewBlock, verdict.LostBlock} {
		e.inOut[k] = [2]prometheus.Counter{e.disagreements.WithLabelValues(k.String(), "out"), e.disagreements.WithLabelValues(k.String(), "in")}
	}
	return e
}

// CountPair implements Counter.
func (e *Counters) CountPair(enforcing verdict.Arm) { e.pair[enforcing].Inc() }

// CountDisagreement implements Counter.
func (e *Counters) CountDisagreement(kind verdict.Disagreement, inScope bool, rules []int) {
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
		e.rules.WithLabelValues(kind.String(), scope, strconv.Itoa(id)).Inc()
	}
}
