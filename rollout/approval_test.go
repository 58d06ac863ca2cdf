package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/router"
)

// A step with approval: true holds the rollout before it however good the
// evidence, across analyses and a restart, until promote moves it on one
// step; promote from the last step promotes.
func TestApprovalHoldsUntilPromote(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Steps = []Step{{Percent: 0, MinDuration: time.Minute}, {Percent: 10, MinDuration: time.Minute, Approval: true}, {Percent: 100, MinDuration: time.Minute}}
	})
	ctx := context.Background()
	if _, err := h.c.Start(ctx, h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "fp"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	h.ev.set(clean(20000))
	for _, at := range []time.Duration{61 * time.Second, 90 * time.Second} {
		d := h.step(t, at)
		if st := h.c.State(); d.Action != ActionAwait || !st.Awaiting || st.Step != 0 || h.r.Snapshot().Share != 0 || !strings.Contains(d.Reason, "step 2 (10%) needs approval") {
			t.Fatalf("at %s: %s %q, awaiting %v, step %d, share %d", at, d.Action, d.Reason, st.Awaiting, st.Step, h.r.Snapshot().Share)
		}
	}
	// A restart keeps the wait.
	h.c = h.newController(t, h.c.Config())
	if err := h.c.Restore(ctx, h.store.LoadRuleset); err != nil {
		t.Fatal(err)
	}
	if !h.c.State().Awaiting {
		t.Fatal("the wait for approval did not survive a restart")
	}
	st, err := h.c.PromoteStep(ctx, "bob", "looks right", at(h.t0.Add(2*time.Minute)))
	if err != nil || st.Step != 1 || st.Awaiting || st.Phase != Progressing || h.r.Snapshot().Share != 1000 ||
		!strings.Contains(st.LastDecision.Reason, "approved by bob to step 2 (10%): looks right") {
		t.Fatalf("approve: %v, step %d awaiting %v share %d: %+v", err, st.Step, st.Awaiting, h.r.Snapshot().Share, st.LastDecision)
	}
	// Promote without an approval pending: one step, then promotion.
	if st, _ = h.c.PromoteStep(ctx, "bob", "skip ahead", at(h.t0.Add(3*time.Minute))); st.Step != 2 || h.r.Snapshot().Share != router.MaxShare || !strings.Contains(st.LastDecision.Reason, "promoted one step by bob") {
		t.Fatalf("promote one step: step %d share %d, %+v", st.Step, h.r.Snapshot().Share, st.LastDecision)
	}
	if st, _ = h.c.PromoteStep(ctx, "bob", "done", at(h.t0.Add(4*time.Minute))); st.Phase != Promoted {
		t.Fatalf("promote from the last step: %s", st.Phase)
	}
	if _, err := h.c.PromoteStep(ctx, "bob", "again", at(h.t0.Add(5*time.Minute))); err == nil {
		t.Error("promote with no rollout was accepted")
	}
	bad := DefaultConfig
	bad.Steps = []Step{{Percent: 0, Approval: true}, {Percent: 100}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "steps[0].approval") {
		t.Errorf("approval on the first step: %v", err)
	}
}
