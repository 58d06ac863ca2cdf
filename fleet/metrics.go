package fleet

import "github.com/prometheus/client_golang/prometheus"

// Metrics report a replica's place in a fleet.
type Metrics struct {
	leader, storeUp prometheus.Gauge
	rollout         AnalysisForgetter
}

// AnalysisForgetter is the replica's rollout reporter (rollout.Metrics).
type AnalysisForgetter interface{ ForgetAnalysis() }

// NewMetrics creates the collectors and registers them with reg. rollout,
// if not nil, is this replica's rollout reporter: it forgets its last
// analysis when the replica does not lead.
func NewMetrics(reg prometheus.Registerer, rollout AnalysisForgetter) *Metrics {
	f := &Metrics{
		rollout: rollout,
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

// ReportFleet implements Reporter.
func (f *Metrics) ReportFleet(leading, storeUp bool) {
	f.leader.Set(b2f(leading))
	f.storeUp.Set(b2f(storeUp))
	// Only the leader analyses. A former leader's last analysis would
	// otherwise stay exported beside the new leader's, and a dashboard
	// taking the fleet's max would mix the two.
	if !leading && f.rollout != nil {
		f.rollout.ForgetAnalysis()
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
