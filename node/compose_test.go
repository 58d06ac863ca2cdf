package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/exclusion"
	"github.com/wafcanary/wafcanary/notification"
)

const composeHost = "shop.example.com"

// tuneNote writes, into dir, what `wafcanary tune` writes for the notes
// false positive sent to path: a candidate from the baseline ls serves
// now. It returns the candidate's path and the result.
func tuneNote(t *testing.T, ls *liveServer, dir, name, path string) (string, exclusion.Result) {
	t.Helper()
	bundle, err := ls.s.ServedBaseline()
	if err != nil {
		t.Fatal(err)
	}
	fp := demo.NoteFalsePositive()
	rec := capture.Record{ID: name, Method: fp.Method, Host: composeHost, URI: path, Proto: "HTTP/1.1", Header: fp.Header.Clone(), Body: fp.Body}
	res, err := exclusion.Tune(context.Background(), ls.s.router.Snapshot().Baseline, bundle, []capture.Record{rec}, exclusion.Options{Output: name, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for n, c := range res.Files {
		if err := os.WriteFile(filepath.Join(dir, n), c, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, name), res
}

// noteStatus sends the notes false positive to path through the proxy.
func noteStatus(t *testing.T, proxy, path string) int {
	t.Helper()
	fp := demo.NoteFalsePositive()
	req, _ := http.NewRequest(fp.Method, proxy+path, strings.NewReader(fp.Body))
	req.Header = fp.Header.Clone()
	req.Host = composeHost
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func okUpstream(t *testing.T) string {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	t.Cleanup(up.Close)
	return up.URL
}

// Issue 27, item 2, done when: fix 2 is tuned while fix 1 rolls out,
// both from the same baseline; fix 1 is promoted; starting fix 2 then
// keeps fix 1's exclusion (it is rebased onto the promoted baseline), and
// a copy of fix 2 that does not record its base is refused, naming the
// exclusion it would drop and the baseline it was written from.
func TestStartRebasesOntoPromotedFix(t *testing.T) {
	ls := startLive(t, rolloutConfig(t, okUpstream(t)))
	ctx := context.Background()
	dir := t.TempDir()
	b0 := ls.s.router.Snapshot().Baseline.Version
	if code := noteStatus(t, ls.proxy, "/api/notes"); code != http.StatusForbidden {
		t.Fatalf("the false positive got %d before any fix, want 403", code)
	}

	fix1, _ := tuneNote(t, ls, dir, "fix1.conf", "/api/notes")
	if _, err := ls.api().Start(ctx, admin.StartRequest{Candidate: fix1, Actor: "alice", Reason: "fix 1: notes"}); err != nil {
		t.Fatalf("start fix 1: %v", err)
	}
	fix2, _ := tuneNote(t, ls, dir, "fix2.conf", "/api/drafts") // while fix 1 rolls out
	text, _ := os.ReadFile(fix2)
	hand := filepath.Join(dir, "hand.conf")
	os.WriteFile(hand, regexp.MustCompile(`(?m)^# wafcanary: base .*\n`).ReplaceAll(text, nil), 0o600)
	if _, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "alice", Reason: "fix 1 checked", Full: true}); err != nil {
		t.Fatal(err)
	}
	b1 := ls.s.router.Snapshot().Baseline.Version
	if b1 == b0 || noteStatus(t, ls.proxy, "/api/notes") == http.StatusForbidden {
		t.Fatalf("fix 1 is not in service after its promotion (baseline %s)", b1)
	}

	// Written by hand from the old baseline: it would undo fix 1.
	_, err := ls.api().Start(ctx, admin.StartRequest{Candidate: hand, Actor: "bob", Reason: "fix 2 by hand"})
	t.Logf("the hand-written copy: %v", err)
	for _, want := range []string{"not built on the served baseline " + b1, "drops 1 exclusion(s)", "rule 10000", "holds all of baseline " + b0, "--force-base"} {
		if !refused(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("the hand-written copy: %v; want a refusal naming %q", err, want)
		}
	}

	// As tune wrote it: carried over onto what serves.
	st, err := ls.api().Start(ctx, admin.StartRequest{Candidate: fix2, Actor: "bob", Reason: "fix 2: drafts"})
	if err != nil {
		t.Fatalf("start fix 2: %v", err)
	}
	if st.Composed == nil {
		t.Fatal("start's answer says nothing of the candidate's base")
	}
	t.Logf("start: %s", st.Composed.Base)
	for _, want := range []string{"rebased onto the served baseline " + b1, "written from " + b0, "promote of " + b1, `"fix 1 checked`, "rule 10000 is now 10001"} {
		if !strings.Contains(st.Composed.Base, want) {
			t.Errorf("start says %q, lacks %q", st.Composed.Base, want)
		}
	}
	if st.Composed.ScopeFrom != admin.ScopeInferred || st.Scope.String() != "host shop.example.com, and path /api/drafts, and caused only by rules 941100, 941120" {
		t.Errorf("scope %s %q: fix 2's exclusion only, exactly its path", st.Composed.ScopeFrom, st.Scope)
	}
	if _, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "bob", Reason: "fix 2 checked", Full: true}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/api/notes": http.StatusOK, "/api/drafts": http.StatusOK, "/api/other": http.StatusForbidden} {
		if got := noteStatus(t, ls.proxy, path); got != want {
			t.Errorf("the note on %s after both fixes: %d, want %d", path, got, want)
		}
	}
	h, err := ls.api().History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var starts []string
	for _, e := range h {
		if e.Action == "start" {
			starts = append(starts, e.Reason)
		}
	}
	if len(starts) != 2 || !strings.Contains(starts[1], "[rebased onto the served baseline "+b1) {
		t.Errorf("the journal does not say fix 2 was rebased: %q", starts)
	}
}

