package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// fakeRouter holds a snapshot like the real router, without serving.
type fakeRouter struct {
	mu   sync.Mutex
	snap *router.Snapshot
}

func (f *fakeRouter) Snapshot() *router.Snapshot { f.mu.Lock(); defer f.mu.Unlock(); return f.snap }
func (f *fakeRouter) Swap(s *router.Snapshot) error {
	if err := s.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	f.snap = s
	f.mu.Unlock()
	return nil
}

// fakeEvidence returns whatever the test set; hook runs inside Snapshot,
// i.e. in the middle of an analysis.
type fakeEvidence struct {
	mu      sync.Mutex
	ev      evidence.Evidence
	resets  int
	windows evidence.Windows
	hook    func()
	err     error
}

func (f *fakeEvidence) Evidence(context.Context) (evidence.Evidence, error) {
	if f.hook != nil {
		f.hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ev, f.err
}
func (f *fakeEvidence) Reset(w evidence.Windows) {
	f.mu.Lock()
	f.resets++
	f.windows = w
	f.ev = evidence.Evidence{}
	f.mu.Unlock()
}
func (f *fakeEvidence) set(e evidence.Evidence) {
	f.mu.Lock()
	f.ev = e
	f.mu.Unlock()
}

func loadRS(t *testing.T, path string) *ruleset.Ruleset {
	t.Helper()
	rs, err := ruleset.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var testSteps = []Step{
	{Percent: 0, MinDuration: time.Minute, MinRequests: 100},
	{Percent: 10, MinDuration: time.Minute, MinRequests: 100},
	{Percent: 100, MinDuration: time.Minute, MinRequests: 100},
}

type harness struct {
	c     *Controller
	r     *fakeRouter
	ev    *fakeEvidence
	store FileStore
	base  *ruleset.Ruleset
	cand  *ruleset.Ruleset
	t0    time.Time
}

func newHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	// The candidate is loaded from a copy, so tests can delete the original.
	src, _ := os.ReadFile("../router/testdata/actions-candidate.conf")
	candPath := filepath.Join(dir, "cand", "candidate.conf")
	os.MkdirAll(filepath.Dir(candPath), 0o755)
	os.WriteFile(candPath, src, 0o644)
	h := &harness{r: &fakeRouter{}, ev: &fakeEvidence{}, store: FileStore{Dir: filepath.Join(dir, "state")},
		base: loadRS(t, "../router/testdata/actions.conf"), cand: loadRS(t, candPath), t0: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	h.r.snap = &router.Snapshot{Baseline: h.base}
	cfg := DefaultConfig
	cfg.Steps = testSteps
	cfg.MaxDuration = time.Hour
	if edit != nil {
		edit(&cfg)
	}
	h.c = h.newController(t, cfg)
	return h
}

func (h *harness) newController(t *testing.T, cfg Config) *Controller {
	c, err := New(Options{Config: cfg, Router: h.r, Evidence: h.ev, Store: h.store, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), ShadowSample: router.MaxShare, Clock: at(h.t0)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *harness) step(t *testing.T, at time.Duration) Decision {
	t.Helper()
	d, err := h.c.Step(context.Background(), h.t0.Add(at))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// clean is evidence that passes every check at any share.
func clean(pairs int64) evidence.Evidence {
	return evidence.Evidence{Pairs: pairs, ShadowedByCandidate: pairs}
}

func TestRolloutToPromotion(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "fix FP on tickets"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	if s := h.r.Snapshot(); s.Candidate != h.cand || s.Share != 0 || s.ShadowSample != router.MaxShare {
		t.Fatalf("start: share %d shadow %d", s.Share, s.ShadowSample)
	}
	// One line per interval, as the controller would see it.
	steps := []struct {
		at       time.Duration
		evidence evidence.Evidence
		action   Action
		phase    Phase
		share    router.Share
	}{
		{15 * time.Second, evidence.Evidence{}, "hold", Shadow, 0},     // no traffic never advances
		{30 * time.Second, clean(20000), "hold", Shadow, 0},            // passes, but min_duration not met
		{61 * time.Second, clean(20000), "advance", Progressing, 1000}, // 10%
		{90 * time.Second, clean(20000), "hold", Progressing, 1000},    // new step: its own minimum
		{125 * time.Second, clean(50), "hold", Progressing, 1000},      // too few requests
		{130 * time.Second, clean(20000), "advance", Progressing, router.MaxShare},
		{200 * time.Second, clean(20000), "promote", Promoted, 0},
	}
	for i, s := range steps {
		h.ev.set(s.evidence)
		d := h.step(t, s.at)
		st := h.c.State()
		share := h.r.Snapshot().Share
		if d.Action != s.action || st.Phase != s.phase || share != s.share {
			t.Fatalf("line %d at %s: %s -> %s share %d, want %s -> %s share %d (%s)", i, s.at, d.Action, st.Phase, share, s.action, s.phase, s.share, d.Reason)
		}
		// Shadow pairs count from the rollout's start, split arms from
		// the step's.
		if w := h.ev.windows; st.Phase.Active() && (!w.Rollout.Equal(h.t0) || !w.Step.Equal(st.StepStarted)) {
			t.Fatalf("line %d: evidence windows from %s and %s, want the rollout's start %s and the step's %s", i, w.Rollout, w.Step, h.t0, st.StepStarted)
		}
	}
	if s := h.r.Snapshot(); s.Baseline != h.cand || s.Candidate != nil {
		t.Fatal("promotion did not make the candidate the baseline")
	}
	if st := h.c.State(); st.Baseline.Version != h.cand.Version || st.LastDecision.Action != "promote" {
		t.Errorf("state after promotion: %+v", st)
	}
	hist, _ := h.store.History(0)
	if len(hist) != 1+len(steps) || hist[0].Action != "start" || hist[0].Actor != "alice" || hist[len(hist)-1].Action != "promote" {
		t.Errorf("journal has %d entries: first %+v", len(hist), hist[0])
	}
	if hist[len(hist)-1].Analysis == nil || hist[len(hist)-1].Candidate == "" && hist[len(hist)-1].Baseline != h.cand.Version {
		t.Error("promotion journalled without its evidence and versions")
	}
}

func TestRegressionRollsBackNamingTheRule(t *testing.T) {
	h := newHarness(t, nil)
	h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "raise PL"}, at(h.t0))
	h.ev.set(evidence.Evidence{Pairs: 3000, NewBlocks: evidence.Disagreements{OutOfScope: 40, Rules: map[int]int64{942520: 40}}})
	d := h.step(t, 15*time.Second)
	if d.Action != "rollback" || !strings.Contains(d.Reason, "942520") || h.c.State().Phase != RolledBack {
		t.Fatalf("%s (%s) -> %s", d.Action, d.Reason, h.c.State().Phase)
	}
	if h.r.Snapshot().Candidate != nil {
		t.Error("candidate still in service after rollback")
	}
}

func TestManualRollbackFromAnyActiveStateIsImmediateAndIdempotent(t *testing.T) {
	for _, setup := range []string{"shadow", "progressing", "paused", "idle", "promoted"} {
		t.Run(setup, func(t *testing.T) {
			h := newHarness(t, nil)
			if setup != "idle" {
				h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "test"}, at(h.t0))
			}
			switch setup {
			case "progressing":
				h.ev.set(clean(20000))
				h.step(t, 2*time.Minute)
			case "paused":
				h.c.Pause(context.Background(), "bob", "looking", at(h.t0))
			case "promoted":
				h.c.Promote(context.Background(), "bob", "ship it", at(h.t0))
			}
			wasActive := h.c.State().Phase.Active()
			for i := range 2 {
				st, err := h.c.Rollback(context.Background(), "carol", "pager", at(h.t0.Add(time.Hour)))
				// Why: with no rollout and no candidate a rollback changes
				// nothing, and saying "rolled back" would be a lie; the
				// error names undo, the way back from a promotion.
				if !wasActive {
					if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "wafcanary undo") {
						t.Fatalf("rollback %d in state %s: %v, want a conflict naming undo", i, st.Phase, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("rollback %d: %v", i, err)
				}
				if h.r.Snapshot().Candidate != nil {
					t.Fatalf("rollback %d: candidate still routed", i)
				}
				if wasActive && st.Phase != RolledBack {
					t.Fatalf("rollback %d: state %s", i, st.Phase)
				}
			}
			hist, _ := h.store.History(0)
			rollbacks := 0
			for _, e := range hist {
				if e.Action == "rollback" {
					rollbacks++
					if e.Actor != "carol" || e.Reason != "pager" || e.EffectLatency <= 0 {
						t.Errorf("rollback entry %+v", e)
					}
				}
			}
			if want := map[bool]int{true: 1, false: 0}[wasActive]; rollbacks != want {
				t.Errorf("%d rollback entries, want %d (the second call changes nothing)", rollbacks, want)
			}
		})
	}
}

func TestRollbackDuringAnalysisWins(t *testing.T) {
	h := newHarness(t, nil)
	h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "test"}, at(h.t0))
	h.ev.set(clean(20000))
	// The operator rolls back while the controller is mid-analysis of an
	// evidence window that would advance the rollout.
	h.ev.hook = func() {
		h.ev.hook = nil
		if _, err := h.c.Rollback(context.Background(), "carol", "now", at(h.t0)); err != nil {
			t.Error(err)
		}
	}
	d := h.step(t, 2*time.Minute)
	if d.Action == "advance" || h.r.Snapshot().Candidate != nil || h.c.State().Phase != RolledBack {
		t.Fatalf("analysis overrode a rollback: %s, phase %s", d.Action, h.c.State().Phase)
	}
}

