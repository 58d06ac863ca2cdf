package rollout

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// Steps changed by SIGHUP: between rollouts they take effect for the next
// one, journalled with what changed; during one they are refused and the
// rollout goes on with the steps it started with (issue 27, item 6).
func TestReconfigureBetweenRollouts(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	small := h.c.Config()
	small.Steps = []Step{{Percent: 0, MinDuration: 30 * time.Minute, MinRequests: 500}, {Percent: 100, MinDuration: 30 * time.Minute, MinRequests: 500}}
	small.Interval = time.Minute // needs a restart: named, not applied

	changed, restart, err := h.c.Reconfigure(ctx, small, "sighup", at(h.t0))
	if err != nil || !slices.Equal(changed, []string{"rollout.steps"}) || !slices.Equal(restart, []string{"rollout.interval"}) {
		t.Fatalf("idle: changed %v, restart %v, %v", changed, restart, err)
	}
	if got := h.c.Config(); len(got.Steps) != 2 || got.Interval == time.Minute {
		t.Errorf("in force: %d steps, interval %s", len(got.Steps), got.Interval)
	}
	hist, _ := h.store.History(0)
	if last := hist[len(hist)-1]; last.Action != ActionConfigure || last.Actor != "sighup" || !strings.Contains(last.Reason, "steps shadow 30m0s/500, 100% 30m0s/500") {
		t.Errorf("journal: %+v", last)
	}
	// The same configuration again changes nothing and journals nothing.
	if changed, _, err := h.c.Reconfigure(ctx, small, "sighup", at(h.t0)); err != nil || changed != nil {
		t.Errorf("again: %v, %v", changed, err)
	}
	if again, _ := h.store.History(0); len(again) != len(hist) {
		t.Errorf("journalled %d entries for no change", len(again)-len(hist))
	}

	// A rollout runs on the two steps; new steps are refused until it ends.
	if _, err := h.c.Start(ctx, h.cand, Spec{Actor: "alice", Reason: "r"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	three := small
	three.Steps = testSteps
	if _, _, err := h.c.Reconfigure(ctx, three, "sighup", at(h.t0)); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "takes effect once it ends") {
		t.Fatalf("during a rollout: %v", err)
	}
	if len(h.c.Config().Steps) != 2 {
		t.Error("the running rollout's steps changed")
	}
	// A bad configuration is refused by key, whatever the phase.
	bad := small
	bad.Steps = []Step{{Percent: 50}}
	if _, _, err := h.c.Reconfigure(ctx, bad, "sighup", at(h.t0)); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "rollout.steps") {
		t.Errorf("bad steps: %v", err)
	}
}
