package rollout

import (
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/evidence"
)

// In a CRS upgrade the new and lost blocks name what the upgrade did to
// each rule behind them, so the operator sees which of the release's
// changes hit their traffic; outside an upgrade the reason is as before.
func TestDisagreementsNameTheUpgradesChange(t *testing.T) {
	e := evidence.Evidence{Pairs: 2000,
		NewBlocks:  evidence.Disagreements{OutOfScope: 100, Rules: map[int]int64{920640: 90, 942100: 10}},
		LostBlocks: evidence.Disagreements{OutOfScope: 3, Rules: map[int]int64{941120: 3}},
	}
	changes := map[int]string{920640: "new", 941120: "changed"}
	tests := []struct {
		name      string
		changed   RuleChange
		newBlocks string
		lost      string
	}{
		{"an upgrade", func(id int) string { return changes[id] },
			"rules 920640 (x90, new in the upgrade), 942100 (x10, unchanged in the upgrade)", "rules 941120 (x3, changed in the upgrade)"},
		{"not an upgrade", nil, "rules 920640 (x90), 942100 (x10)", "rules 941120 (x3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := evaluate(e, DefaultConfig.Policy, 0, tt.changed)
			for _, o := range a.Outcomes {
				switch o.Check {
				case "new_blocks":
					if o.Status != Fail || !strings.Contains(o.Reason, tt.newBlocks) {
						t.Errorf("new blocks: %s %q, want a failure naming %q", o.Status, o.Reason, tt.newBlocks)
					}
					if tt.changed != nil && (o.Rules[0].Upgrade != "new" || o.Rules[1].Upgrade != "unchanged") {
						t.Errorf("new blocks' rules %+v", o.Rules)
					}
				case "lost_blocks":
					if !strings.Contains(o.Reason, tt.lost) {
						t.Errorf("lost blocks: %q, want %q", o.Reason, tt.lost)
					}
				}
			}
		})
	}
}
