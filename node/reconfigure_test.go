package node

import (
	"slices"
	"testing"
)

// Every section but rollout needs a restart to change, and is named:
// spoa among them, which a hand-kept list once missed.
func TestNeedRestartNamesEverySection(t *testing.T) {
	old := Default()
	next := Default()
	next.SPOA.Listen = "127.0.0.1:9000"
	next.Gates.Replay = []string{"/var/log/modsec_audit.log"}
	next.Rollout.MaxDuration *= 2
	if got := needRestart(old, next); !slices.Equal(got, []string{"spoa", "gates"}) {
		t.Errorf("needRestart: %v, want [spoa gates]", got)
	}
	if got := needRestart(old, Default()); len(got) != 0 {
		t.Errorf("nothing changed, yet %v", got)
	}
}
