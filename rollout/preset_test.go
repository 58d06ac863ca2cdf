package rollout

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/router"
)

// A rollout started with a preset walks the preset's steps, not the
// configured ones, and keeps them across a restart and a reload of
// rollout.steps: the crs-upgrade preset holds its shadow step a week
// however good the evidence, then moves to 1%. An unknown preset is a bad
// request that changes nothing.
func TestPresetStepsOutliveRestartAndReload(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	if _, err := h.c.Start(ctx, h.cand, Spec{Actor: "alice", Reason: "CRS upgrade", Preset: "no-such"}, at(h.t0)); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), `no preset "no-such": the presets are crs-upgrade, default`) {
		t.Fatalf("an unknown preset: %v", err)
	}
	if h.c.State().Phase.Active() {
		t.Fatal("an unknown preset started a rollout")
	}
	if _, err := h.c.Start(ctx, h.cand, Spec{Actor: "alice", Reason: "CRS upgrade", Preset: PresetCRSUpgrade}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	if st := h.c.State(); st.Preset != PresetCRSUpgrade || len(st.Steps) != len(CRSUpgradePreset.Steps) || len(h.c.StepsOf(h.c.State())) != 5 {
		t.Fatalf("state %+v", st)
	}
	h.ev.set(clean(50000))
	// The configured steps would have advanced after a minute.
	if d := h.step(t, 2*time.Minute); d.Action != ActionHold || !strings.Contains(d.Reason, "step 1 needs 168h0m0s") {
		t.Fatalf("after 2 minutes: %s (%s)", d.Action, d.Reason)
	}
	// A restart, then a reload that changes rollout.steps and
	// max_duration: refused while the rollout runs, and the rollout goes
	// on with its own steps.
	os.Remove(h.cand.Path)
	h.r = &fakeRouter{snap: &router.Snapshot{Baseline: h.base}}
	h.c = h.newController(t, h.c.Config())
	if err := h.c.Restore(ctx, h.store.LoadRuleset); err != nil {
		t.Fatal(err)
	}
	cfg := h.c.Config()
	cfg.Steps = []Step{{Percent: 100, MinDuration: time.Second, MinRequests: 1}}
	if _, _, err := h.c.Reconfigure(ctx, cfg, "sighup", at(h.t0)); !errors.Is(err, ErrConflict) {
		t.Errorf("reload during the rollout: %v", err)
	}
	h.ev.set(clean(50000))
	if d := h.step(t, 6*24*time.Hour); d.Action != ActionHold {
		t.Fatalf("after 6 days: %s (%s)", d.Action, d.Reason)
	}
	// Past an hour, the configured max_duration: the preset's 14 days
	// hold instead.
	if d := h.step(t, 7*24*time.Hour+time.Minute); d.Action != ActionAdvance || h.r.Snapshot().Share != 100 {
		t.Fatalf("after a week: %s (%s), share %d", d.Action, d.Reason, h.r.Snapshot().Share)
	}
	hist, _ := h.store.History(0)
	if len(hist) == 0 || !strings.Contains(hist[0].Reason, "[preset crs-upgrade: steps shadow 168h0m0s/20000, 1% 24h0m0s/5000") {
		t.Errorf("the start's journal entry: %+v", hist)
	}
}