// A candidate written from a baseline this server does not keep cannot be
// rebased: start refuses naming both versions, and --force-base starts
// it, journalled first with the reason and what it overrides.
func TestStartForceBase(t *testing.T) {
	refusals := make(chan notification.Message, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m notification.Message
		if json.NewDecoder(r.Body).Decode(&m) == nil && m.Event == notification.Refused {
			refusals <- m
		}
	}))
	t.Cleanup(recv.Close)
	cfg := rolloutConfig(t, okUpstream(t))
	cfg.Notifications.Webhooks = []notification.Webhook{{URL: recv.URL, Format: notification.JSON}}
	ls := startLive(t, cfg)
	ctx := context.Background()
	b0 := ls.s.router.Snapshot().Baseline.Version
	p, _ := tuneNote(t, ls, t.TempDir(), "fix.conf", "/api/notes")
	text, _ := os.ReadFile(p)
	os.WriteFile(p, regexp.MustCompile(`(?m)^# wafcanary: base [0-9a-f]{16}`).ReplaceAll(text, []byte("# wafcanary: base 0123456789abcdef")), 0o600)
	req := admin.StartRequest{Candidate: p, Actor: "carol", Reason: "fix from elsewhere"}
	_, err := ls.api().Start(ctx, req)
	for _, want := range []string{"written from baseline 0123456789abcdef, and baseline " + b0 + " serves now", "not among the baselines kept here", "cannot be rebased"} {
		if !refused(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("start: %v; want a refusal naming %q", err, want)
		}
	}
	// The webhooks hear of it as of any refused gate.
	select {
	case m := <-refusals:
		if m.Actor != admin.TokenIdentity || m.Baseline != b0 || !strings.Contains(m.Reason, "0123456789abcdef") {
			t.Errorf("gates_refused: %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Error("no gates_refused event for a candidate on another base")
	}
	req.ForceBase = "the other server's baseline is this one's plus nothing"
	st, err := ls.api().Start(ctx, req)
	if err != nil {
		t.Fatalf("start --force-base: %v", err)
	}
	if st.Composed == nil || !strings.Contains(st.Composed.Base, "started with --force-base") {
		t.Errorf("start's answer: %+v", st.Composed)
	}
	h, _ := ls.api().History(ctx, 0)
	found := false
	for _, e := range h {
		if e.Action == "base_override" && e.Claimed == "carol" && strings.Contains(e.Reason, req.ForceBase) && strings.Contains(e.Reason, "0123456789abcdef") {
			found = true
		}
	}
	if !found {
		t.Errorf("no base_override in the journal: %+v", h)
	}
}

// start --exclusion applies a file of exclusions to the baseline serving
// at start time, and says so.
func TestStartExclusionFile(t *testing.T) {
	ls := startLive(t, rolloutConfig(t, okUpstream(t)))
	ctx := context.Background()
	dir := t.TempDir()
	b0 := ls.s.router.Snapshot().Baseline.Version
	_, res := tuneNote(t, ls, dir, "fix.conf", "/api/notes")
	file := filepath.Join(dir, "fix.exclusion.conf")
	os.WriteFile(file, []byte(res.SecLang), 0o600)
	st, err := ls.api().Start(ctx, admin.StartRequest{Exclusion: file, Actor: "dave", Reason: "notes"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Composed == nil || st.Composed.Base != "the exclusions of "+file+" applied to the served baseline "+b0 {
		t.Errorf("start's answer: %+v", st.Composed)
	}
	if st.Scope.String() != "host shop.example.com, and path /api/notes, and caused only by rules 941100, 941120" {
		t.Errorf("scope %q", st.Scope)
	}
	if _, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "dave", Reason: "ok", Full: true}); err != nil {
		t.Fatal(err)
	}
	if got := noteStatus(t, ls.proxy, "/api/notes"); got != http.StatusOK {
		t.Errorf("the note after the exclusion's promotion: %d", got)
	}
	if _, err := ls.api().Start(ctx, admin.StartRequest{Exclusion: file, Candidate: file, Reason: "both"}); err == nil {
		t.Error("start with both --candidate and --exclusion accepted")
	}
}
