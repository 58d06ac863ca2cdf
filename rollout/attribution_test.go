package rollout

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Four-eyes: a promotion is an approval, refused from the rollout's own
// starter when the identity is personal and rollout.approvals.distinct
// holds; an emergency, distinct: false and a shared credential pass, each
// saying so. The ticket and the claimed name reach the state and the
// journal from the attribution.
func TestApprovalFourEyes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		by        string
		a         Attribution
		distinct  bool
		wantErr   error
		wantInWhy string
	}{
		{"another approver", "bob", Attribution{Personal: true, Claimed: "mallory"}, true, nil, "approved by bob to step 2"},
		{"the starter", "alice", Attribution{Personal: true}, true, ErrSameApprover, ""},
		// Why: a team of one turns four-eyes off; the journal says so.
		{"the starter, distinct off", "alice", Attribution{Personal: true}, false, nil, "rollout.approvals.distinct is false"},
		{"the starter, emergency", "alice", Attribution{Personal: true, Emergency: true}, true, nil, "[emergency: approved by alice, who started the rollout, past four-eyes]"},
		// Why: a shared admin.token proves no person; as before users.
		{"shared credential", "alice", Attribution{}, true, nil, "approved by alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Steps = []Step{{Percent: 0, MinDuration: time.Minute}, {Percent: 10, MinDuration: time.Minute, Approval: true}, {Percent: 100, MinDuration: time.Minute}}
				c.Approvals.Distinct = tc.distinct
			})
			started := WithAttribution(context.Background(), Attribution{Personal: true, Ticket: "CHG-7"})
			st, err := h.c.Start(started, h.cand, Spec{Actor: "alice", Reason: "fp"}, at(h.t0))
			if err != nil || st.StartedBy != "alice" || st.Ticket != "CHG-7" || st.LastDecision.Ticket != "CHG-7" {
				t.Fatalf("start: %v, started by %q, ticket %q", err, st.StartedBy, st.Ticket)
			}
			h.ev.set(clean(20000))
			if d := h.step(t, 61*time.Second); d.Action != ActionAwait {
				t.Fatalf("not awaiting approval: %s %s", d.Action, d.Reason)
			}
			a := tc.a
			a.Ticket = "CHG-8"
			st, err = h.c.PromoteStep(WithAttribution(context.Background(), a), tc.by, "looks right", at(h.t0.Add(2*time.Minute)))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("promote by %s: %v, want %v", tc.by, err, tc.wantErr)
			}
			h.ev.set(clean(20000))
			if err != nil {
				if st := h.c.State(); st.Step != 0 || !st.Awaiting || !strings.Contains(err.Error(), "alice started this rollout") {
					t.Errorf("refused, yet step %d awaiting %v; %v", st.Step, st.Awaiting, err)
				}
				return
			}
			if st.Step != 1 || !strings.Contains(st.LastDecision.Reason, tc.wantInWhy) || st.LastDecision.Emergency != tc.a.Emergency {
				t.Fatalf("promote: step %d, %+v", st.Step, st.LastDecision)
			}
			h2, err := h.store.History(0)
			if err != nil {
				t.Fatal(err)
			}
			e := h2[len(h2)-1]
			if e.Actor != tc.by || e.Ticket != "CHG-8" || e.Claimed != tc.a.Claimed || e.Emergency != tc.a.Emergency || st.Ticket != "CHG-7" {
				t.Errorf("journal entry %+v; rollout ticket %q", e, st.Ticket)
			}
		})
	}
}
