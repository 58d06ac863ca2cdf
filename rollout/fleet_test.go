package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// follower is a Leadership a test switches.
type follower struct{ leading bool }

func (f *follower) Leading() bool  { return f.leading }
func (f *follower) Leader() string { return "replica-7" }

// refusingStore refuses every decision, as a fleet store does when
// leadership is lost or etcd is down.
type refusingStore struct {
	FileStore
	err error
}

func (s refusingStore) Commit(context.Context, State, Entry) error { return s.err }

func TestNoEvidenceIsNeverAPass(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "a", Reason: "r"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	h.ev.set(clean(20000))
	h.ev.err = errors.New("prometheus: connection refused")
	d := h.step(t, 2*time.Minute) // min_duration and min_requests are met
	if d.Action != "hold" || d.Analysis.Status != Inconclusive {
		t.Fatalf("without evidence: %s (%s), want an inconclusive hold", d.Action, d.Reason)
	}
	if want := "evidence unavailable: prometheus: connection refused [1 of rollout.consecutive_error_limit 5 analyses in a row"; !strings.HasPrefix(d.Reason, want) {
		t.Errorf("reason %q, want it to start %q", d.Reason, want)
	}
	h.ev.err = nil
	if d := h.step(t, 3*time.Minute); d.Action != "advance" {
		t.Fatalf("evidence back: %s (%s), want advance", d.Action, d.Reason)
	}
}

func TestOnlyTheLeaderDecidesAnyReplicaRollsBack(t *testing.T) {
	h := newHarness(t, nil)
	lead := &follower{leading: true}
	h.c.lead = lead
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "a", Reason: "r"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	lead.leading = false
	h.ev.set(clean(20000))
	if d := h.step(t, 2*time.Minute); d.Action != "none" || h.c.State().Step != 0 {
		t.Fatalf("a follower analysed: %s (%s)", d.Action, d.Reason)
	}
	for name, act := range map[string]func() error{
		"pause":   func() error { _, err := h.c.Pause(context.Background(), "a", "r", at(h.t0)); return err },
		"promote": func() error { _, err := h.c.Promote(context.Background(), "a", "r", at(h.t0)); return err },
	} {
		if err := act(); !errors.Is(err, ErrNotLeader) || !errors.Is(err, ErrConflict) {
			t.Errorf("%s on a follower: %v, want ErrNotLeader (a conflict naming the leader)", name, err)
		}
	}
	if st, err := h.c.Rollback(context.Background(), "ops", "now", at(h.t0)); err != nil || st.Phase != RolledBack || h.r.Snapshot().Candidate != nil {
		t.Fatalf("rollback on a follower: %v, %s", err, st.Phase)
	}
}

func TestRefusedDecisionChangesNothing(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "a", Reason: "r"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	before, snap := h.c.State(), h.r.Snapshot()
	h.c.store = refusingStore{FileStore: h.store, err: fmt.Errorf("etcd: %w", ErrNotLeader)}
	h.ev.set(clean(20000))
	if _, err := h.c.Step(t.Context(), h.t0.Add(2*time.Minute)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("advance with the store refusing: %v", err)
	}
	if h.c.State().Step != before.Step || h.r.Snapshot() != snap {
		t.Fatalf("a refused advance took effect: step %d, share %d", h.c.State().Step, h.r.Snapshot().Share)
	}
	// A rollback still takes the candidate off this replica, and says
	// the record failed.
	if _, err := h.c.Rollback(context.Background(), "ops", "now", at(h.t0)); err == nil || h.r.Snapshot().Candidate != nil {
		t.Fatalf("rollback with the store refusing: %v, candidate %v", err, h.r.Snapshot().Candidate)
	}
}

