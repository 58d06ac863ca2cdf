package fleet

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wafcanary/wafcanary/rollout"
)

// A replica that stops leading must stop exporting its last analysis:
// the new leader's is the current one.
func TestFormerLeaderExportsNoEvidence(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := rollout.NewMetrics(reg)
	f := NewMetrics(reg, r)
	f.ReportFleet(true, true)
	r.ReportRollout(rollout.State{Phase: rollout.Progressing}, &rollout.Analysis{Outcomes: []rollout.Outcome{{Check: "new_blocks", Observed: 0.01}}}, "hold")
	if n := testutil.CollectAndCount(reg, "wafcanary_rollout_evidence"); n != 5 {
		t.Fatalf("%d evidence series while leading, want 5", n)
	}
	f.ReportFleet(true, false) // etcd down, still leading until the lease ends
	if n := testutil.CollectAndCount(reg, "wafcanary_rollout_evidence"); n != 5 {
		t.Fatalf("%d evidence series while leading without the store, want 5", n)
	}
	f.ReportFleet(false, true)
	if n := testutil.CollectAndCount(reg, "wafcanary_rollout_evidence"); n != 0 {
		t.Errorf("%d evidence series after leadership was lost, want 0", n)
	}
	if v := testutil.ToFloat64(f.leader); v != 0 {
		t.Errorf("wafcanary_fleet_leader = %v after leadership was lost", v)
	}
}