func TestLowTrafficDecidesNothingBeforeMaxDuration(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxDuration = 6 * time.Hour; c.Interval = time.Minute })
	h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "test"}, at(h.t0))
	// One request a minute, and one of them a new block.
	for m := 1; m < 6*60; m++ {
		e := evidence.Evidence{Pairs: int64(m), ShadowedByCandidate: int64(m)}
		if m >= 30 {
			e.NewBlocks = evidence.Disagreements{OutOfScope: 1, Rules: map[int]int64{942520: 1}}
		}
		h.ev.set(e)
		if d := h.step(t, time.Duration(m)*time.Minute); d.Action != "hold" {
			t.Fatalf("minute %d: %s (%s)", m, d.Action, d.Reason)
		}
	}
	d := h.step(t, 6*time.Hour)
	if d.Action != "rollback" || !strings.HasPrefix(d.Reason, "inconclusive") {
		t.Fatalf("at max_duration: %s (%s)", d.Action, d.Reason)
	}
}

func TestRestartResumesFromStore(t *testing.T) {
	h := newHarness(t, nil)
	h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{Paths: []string{"/support/"}}, Actor: "alice", Reason: "test"}, at(h.t0))
	h.ev.set(clean(20000))
	h.step(t, 2*time.Minute) // now at 10%
	// The original candidate file vanishes; a new process starts with
	// only the baseline in service, as serve would.
	os.Remove(h.cand.Path)
	h.r = &fakeRouter{snap: &router.Snapshot{Baseline: h.base}}
	c2 := h.newController(t, h.c.Config())
	if err := c2.Restore(context.Background(), h.store.LoadRuleset); err != nil {
		t.Fatal(err)
	}
	st := c2.State()
	s := h.r.Snapshot()
	if st.Phase != Progressing || st.Step != 1 || s.Candidate == nil || s.Candidate.Version != h.cand.Version || s.Share != 1000 {
		t.Fatalf("after restart: phase %s step %d share %d candidate %v", st.Phase, st.Step, s.Share, s.Candidate != nil)
	}
	if len(st.Scope.Paths) != 1 {
		t.Error("scope lost across restart")
	}
	hist, _ := h.store.History(0)
	if len(hist) != 2 {
		t.Errorf("journal has %d entries after restart, want 2", len(hist))
	}
}

