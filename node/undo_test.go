package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/rollout"
)

// ticket sends the support-ticket false positive (930120, fixed by the
// shipped exclusion) and returns the status the client got.
func (ls *liveServer) ticket(t *testing.T) int {
	t.Helper()
	fp := ticketFP()
	req, _ := http.NewRequest(fp.Method, ls.proxy+fp.Path, strings.NewReader(fp.Body))
	req.Header = fp.Header.Clone()
	req.Header.Set("X-Client-ID", "ticket-writer")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A promotion sticks through SIGHUP; rollback after it says to use undo;
// undo puts the old baseline back from the next request and survives a
// restart; the journal shows each step.
func TestPromotionSticksThenUndo(t *testing.T) {
	app := httptest.NewServer(demo.NewApp())
	t.Cleanup(app.Close)
	cfg := rolloutConfig(t, app.URL)
	ls := startLive(t, cfg)
	ctx := context.Background()
	original := ls.s.router.Snapshot().Baseline.Version
	if got := ls.ticket(t); got != http.StatusForbidden {
		t.Fatalf("before: the baseline answers the false positive with %d, want 403", got)
	}
	ls.start(t, "embedded:candidate-exclusion.conf")
	if _, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "alice", Reason: "fixes TICKET-123", Full: true}); err != nil {
		t.Fatal(err)
	}
	promoted := ls.s.router.Snapshot().Baseline.Version
	if got := ls.ticket(t); got != http.StatusCreated {
		t.Fatalf("after promotion: %d, want the false positive to pass (201)", got)
	}

	// SIGHUP with the configuration unchanged keeps the promotion.
	if err := ls.s.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if v := ls.s.router.Snapshot().Baseline.Version; v != promoted {
		t.Fatalf("after SIGHUP the baseline is %s, want the promoted %s", v, promoted)
	}
	if got := ls.ticket(t); got != http.StatusCreated {
		t.Fatalf("after SIGHUP: %d, want the false positive to still pass", got)
	}

	// rollback has nothing to take out of service: it says so, naming undo.
	_, err := ls.api().Do(ctx, admin.Rollback, admin.ActionRequest{Actor: "bob", Reason: "FP?"})
	var e *admin.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, "wafcanary undo") {
		t.Fatalf("rollback after promotion: %v, want 409 naming undo", err)
	}

	// undo: the next request is judged by the old baseline.
	began := time.Now()
	st, err := ls.api().Do(ctx, admin.Undo, admin.ActionRequest{Actor: "bob", Reason: "TICKET-123 was the wrong fix"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ls.ticket(t); got != http.StatusForbidden {
		t.Fatalf("the request after undo got %d, want the old baseline's 403", got)
	}
	t.Logf("undo: API call and the next request judged by the old baseline in %s", time.Since(began).Round(time.Microsecond))
	if st.Baseline.Version != original || len(st.Baselines) != 2 || st.Baselines[1].Version != original {
		t.Fatalf("status after undo: baseline %s, kept %+v", st.Baseline.Version, st.Baselines)
	}

	// A restart keeps the undo (the configured file is unchanged).
	ls.stop()
	again := startLive(t, cfg)
	if v := again.s.router.Snapshot().Baseline.Version; v != original {
		t.Fatalf("after restart the baseline is %s, want %s", v, original)
	}
	if got := again.ticket(t); got != http.StatusForbidden {
		t.Fatalf("after restart: %d, want 403", got)
	}
	h, err := again.api().History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range h {
		actions = append(actions, string(e.Action))
	}
	if got := strings.Join(actions, " "); got != "reload start promote undo" {
		t.Errorf("journal: %s, want the first start's reload, start, promote, undo", got)
	}
	if last := h[len(h)-1]; !strings.Contains(last.Reason, promoted+" -> "+original) || last.Actor != admin.TokenIdentity || last.Claimed != "bob" || last.EffectLatency <= 0 {
		t.Errorf("undo entry: %+v", last)
	}
}

// A start that lands while a reload compiles wins; the reload is refused
// and the router serves exactly what the controller says.
func TestStartDuringReload(t *testing.T) {
	app := httptest.NewServer(demo.NewApp())
	t.Cleanup(app.Close)
	ls := startLive(t, rolloutConfig(t, app.URL))
	ls.s.beforeReload = func() { ls.start(t, "embedded:candidate-exclusion.conf") }
	if err := ls.s.Reload(); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("reload around a start: %v, want refused", err)
	}
	st, snap := ls.s.rollout.State(), ls.s.router.Snapshot()
	if !st.Phase.Active() || snap.Candidate == nil || st.Candidate.Version != snap.Candidate.Version || st.Baseline.Version != snap.Baseline.Version {
		t.Fatalf("controller %s with %v, router serves %s and %v", st.Phase, st.Candidate, snap.Baseline.Version, snap.Candidate != nil)
	}
}

