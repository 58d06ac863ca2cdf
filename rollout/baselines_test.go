package rollout

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// variant writes the harness's baseline with a comment, so it compiles to
// another version, and loads it.
func variant(t *testing.T, name string) *ruleset.Ruleset {
	t.Helper()
	src, err := os.ReadFile("../router/testdata/actions.conf")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".conf")
	if err := os.WriteFile(path, append([]byte("# "+name+"\n"), src...), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadRS(t, path)
}

// configured is the harness's configured baseline file, compiled afresh
// as a reload does.
func (h *harness) configured(t *testing.T) Configured {
	return Configured{Baseline: loadRS(t, h.base.Path)}
}

func (h *harness) entries(t *testing.T) []Entry {
	t.Helper()
	hist, err := h.store.History(0)
	if err != nil {
		t.Fatal(err)
	}
	return hist
}

func (h *harness) promote(t *testing.T, cand *ruleset.Ruleset, when time.Time) {
	t.Helper()
	if _, err := h.c.Start(context.Background(), cand, Spec{Actor: "alice", Reason: "ship " + cand.Version}, at(when)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Promote(context.Background(), "alice", "ship", at(when.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
}

// The bug this guards against: SIGHUP after a promotion recompiled the
// configured file and silently put the old baseline back.
func TestReloadKeepsAPromotionWhileTheFileIsUnchanged(t *testing.T) {
	h := newHarness(t, nil)
	if changed, err := h.c.Reload(context.Background(), h.configured(t), "startup", at(h.t0)); err != nil || changed {
		t.Fatalf("first start: changed %v, %v; want the configured baseline adopted, nothing served changing", changed, err)
	}
	if st := h.c.State(); st.Configured != h.base.Version || len(st.Baselines) != 1 {
		t.Fatalf("state after the first start: configured %q, baselines %v", st.Configured, st.Baselines)
	}
	h.promote(t, h.cand, h.t0)
	before := len(h.entries(t))

	changed, err := h.c.Reload(context.Background(), h.configured(t), "sighup", at(h.t0.Add(time.Hour)))
	if err != nil || changed {
		t.Fatalf("reload of the unchanged file: changed %v, %v", changed, err)
	}
	if s := h.r.Snapshot(); s.Baseline.Version != h.cand.Version {
		t.Fatalf("after SIGHUP the baseline is %s, want the promoted %s", s.Baseline.Version, h.cand.Version)
	}
	if n := len(h.entries(t)); n != before {
		t.Errorf("a reload that changed nothing wrote %d journal entries", n-before)
	}

	// The operator edits the configured file: a new baseline, journalled.
	edited := variant(t, "edited")
	changed, err = h.c.Reload(context.Background(), Configured{Baseline: edited}, "sighup", at(h.t0.Add(2*time.Hour)))
	if err != nil || !changed {
		t.Fatalf("reload of a changed file: changed %v, %v", changed, err)
	}
	if s := h.r.Snapshot(); s.Baseline != edited {
		t.Fatalf("after the file changed the baseline is %s, want the file's %s", s.Baseline.Version, edited.Version)
	}
	last := h.entries(t)[len(h.entries(t))-1]
	if last.Action != "reload" || last.Actor != "sighup" || last.Baseline != edited.Version ||
		!strings.Contains(last.Reason, h.cand.Version+" -> "+edited.Version) {
		t.Errorf("journal: %+v, want a sighup reload naming %s -> %s", last, h.cand.Version, edited.Version)
	}
	if st := h.c.State(); st.Baseline.Version != edited.Version || st.Configured != edited.Version {
		t.Errorf("state: baseline %s configured %s", st.Baseline.Version, st.Configured)
	}
}

func TestReloadRefusedWhileARolloutRuns(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "r"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	edited := variant(t, "edited")
	if _, err := h.c.Reload(context.Background(), Configured{Baseline: edited}, "sighup", at(h.t0)); !errors.Is(err, ErrConflict) {
		t.Fatalf("reload during a rollout: %v, want a conflict", err)
	}
	if s := h.r.Snapshot(); s.Baseline != h.base || s.Candidate != h.cand {
		t.Fatal("a refused reload changed what serves")
	}
	if !edited.Closed() {
		t.Error("the refused reload's ruleset was not retired")
	}
}

// A start whose gates ran against one baseline while a reload put
// another in service must not start: the candidate was never checked
// against what it would be compared with. And a reload prepared before a
// start lands after it must be refused. Either way the router and the
// controller agree.
func TestStartAndReloadInterleaved(t *testing.T) {
	h := newHarness(t, nil)
	gatedAgainst := h.r.Snapshot().Baseline.Version
	edited := variant(t, "edited")
	if _, err := h.c.Reload(context.Background(), Configured{Baseline: edited}, "sighup", at(h.t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "r", Baseline: gatedAgainst}, at(h.t0)); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "start again") {
		t.Fatalf("start gated against a replaced baseline: %v", err)
	}
	if st := h.c.State(); st.Phase.Active() || h.r.Snapshot().Candidate != nil {
		t.Fatal("the refused start left a candidate serving or a rollout recorded")
	}

	// The other order: a reload compiled before the start, applied after.
	prepared := Configured{Baseline: variant(t, "prepared")}
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "r", Baseline: edited.Version}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Reload(context.Background(), prepared, "sighup", at(h.t0)); !errors.Is(err, ErrConflict) {
		t.Fatalf("reload after the start: %v, want a conflict", err)
	}
	st, s := h.c.State(), h.r.Snapshot()
	if s.Candidate == nil || st.Candidate == nil || s.Candidate.Version != st.Candidate.Version || s.Baseline.Version != st.Baseline.Version {
		t.Fatalf("router serves %s/%v, controller says %s/%v", s.Baseline.Version, s.Candidate != nil, st.Baseline.Version, st.Candidate)
	}
}

func TestUndo(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.c.Reload(context.Background(), h.configured(t), "startup", at(h.t0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.c.Undo(context.Background(), "", "alice", "nothing before", at(h.t0)); !errors.Is(err, ErrNothingToUndo) {
		t.Fatalf("undo with one baseline kept: %v", err)
	}
	h.promote(t, h.cand, h.t0)

	// rollback after a promotion says what to use instead.
	if _, err := h.c.Rollback(context.Background(), "alice", "FP is back", at(h.t0.Add(time.Hour))); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "undo") {
		t.Fatalf("rollback after promotion: %v, want a conflict naming undo", err)
	}
	if _, _, err := h.c.Undo(context.Background(), "", "alice", "", at(h.t0)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("undo without a reason: %v", err)
	}

	st, unchanged, err := h.c.Undo(context.Background(), "", "alice", "FP is back (TICKET-9)", at(h.t0.Add(time.Hour)))
	if err != nil || unchanged != "" {
		t.Fatal(err, unchanged)
	}
	if s := h.r.Snapshot(); s.Baseline.Version != h.base.Version || s.Candidate != nil {
		t.Fatalf("after undo the router serves %s, want %s", s.Baseline.Version, h.base.Version)
	}
	if st.Baseline.Version != h.base.Version || st.Phase != Idle || st.LastDecision.Action != "undo" {
		t.Fatalf("state after undo: %+v", st)
	}
	last := h.entries(t)[len(h.entries(t))-1]
	if last.Action != "undo" || last.Actor != "alice" || !strings.Contains(last.Reason, "TICKET-9") ||
		!strings.Contains(last.Reason, h.cand.Version+" -> "+h.base.Version) || last.EffectLatency <= 0 {
		t.Errorf("journal: %+v", last)
	}
	// Asked again (a double click), the undo is in force already: it
	// succeeds, says so, and neither records nor serves anything.
	entries := len(h.entries(t))
	st, unchanged, err = h.c.Undo(context.Background(), "", "bob", "FP is back", at(h.t0.Add(time.Hour+time.Second)))
	if err != nil || !strings.Contains(unchanged, "baseline "+h.base.Version+" serves again since 2026-11-21T13:00:00Z, put back by an undo") ||
		st.Baseline.Version != h.base.Version || h.r.Snapshot().Baseline.Version != h.base.Version || len(h.entries(t)) != entries {
		t.Fatalf("undo again: %v, %q; serving %s, %d entries (want %d)", err, unchanged, h.r.Snapshot().Baseline.Version, len(h.entries(t)), entries)
	}

	// A restart with the configured file unchanged keeps the undo; so
	// does a SIGHUP.
	h.r = &fakeRouter{snap: &router.Snapshot{Baseline: loadRS(t, h.base.Path)}}
	h.c = h.newController(t, h.c.Config())
	if _, err := h.c.Reload(context.Background(), h.configured(t), "startup", at(h.t0.Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if s := h.r.Snapshot(); s.Baseline.Version != h.base.Version {
		t.Fatalf("after a restart the baseline is %s, want the undone-to %s", s.Baseline.Version, h.base.Version)
	}

	// Undo to a version named by a prefix: back to the promoted one.
	if _, _, err := h.c.Undo(context.Background(), h.cand.Version[:8], "bob", "it was fine", at(h.t0.Add(3*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if s := h.r.Snapshot(); s.Baseline.Version != h.cand.Version {
		t.Fatalf("undo --to %s: serving %s", h.cand.Version[:8], s.Baseline.Version)
	}
	if _, _, err := h.c.Undo(context.Background(), "ffffffffff", "bob", "?", at(h.t0)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("undo to a version never kept: %v", err)
	}
	if _, unchanged, err := h.c.Undo(context.Background(), h.cand.Version, "bob", "?", at(h.t0)); err != nil || unchanged != "baseline "+h.cand.Version+" serves already" {
		t.Errorf("undo to the version in service: %v, %q; want a success that changes nothing", err, unchanged)
	}
	// The pure transition says the same for a fleet's store to act on.
	if _, _, err := Undone(h.c.State(), h.cand.Version, Decision{}); !errors.Is(err, ErrAlreadyUndone) {
		t.Errorf("Undone to the version in service: %v", err)
	}
	// Refused while a rollout runs.
	if _, err := h.c.Start(context.Background(), variant(t, "next"), Spec{Actor: "alice", Reason: "r"}, at(h.t0.Add(4*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.c.Undo(context.Background(), "", "bob", "during", at(h.t0.Add(4*time.Hour))); !errors.Is(err, ErrConflict) {
		t.Errorf("undo during a rollout: %v", err)
	}
	// Rollback stays idempotent: twice is success both times.
	for range 2 {
		if _, err := h.c.Rollback(context.Background(), "bob", "pager", at(h.t0.Add(5*time.Hour))); err != nil {
			t.Fatalf("rollback: %v", err)
		}
	}
}

// Every baseline that served is kept for undo, up to keep_baselines; the
// bundles of the others, and of candidates before the last, are removed.
func TestBaselinesKeptAndPruned(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.KeepBaselines = 2 })
	if _, err := h.c.Reload(context.Background(), h.configured(t), "startup", at(h.t0)); err != nil {
		t.Fatal(err)
	}
	var versions []string
	for i, name := range []string{"one", "two", "three"} {
		rs := variant(t, name)
		versions = append(versions, rs.Version)
		h.promote(t, rs, h.t0.Add(time.Duration(i)*time.Hour))
	}
	st := h.c.State()
	if len(st.Baselines) != 2 || st.Baselines[0].Version != versions[1] || st.Baselines[1].Version != versions[2] {
		t.Fatalf("baselines kept: %+v, want the last two promoted", st.Baselines)
	}
	entries, err := os.ReadDir(filepath.Join(h.store.Dir, "rulesets"))
	if err != nil {
		t.Fatal(err)
	}
	var bundles []string
	for _, e := range entries {
		bundles = append(bundles, e.Name())
	}
	if len(bundles) != 2 || !strings.Contains(strings.Join(bundles, " "), versions[1]) || !strings.Contains(strings.Join(bundles, " "), versions[2]) {
		t.Errorf("bundles on disk: %v, want only %v", bundles, versions[1:])
	}
}

// At start-up the router already holds the configured rulesets the
// controller is handed: they must keep serving, not be retired as unused.
func TestReloadAtStartUpKeepsTheRulesetsInService(t *testing.T) {
	h := newHarness(t, nil)
	cand := variant(t, "static")
	h.r.snap = &router.Snapshot{Baseline: h.base, Candidate: cand, Share: 1000, ShadowSample: router.MaxShare}
	if _, err := h.c.Reload(context.Background(), Configured{Baseline: h.base, Candidate: cand, Share: 1000, ShadowSample: router.MaxShare}, "startup", at(h.t0)); err != nil {
		t.Fatal(err)
	}
	s := h.r.Snapshot()
	if s.Baseline != h.base || s.Candidate != cand || h.base.Closed() || cand.Closed() {
		t.Fatalf("after start-up: baseline closed %v, candidate closed %v", h.base.Closed(), cand.Closed())
	}
	// The same file again, freshly compiled: the instance in service stays.
	again := loadRS(t, h.base.Path)
	if changed, err := h.c.Reload(context.Background(), Configured{Baseline: again, Candidate: cand, Share: 1000, ShadowSample: router.MaxShare}, "sighup", at(h.t0)); err != nil || changed {
		t.Fatalf("reload of the same files: %v, changed %v", err, changed)
	}
	if !again.Closed() || h.base.Closed() || h.r.Snapshot().Baseline != h.base {
		t.Error("the second compile should be retired and the one in service kept")
	}
	// The configured candidate's share changes: journalled.
	if changed, err := h.c.Reload(context.Background(), Configured{Baseline: loadRS(t, h.base.Path), Candidate: cand, Share: 2500, ShadowSample: router.MaxShare}, "sighup", at(h.t0)); err != nil || !changed {
		t.Fatalf("share change: %v, changed %v", err, changed)
	}
	if last := h.entries(t)[len(h.entries(t))-1]; last.Action != "reload" || !strings.Contains(last.Reason, "at 10% -> ") || !strings.Contains(last.Reason, "at 25%") {
		t.Errorf("journal: %+v", last)
	}
}

// The fault this guards against: rolling back a candidate the
// configuration names was neither journalled nor durable; SIGHUP or a
// restart put it back at its share.
func TestRollbackOfAConfiguredCandidateStays(t *testing.T) {
	h := newHarness(t, nil)
	static := variant(t, "static")
	conf := func(cand *ruleset.Ruleset) Configured {
		return Configured{Baseline: loadRS(t, h.base.Path), Candidate: cand, Share: 5000, ShadowSample: router.MaxShare}
	}
	if _, err := h.c.Reload(context.Background(), conf(static), "startup", at(h.t0)); err != nil {
		t.Fatal(err)
	}
	if h.r.Snapshot().Candidate == nil {
		t.Fatal("the configured candidate does not serve")
	}
	st, err := h.c.Rollback(context.Background(), "bob", "pager", at(h.t0.Add(time.Minute)))
	if err != nil || h.r.Snapshot().Candidate != nil || st.Withdrawn != static.Version {
		t.Fatalf("rollback: %v, candidate served %v, withdrawn %q", err, h.r.Snapshot().Candidate != nil, st.Withdrawn)
	}
	if last := h.entries(t)[len(h.entries(t))-1]; last.Action != "rollback" || last.Candidate != static.Version {
		t.Errorf("journal: %+v", last)
	}
	// SIGHUP with the same file, then a restart: still withdrawn.
	if _, err := h.c.Reload(context.Background(), conf(loadRS(t, static.Path)), "sighup", at(h.t0.Add(2*time.Minute))); err != nil || h.r.Snapshot().Candidate != nil {
		t.Fatalf("after SIGHUP the rolled-back candidate serves again (%v)", err)
	}
	h.r = &fakeRouter{snap: &router.Snapshot{Baseline: loadRS(t, h.base.Path)}}
	h.c = h.newController(t, h.c.Config())
	if _, err := h.c.Reload(context.Background(), conf(loadRS(t, static.Path)), "startup", at(h.t0.Add(3*time.Minute))); err != nil || h.r.Snapshot().Candidate != nil {
		t.Fatalf("after a restart the rolled-back candidate serves again (%v)", err)
	}
	// A changed candidate file is a new candidate: it serves.
	changed := variant(t, "static-fixed")
	if _, err := h.c.Reload(context.Background(), conf(changed), "sighup", at(h.t0.Add(4*time.Minute))); err != nil || h.r.Snapshot().Candidate == nil || h.c.State().Withdrawn != "" {
		t.Fatalf("a changed candidate file: %v, served %v", err, h.r.Snapshot().Candidate != nil)
	}
}

// A rollback is one decision however the candidate came to serve: taking
// out a configured candidate is counted and logged as taking out a
// rollout's. The fault this guards against: the configured candidate's
// rollback wrote its own record, and no metric or log line said it
// happened.
func TestRollbackIsCountedAndLoggedWhateverPutTheCandidateIn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(*testing.T, *harness)
	}{
		{"a rollout's candidate", func(t *testing.T, h *harness) {
			if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "r"}, at(h.t0)); err != nil {
				t.Fatal(err)
			}
		}},
		{"a configured candidate", func(t *testing.T, h *harness) {
			conf := Configured{Baseline: loadRS(t, h.base.Path), Candidate: variant(t, "static"), Share: 5000, ShadowSample: router.MaxShare}
			if _, err := h.c.Reload(context.Background(), conf, "startup", at(h.t0)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			tc.serve(t, h)
			m := NewMetrics(prometheus.NewRegistry())
			var log bytes.Buffer
			h.c.reporter, h.c.log = m, slog.New(slog.NewTextHandler(&log, nil))
			if _, err := h.c.Rollback(context.Background(), "bob", "pager", at(h.t0.Add(time.Minute))); err != nil || h.r.Snapshot().Candidate != nil {
				t.Fatalf("rollback: %v, candidate served %v", err, h.r.Snapshot().Candidate != nil)
			}
			if n := testutil.ToFloat64(m.decisions.WithLabelValues(string(ActionRollback))); n != 1 {
				t.Errorf("wafcanary_rollout_decisions_total{decision=rollback} %v, want 1", n)
			}
			if n := testutil.ToFloat64(m.state.WithLabelValues(string(h.c.State().Phase))); n != 1 {
				t.Errorf("wafcanary_rollout_state{state=%s} %v, want 1", h.c.State().Phase, n)
			}
			if !strings.Contains(log.String(), `msg="rollout rollback" actor=bob`) {
				t.Errorf("no log line of the rollback:\n%s", log.String())
			}
		})
	}
}