func TestStartConflictsAndBadRequests(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: ""}, at(h.t0)); err == nil {
		t.Error("started without a reason")
	}
	if _, err := h.c.Start(context.Background(), h.base, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "same"}, at(h.t0)); err == nil {
		t.Error("started the baseline as its own candidate")
	}
	// Why: an empty scope path put every disagreement in scope.
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{Paths: []string{""}}, Actor: "alice", Reason: "r"}, at(h.t0)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("start with an empty scope path: %v", err)
	}
	h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "first"}, at(h.t0))
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "bob", Reason: "second"}, at(h.t0)); err == nil {
		t.Error("two rollouts at once")
	}
	if _, err := h.c.Resume(context.Background(), "bob", "", at(h.t0)); err == nil {
		t.Error("resumed a rollout that was not paused")
	}
}

func TestRestartAfterPromotionServesThePromotedVersion(t *testing.T) {
	h := newHarness(t, nil)
	h.c.Start(context.Background(), h.cand, Spec{Scope: evidence.Scope{}, Actor: "alice", Reason: "test"}, at(h.t0))
	if _, err := h.c.Promote(context.Background(), "alice", "ship", at(h.t0)); err != nil {
		t.Fatal(err)
	}
	// The original file is gone and the new process starts from the old
	// configured baseline, as serve would.
	os.Remove(h.cand.Path)
	h.r = &fakeRouter{snap: &router.Snapshot{Baseline: h.base}}
	c2 := h.newController(t, h.c.Config())
	if err := c2.Restore(context.Background(), h.store.LoadRuleset); err != nil {
		t.Fatal(err)
	}
	if s := h.r.Snapshot(); s.Baseline.Version != h.cand.Version || s.Candidate != nil {
		t.Fatalf("after restart the baseline is %s, want the promoted %s", s.Baseline.Version, h.cand.Version)
	}
}

func TestFailedProbeRollsBackAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	calls := 0
	h.c.probe = func(_ context.Context, st State, base, cand *ruleset.Ruleset) (string, error) {
		calls++
		if st.Cases != "cases.yaml" || base != h.base || cand != h.cand {
			t.Errorf("probe got cases %q and the wrong rulesets", st.Cases)
		}
		if calls == 1 {
			return "", nil
		}
		return `live probe: must_block case "sqli" is let through by the candidate`, nil
	}
	h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "test", Cases: "cases.yaml"}, at(h.t0))
	h.ev.set(clean(20000))
	if d := h.step(t, 10*time.Second); d.Action != "hold" {
		t.Fatalf("first look: %s", d.Action)
	}
	// Clean evidence does not save a candidate that fails a probe.
	d := h.step(t, 20*time.Second)
	if d.Action != "rollback" || !strings.Contains(d.Reason, `"sqli"`) || h.r.Snapshot().Candidate != nil {
		t.Fatalf("%s: %s", d.Action, d.Reason)
	}
}

// The crash loop this guards against: rollout.steps shortened while a
// rollout was at a later step panicked one interval after every start.
func TestStateBeyondTheConfiguredStepsIsPausedNotAPanic(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "r"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{2 * time.Minute, 4 * time.Minute} {
		h.ev.set(clean(20000))
		if d := h.step(t, at); d.Action != "advance" {
			t.Fatalf("at %s: %s (%s)", at, d.Action, d.Reason)
		}
	}
	// Now at the 100% step, index 2 of 3.
	cfg := h.c.Config()
	cfg.Steps = []Step{{Percent: 0, MinDuration: time.Minute, MinRequests: 100}, {Percent: 100, MinDuration: time.Minute, MinRequests: 100}}
	// Like a restart with the shorter steps.
	c2 := h.newController(t, cfg)
	st := c2.State()
	if st.Phase != Paused || st.Step != 1 || st.Percent != 100 || st.LastDecision.Actor != "startup" || !strings.Contains(st.LastDecision.Reason, "rollout.steps has 2 steps") {
		t.Fatalf("after restart with fewer steps: %s step %d at %g%%: %+v", st.Phase, st.Step, st.Percent, st.LastDecision)
	}
	h.ev.set(clean(20000))
	if d, err := c2.Step(context.Background(), h.t0.Add(10*time.Minute)); err != nil || d.Action != "hold" || !strings.HasPrefix(d.Reason, "paused") {
		t.Fatalf("analysis after: %s (%s) %v, want a paused hold", d.Action, d.Reason, err)
	}
	if _, err := c2.Resume(context.Background(), "alice", "go on", at(h.t0.Add(11*time.Minute))); err != nil {
		t.Fatal(err)
	}
	h.ev.set(clean(20000))
	if d, err := c2.Step(context.Background(), h.t0.Add(13*time.Minute)); err != nil || d.Action != "promote" {
		t.Fatalf("after resume: %s (%s) %v, want promotion from the last step", d.Action, d.Reason, err)
	}
}