func TestSyncServesAnotherReplicasState(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.store.SaveRuleset(context.Background(), h.cand); err != nil {
		t.Fatal(err)
	}
	loads := 0
	load := func(ctx context.Context, v string) (*ruleset.Ruleset, error) {
		loads++
		return h.store.LoadRuleset(ctx, v)
	}
	st := State{Phase: Progressing, Step: 1, Percent: 10, ShadowSample: 5, Started: h.t0, StepStarted: h.t0,
		Baseline: RulesetRef{Version: h.base.Version}, Candidate: &RulesetRef{Version: h.cand.Version}}
	resets := h.ev.resets
	if err := h.c.Sync(context.Background(), st, load, func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	s := h.r.Snapshot()
	if s.Baseline != h.base || s.Candidate == nil || s.Candidate.Version != h.cand.Version || s.Share != 1000 || s.ShadowSample != 500 || loads != 1 {
		t.Fatalf("served %+v after %d loads", s, loads)
	}
	if h.c.State().Step != 1 || h.ev.resets != resets+1 {
		t.Fatalf("state step %d, evidence resets %d", h.c.State().Step, h.ev.resets-resets)
	}
	// A newer state at the next step reuses the rulesets in service.
	st.Step, st.Percent = 2, 100
	if err := h.c.Sync(context.Background(), st, load, func() bool { return true }); err != nil || loads != 1 || h.r.Snapshot().Share != router.MaxShare {
		t.Fatalf("second sync: %v, %d loads, share %d", err, loads, h.r.Snapshot().Share)
	}
	// An older state than the adopted one is ignored; a rollback drops
	// the candidate.
	if err := h.c.Sync(context.Background(), State{Phase: Idle}, load, func() bool { return false }); err != nil || h.c.State().Step != 2 {
		t.Fatalf("stale state adopted: %v", err)
	}
	st.Phase, st.Percent = RolledBack, 0
	if err := h.c.Sync(context.Background(), st, load, nil); err != nil || h.r.Snapshot().Candidate != nil || h.r.Snapshot().Baseline != h.base {
		t.Fatalf("rolled-back state: %v, still serving %v", err, h.r.Snapshot().Candidate)
	}
}

// unreadableStore cannot be read, as a fleet store whose etcd is down.
type unreadableStore struct{ FileStore }

func (unreadableStore) Load(context.Context) (State, error) {
	return State{}, errors.New("etcd: reading the rollout state: context deadline exceeded")
}

// A replica that restarts mid-rollout must set its evidence window (and
// the rollout's scope) at its first sync, even though the state it syncs
// is the one it loaded; and in a fleet, a store it cannot read at start
// leaves it idle rather than not starting at all.
func TestFleetReplicaRestartingMidRollout(t *testing.T) {
	h := newHarness(t, nil)
	st := State{Phase: Progressing, Step: 1, Percent: 10, Started: h.t0, StepStarted: h.t0,
		Baseline: RulesetRef{Version: h.base.Version}, Candidate: &RulesetRef{Version: h.cand.Version}}
	if err := h.store.SaveRuleset(context.Background(), h.cand); err != nil {
		t.Fatal(err)
	}
	if err := h.store.Save(st); err != nil {
		t.Fatal(err)
	}
	opts := Options{Config: h.c.Config(), Router: h.r, Evidence: h.ev, Store: h.store, Leadership: &follower{},
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), ShadowSample: router.MaxShare}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	resets := h.ev.resets
	if err := c.Sync(context.Background(), st, h.store.LoadRuleset, func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	if h.ev.resets != resets+1 {
		t.Errorf("first sync of the loaded state reset the evidence %d times, want once", h.ev.resets-resets)
	}
	if err := c.Sync(context.Background(), st, h.store.LoadRuleset, func() bool { return true }); err != nil || h.ev.resets != resets+1 {
		t.Errorf("the same state again: %v, %d resets, want no more", err, h.ev.resets-resets)
	}

	opts.Store = unreadableStore{h.store}
	if c, err = New(opts); err != nil {
		t.Fatalf("a fleet replica with its store down did not start: %v", err)
	}
	if c.State().Phase != Idle {
		t.Errorf("started in %s, want idle", c.State().Phase)
	}
	opts.Leadership = nil
	if _, err := New(opts); err == nil {
		t.Error("a single replica started on a state it could not read")
	}
}
