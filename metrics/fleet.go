package metrics

import "github.com/prometheus/client_golang/prometheus"

// Fleet reports a replica's place in a fleet.
type Fleet struct {
	leader, storeUp prometheus.Gauge
	rollout         *Rollout
}

// NewFleet creates the collectors and registers them with reg. rollout,
// if not nil, is this replica's rollout reporter: its evidence is cleared
// when the replica does not lead.
func NewFleet(reg prometheus.Registerer, rollout *Rollout) *Fleet {
	f := &Fleet{
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

// ReportFleet implements fleet.Reporter.
func (f *Fleet) ReportFleet(leading, storeUp bool) {
	f.leader.Set(b2f(leading))
	f.storeUp.Set(b2f(storeUp))
	// Only the leader analyses. A former leader's last analysis would
	// otherwise stay exported beside the new leader's, and a dashboard
	// taking the fleet's max would mix the two.
	if !leading && f.rollout != nil {
		f.rollout.evidence.Reset()
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