func TestCorruptStateRefusedByName(t *testing.T) {
	for _, tt := range []struct{ json, want string }{
		{`{"state":"progressing","step":1,"candidate_percent":50,"baseline":{"version":"b"}}`, "without a candidate"},
		{`{"state":"exploded"}`, `unknown state "exploded"`},
		{`{"state":"progressing","step":-1,"candidate_percent":50,"baseline":{"version":"b"},"candidate":{"version":"c"}}`, "step: must not be negative"},
		{`{"state":"progressing","step":1,"candidate_percent":150,"baseline":{"version":"b"},"candidate":{"version":"c"}}`, "candidate_percent: must be between 0 and 100, got 150"},
	} {
		h := newHarness(t, nil)
		os.MkdirAll(h.store.Dir, 0o700)
		os.WriteFile(filepath.Join(h.store.Dir, "rollout.json"), []byte(tt.json), 0o600)
		_, err := New(Options{Config: h.c.Config(), Router: h.r, Evidence: h.ev, Store: h.store, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %q", tt.json, err, tt.want)
		}
	}
}

// failingStore refuses to record while full is set, as a file store on a
// full disk does.
type failingStore struct {
	FileStore
	full *atomic.Bool
}

func (s failingStore) Commit(ctx context.Context, st State, e Entry) error {
	if s.full.Load() {
		return errors.New("write rollout.json: no space left on device")
	}
	return s.FileStore.Commit(ctx, st, e)
}

// The fault this guards against: a rollback the store could not record
// left the candidate off the router while the controller stayed
// "progressing", and the next analysis advanced it back in.
func TestRollbackThatCannotBeRecordedStillWins(t *testing.T) {
	h := newHarness(t, nil)
	full := &atomic.Bool{}
	h.c.store = failingStore{FileStore: h.store, full: full}
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "r"}, at(h.t0)); err != nil {
		t.Fatal(err)
	}
	h.ev.set(clean(20000))
	h.step(t, 2*time.Minute) // 10%
	full.Store(true)
	st, err := h.c.Rollback(context.Background(), "bob", "pager", at(h.t0.Add(3*time.Minute)))
	if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "in force") {
		t.Fatalf("rollback on a full disk: %v, want an error saying it is in force but not recorded", err)
	}
	if st.Phase != RolledBack || h.c.State().Phase != RolledBack || h.r.Snapshot().Candidate != nil {
		t.Fatalf("after the unrecorded rollback: state %s, candidate served %v", h.c.State().Phase, h.r.Snapshot().Candidate != nil)
	}
	if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "again"}, at(h.t0.Add(4*time.Minute))); !errors.Is(err, ErrConflict) {
		t.Errorf("start while a rollback is unrecorded: %v", err)
	}
	h.ev.set(clean(20000))
	if d := h.step(t, 5*time.Minute); d.Action != "none" || h.r.Snapshot().Candidate != nil {
		t.Fatalf("analysis with the disk still full: %s (%s), candidate served %v", d.Action, d.Reason, h.r.Snapshot().Candidate != nil)
	}
	// Space comes back: the next analysis records the rollback, once.
	full.Store(false)
	h.step(t, 6*time.Minute)
	h.step(t, 7*time.Minute)
	saved, _ := h.store.Load(context.Background())
	if saved.Phase != RolledBack || saved.LastDecision.Actor != "bob" {
		t.Fatalf("on disk after space returned: %s by %v", saved.Phase, saved.LastDecision)
	}
	rollbacks := 0
	for _, e := range h.entries(t) {
		if e.Action == "rollback" {
			rollbacks++
		}
	}
	if rollbacks != 1 {
		t.Errorf("%d rollback entries, want 1", rollbacks)
	}
}