// The fault this guards against: a candidate bundle missing at restart
// left the rollout "progressing" with nothing of it served until
// max_duration.
func TestRestartWithoutTheCandidatesBundleRollsBack(t *testing.T) {
	cfg := rolloutConfig(t, newUpstream(t).URL)
	ls := startLive(t, cfg)
	ls.start(t, "embedded:candidate-exclusion.conf")
	cand := ls.s.rollout.State().Candidate.Version
	ls.stop()
	if err := os.RemoveAll(filepath.Join(cfg.StateDir, "rulesets", cand)); err != nil {
		t.Fatal(err)
	}
	again := startLive(t, cfg)
	st := again.s.rollout.State()
	if st.Phase != rollout.RolledBack || st.LastDecision.Actor != "startup" || !strings.Contains(st.LastDecision.Reason, "cannot be served after a restart") {
		t.Fatalf("after a restart without the candidate's bundle: %s, %+v", st.Phase, st.LastDecision)
	}
	if again.s.router.Snapshot().Candidate != nil {
		t.Error("a candidate serves")
	}
}

// undoEntries counts the undo entries in the live node's journal.
func (ls *liveServer) undoEntries(t *testing.T) int {
	t.Helper()
	h, err := ls.api().History(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range h {
		if e.Action == rollout.ActionUndo {
			n++
		}
	}
	return n
}

// The fault this guards against: a second undo (a double click on the
// page, two operators at once) undid the undo, putting the promoted
// baseline back, and both answered 200. An undo is idempotent as a
// rollback is: undo without --to undoes the last promotion once, and asked
// again it changes nothing, journals nothing, and says it was done
// already; undo --to the version that serves is a no-op success.
func TestUndoTwiceUndoesOnce(t *testing.T) {
	ls := startLive(t, rolloutConfig(t, newUpstream(t).URL))
	ctx := context.Background()
	original := ls.s.router.Snapshot().Baseline.Version
	ls.start(t, "embedded:candidate-exclusion.conf")
	if _, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "alice", Reason: "fixes TICKET-123", Full: true}); err != nil {
		t.Fatal(err)
	}
	promoted := ls.s.router.Snapshot().Baseline.Version
	for i, who := range []string{"bob", "bob again (a double click)", "carol"} {
		st, err := ls.api().Do(ctx, admin.Undo, admin.ActionRequest{Actor: who, Reason: "TICKET-123 was the wrong fix"})
		if err != nil {
			t.Fatalf("undo %d by %s: %v, want success", i+1, who, err)
		}
		if v := ls.s.router.Snapshot().Baseline.Version; v != original || st.Baseline.Version != original {
			t.Fatalf("after undo %d the router serves %s (answer %s), want %s; the promoted one is %s", i+1, v, st.Baseline.Version, original, promoted)
		}
		if done := strings.Contains(st.Unchanged, "baseline "+original+" serves again since ") && strings.Contains(st.Unchanged, "put back by an undo"); done != (i > 0) {
			t.Errorf("undo %d answered unchanged %q", i+1, st.Unchanged)
		}
	}
	if n := ls.undoEntries(t); n != 1 {
		t.Errorf("%d undo entries in the journal, want 1", n)
	}
	// --to the version in service: nothing to do, and success.
	if st, err := ls.api().Do(ctx, admin.Undo, admin.ActionRequest{Actor: "dave", Reason: "make sure", To: original[:8]}); err != nil || st.Unchanged != "baseline "+original+" serves already" {
		t.Errorf("undo --to the baseline in service: %v, %q; want a success that changes nothing", err, st.Unchanged)
	}
	// --to the promoted one is a new decision, taken once.
	for range 2 {
		if _, err := ls.api().Do(ctx, admin.Undo, admin.ActionRequest{Actor: "erin", Reason: "it was fine after all", To: promoted}); err != nil {
			t.Fatalf("undo --to %s: %v", promoted, err)
		}
	}
	if v := ls.s.router.Snapshot().Baseline.Version; v != promoted {
		t.Fatalf("after undo --to %s the router serves %s", promoted, v)
	}
	if n := ls.undoEntries(t); n != 2 {
		t.Errorf("%d undo entries in the journal, want 2", n)
	}
}

// Undos sent at once through the API give one change: the promoted
// baseline is undone, and not undone again by the others.
func TestConcurrentUndosUndoOnce(t *testing.T) {
	ls := startLive(t, rolloutConfig(t, newUpstream(t).URL))
	ctx := context.Background()
	original := ls.s.router.Snapshot().Baseline.Version
	ls.start(t, "embedded:candidate-exclusion.conf")
	if _, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "alice", Reason: "fixes TICKET-123", Full: true}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	var ready sync.WaitGroup
	ready.Add(n)
	begin := make(chan struct{})
	for i := range n {
		go func() {
			ready.Done()
			<-begin
			_, err := ls.api().Do(ctx, admin.Undo, admin.ActionRequest{Actor: fmt.Sprint("operator-", i), Reason: "FP is back"})
			errs <- err
		}()
	}
	ready.Wait()
	close(begin)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("undo: %v, want success", err)
		}
	}
	if v := ls.s.router.Snapshot().Baseline.Version; v != original {
		t.Fatalf("after %d undos at once the router serves %s, want %s", n, v, original)
	}
	if got := ls.undoEntries(t); got != 1 {
		t.Errorf("%d undo entries in the journal, want 1", got)
	}
}
