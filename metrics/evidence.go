package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
)

// Evidence counts shadow pairs and disagreements exactly as the rollout's
// collector classifies them (in or out of the rollout's scope), so that a
// fleet's controller can sum them over the replicas in Prometheus.
type Evidence struct {
	pairs, disagreements, rules *prometheus.CounterVec
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
			Help: "Rules behind out-of-scope disagreements: those that logged on the blocking side only.",
		}, []string{"kind", "rule_id"}),
	}
	reg.MustRegister(e.pairs, e.disagreements, e.rules)
	// increase() cannot see a series' first sample: create them at zero.
	for _, a := range router.Arms {
		e.pairs.WithLabelValues(a.String())
	}
	for _, k := range []string{"new_block", "lost_block"} {
		for _, s := range []string{"in", "out"} {
			e.disagreements.WithLabelValues(k, s)
		}
	}
	return e
}

// CountPair implements rollout.Counter.
func (e *Evidence) CountPair(enforcing router.Arm) { e.pairs.WithLabelValues(enforcing.String()).Inc() }

// CountDisagreement implements rollout.Counter.
func (e *Evidence) CountDisagreement(kind string, inScope bool, rules []int) {
	scope := "out"
	if inScope {
		scope = "in"
	}
	e.disagreements.WithLabelValues(kind, scope).Inc()
	if inScope {
		return
	}
	// Rule IDs come from the loaded rulesets' own rules: bounded.
	for _, id := range rules {
		e.rules.WithLabelValues(kind, strconv.Itoa(id)).Inc()
	}
}

// Fleet reports a replica's place in a fleet.
type Fleet struct {
	leader, storeUp prometheus.Gauge
}

// NewFleet creates the collectors and registers them with reg.
func NewFleet(reg prometheus.Registerer) *Fleet {
	f := &Fleet{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wafcanary_fleet_leader",
			Help: "1 if this replica leads the fleet's rollout (takes its decisions), else 0.",
		}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wafcanary_state_store_up",
			Help: "1 if the shared state store (etcd) answered the last check, else 0: the replica serves its last routing and no decision is taken.",
		}),
	}
	reg.MustRegister(f.leader, f.storeUp)
	return f
}

// ReportFleet implements fleet.Reporter.
func (f *Fleet) ReportFleet(leading, storeUp bool) {
	f.leader.Set(b2f(leading))
	f.storeUp.Set(b2f(storeUp))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