// The fault this guards against: a torn last journal line (a crash mid-
// append) swallowed the next entry, appended onto the fragment.
func TestJournalAfterATornLine(t *testing.T) {
	s := FileStore{Dir: t.TempDir()}
	if err := s.Append(context.Background(), Entry{Action: "start", Reason: "first"}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(s.Dir, "journal.jsonl"), os.O_APPEND|os.O_WRONLY, 0o600)
	f.WriteString(`{"time":"2026-12-01T00:00:00Z","actor":"controller","action":"adv`)
	f.Close()
	if err := s.Append(context.Background(), Entry{Action: "rollback", Reason: "after the crash"}); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(0)
	if err != nil || len(h) != 2 || h[0].Reason != "first" || h[1].Reason != "after the crash" {
		t.Fatalf("history after a torn line: %+v, %v; want both whole entries", h, err)
	}
}

// The fault this guards against: one journal line over 16 MiB made
// history fail (500 from the API), hiding every entry.
func TestJournalLineTooLongToRead(t *testing.T) {
	s := FileStore{Dir: t.TempDir()}
	s.Append(context.Background(), Entry{Action: "start", Reason: "first"})
	f, _ := os.OpenFile(filepath.Join(s.Dir, "journal.jsonl"), os.O_APPEND|os.O_WRONLY, 0o600)
	f.WriteString(`{"action":"pause","reason":"` + strings.Repeat("x", 17<<20) + "\"}\n")
	f.Close()
	s.Append(context.Background(), Entry{Action: "rollback", Reason: "after"})
	first, _ := MarshalEntry(Entry{Action: "start", Reason: "first"})
	where := fmt.Sprintf("journal line at byte %d: 17825823 bytes, over the 16 MiB", len(first)+1)
	h, err := s.History(0)
	if err != nil || len(h) != 3 || h[0].Reason != "first" || h[2].Reason != "after" ||
		h[1].Action != ActionUnreadable || !strings.Contains(h[1].Reason, where) {
		t.Fatalf("history: %d entries, %v; middle %q", len(h), err, h[1].Reason)
	}
	// Read from the end, the same entries.
	if tail, err := s.History(2); err != nil || len(tail) != 2 || tail[0] != h[1] || tail[1].Reason != "after" {
		t.Fatalf("history's tail: %+v, %v", tail, err)
	}
	// Lines just under the reader's buffer and just over it read whole.
	var b strings.Builder
	for _, n := range []int{64<<10 - 40, 64 << 10, 200 << 10} {
		e, _ := json.Marshal(Entry{Action: "pause", Reason: strings.Repeat("y", n)})
		b.Write(append(e, '\n'))
	}
	got, err := readJournal(strings.NewReader(b.String()), 1<<20)
	if err != nil || len(got) != 3 || len(got[2].Reason) != 200<<10 {
		t.Fatalf("long lines: %d entries, %v", len(got), err)
	}
}

// An entry is never refused for its size: a long reason is cut, then a
// huge analysis is left out, and what remains fits etcd's request limit.
func TestMarshalEntryBounds(t *testing.T) {
	b, err := MarshalEntry(Entry{Action: "gates_override", Reason: strings.Repeat("é", MaxReasonBytes)})
	var e Entry
	if err != nil || json.Unmarshal(b, &e) != nil || !strings.HasSuffix(e.Reason, " bytes cut)") || len(e.Reason) > MaxReasonBytes+40 {
		t.Fatalf("%d bytes, %v, reason ends %q", len(b), err, e.Reason[len(e.Reason)-30:])
	}
	a := &Analysis{Status: Fail}
	for range 20000 {
		a.Outcomes = append(a.Outcomes, Outcome{Check: "new_block_rate", Reason: strings.Repeat("r", 40)})
	}
	b, err = MarshalEntry(Entry{Action: "rollback", Reason: "failed", Analysis: a})
	if err != nil || len(b) > MaxEntryBytes || json.Unmarshal(b, &e) != nil || e.Analysis != nil || !strings.Contains(e.Reason, "not journalled") {
		t.Fatalf("%d bytes, %v, %q", len(b), err, e.Reason)
	}
}

// at is a clock stopped at t, for an action the test dates.
func at(t time.Time) Clock { return func() time.Time { return t } }
