package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wafcanary/wafcanary/verdict"
)

func block(id, contentType, uri, body string) verdict.Block {
	h := http.Header{"Cookie": {"session=s3cret-cookie"}, "Authorization": {"Bearer s3cret-bearer"},
		"X-Session-Id": {"s3cret-header"}, "User-Agent": {"Mozilla/5.0"}}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return verdict.Block{
		Request: verdict.Request{ID: id, Method: "POST", URI: uri, Proto: "HTTP/1.1", Host: "shop.example", Header: h, ClientIP: "203.0.113.7"},
		Body:    []byte(body), Version: "abc", Time: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC),
		Record: verdict.RequestRecord{ID: id, Arm: verdict.Candidate, Action: verdict.Blocked, Status: 403,
			Verdict: verdict.Verdict{Blocked: true, RuleID: 949110, Rules: []verdict.RuleMatch{{ID: 942100, Targets: []string{"ARGS:text"}}}}},
	}
}

// No cookie, credential or sensitive value is kept, whatever the body;
// what is not sensitive is kept as sent.
func TestRecordRedacts(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, uri, body string
		keep                   []string
		note                   string
	}{
		{"form", "application/x-www-form-urlencoded", "/login?next=%2Fhome&api_key=s3cret-q", "user=alice&password=s3cret-form&text=1%27+OR+1%3D1", []string{"user=alice", "text=1%27+OR+1%3D1", "next=%2Fhome"}, ""},
		{"json", "application/json; charset=utf-8", "/api/notes", `{"text":"x' OR 1=1","card":{"card_number":"s3cret-card"},"items":[{"otp":"s3cret-otp"}]}`, []string{`"text":"x' OR 1=1"`}, ""},
		{"other", "text/plain", "/upload?token=s3cret-token", "s3cret-plain", nil, "a text/plain body of 12 bytes"},
		{"bad json", "application/json", "/api", `{"password":"s3cret-broken`, nil, "does not parse"},
		// Not form pairs: a JSON document with a form type (jQuery's
		// default), a bare token, a ;-joined pair.
		{"json as form", "application/x-www-form-urlencoded", "/verify?s3cret-bare-token&a=1&b=2;pin=s3cret-semi", `{"user":"a","password":"s3cret-json-form"}`, []string{"a=1"}, ""},
		{"encoded names", "application/x-www-form-urlencoded", "/x?token%3Ds3cret-enc=1&API-Key=s3cret-dash", "Api_Key=s3cret-under&ok=1", []string{"ok=1"}, ""},
	} {
		b := block("r-"+tc.name, tc.ctype, tc.uri, tc.body)
		b.Request.Header.Set("api-key", "s3cret-api-key-header")
		b.Request.Header.Set("X-Goog-Api-Key", "s3cret-goog")
		b.Request.Header.Set("Referer", "https://shop.example/reset?token=s3cret-referer&step=2")
		rec := Of(b, DefaultConfig)
		out, _ := json.Marshal(rec)
		if strings.Contains(string(out), "s3cret") {
			t.Errorf("%s: a secret was kept: %s", tc.name, out)
		}
		for _, k := range append(tc.keep, `"User-Agent":["Mozilla/5.0"]`, `"host":"shop.example"`, `"targets":["ARGS:text"]`, "step=2") {
			if !strings.Contains(string(out), k) && !strings.Contains(rec.Body+rec.URI, k) {
				t.Errorf("%s: %s lost from %s", tc.name, k, out)
			}
		}
		if !strings.Contains(rec.BodyNote, tc.note) {
			t.Errorf("%s: note %q, want %q", tc.name, rec.BodyNote, tc.note)
		}
	}
	long := Of(block("r-long", "application/x-www-form-urlencoded", "/", "text="+strings.Repeat("a", 100)), Config{MaxBodyBytes: 20, Redact: DefaultConfig.Redact})
	if len(long.Body) != 20 || !strings.Contains(long.BodyNote, "max_body_bytes") {
		t.Errorf("long body: %d bytes, note %q", len(long.Body), long.BodyNote)
	}
}

// The store holds at most its limits, oldest out first, files 0600, and
// what it holds survives a restart.
func TestStoreBoundsAndRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	cfg := DefaultConfig
	cfg.MaxRequests = 3
	// A fixed date far from the real one either way: the store must
	// date captures by this clock alone, never by the files' real times.
	now := time.Date(2020, 12, 2, 3, 0, 0, 0, time.UTC)
	s, err := Open(dir, cfg, slog.New(slog.DiscardHandler), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for i := range 5 {
		s.ObserveBlock(block(fmt.Sprint("req-", i), "application/x-www-form-urlencoded", "/", "a=1"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Get("req-4"); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if s.Len() != 3 {
		t.Fatalf("%d captures, want 3", s.Len())
	}
	if _, err := s.Get("req-0"); err != ErrNotFound {
		t.Errorf("the oldest capture is still there: %v", err)
	}
	rec, err := s.Get("req-4")
	if err != nil || rec.Host != "shop.example" || rec.Verdict.RuleID != 949110 {
		t.Fatalf("req-4: %+v, %v", rec, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		if info, _ := os.Stat(f); info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, info.Mode().Perm())
		}
	}
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600)
	again, err := Open(dir, cfg, slog.New(slog.DiscardHandler), func() time.Time { return now.Add(time.Hour) })
	if err != nil || again.Len() != 3 {
		t.Fatalf("after a restart: %d captures, %v", again.Len(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); err == nil {
		t.Error("a torn write was left behind")
	}
	// Age: a week later every capture is past max_age.
	again.now = func() time.Time { return now.Add(8 * 24 * time.Hour) }
	again.mu.Lock()
	again.pruneLocked()
	again.mu.Unlock()
	if again.Len() != 0 {
		t.Errorf("%d captures past max_age kept", again.Len())
	}
}

// An ID names one capture, the first: a later block with the same ID
// (a client that knows the ID a user quotes to support) must not decide
// what tune excludes.
func TestStoreKeepsTheFirstCaptureOfAnID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	clock := func() time.Time { return time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC) } // block's time + 1h
	s, err := Open(dir, DefaultConfig, slog.New(slog.DiscardHandler), clock)
	if err != nil {
		t.Fatal(err)
	}
	first := block("ticket-42", "application/x-www-form-urlencoded", "/api/notes", "text=hello")
	if err := s.save(Of(first, s.cfg)); err != nil {
		t.Fatal(err)
	}
	later := block("ticket-42", "application/x-www-form-urlencoded", "/admin/evil", "text=other")
	if err := s.save(Of(later, s.cfg)); !errors.Is(err, ErrExists) {
		t.Fatalf("second capture of the same ID: %v, want ErrExists", err)
	}
	rec, err := s.Get("ticket-42")
	if err != nil || !strings.HasPrefix(rec.URI, "/api/notes") || s.Len() != 1 {
		t.Fatalf("capture of ticket-42: %q, %v, %d captures; want the first", rec.URI, err, s.Len())
	}
	// After a restart too.
	again, err := Open(dir, DefaultConfig, slog.New(slog.DiscardHandler), clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.save(Of(later, again.cfg)); !errors.Is(err, ErrExists) {
		t.Fatalf("after a restart: %v, want ErrExists", err)
	}
}

// Captures share state_dir's volume with the journal: they stop short of
// capture.min_free_bytes, so blocked requests cannot fill the volume and
// leave a rollout unable to record itself.
func TestStoreKeepsFreeSpace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	cfg := DefaultConfig
	cfg.MinFreeBytes = 1 << 20
	s, err := Open(dir, cfg, slog.New(slog.DiscardHandler), func() time.Time { return time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC) })
	if err != nil {
		t.Fatal(err)
	}
	free := int64(2 << 20)
	s.free = func(string) (int64, bool) { return free, true }
	if err := s.save(Of(block("roomy", "", "/a", ""), s.cfg)); err != nil {
		t.Fatalf("with 2 MiB free: %v", err)
	}
	free = 1<<20 + 100 // the capture would eat into the reserve
	if err := s.save(Of(block("tight", "", "/b", ""), s.cfg)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("with the reserve nearly reached: %v, want ErrNoSpace", err)
	}
	if s.NoSpace.Load() != 1 || s.Len() != 1 {
		t.Errorf("%d refused, %d kept; want 1 and 1", s.NoSpace.Load(), s.Len())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	want := `
# HELP wafcanary_captures_not_written_total Blocked requests not captured, by reason: queue_full (the writer fell behind) or no_space (capture.min_free_bytes would not stay free).
# TYPE wafcanary_captures_not_written_total counter
wafcanary_captures_not_written_total{reason="no_space"} 1
wafcanary_captures_not_written_total{reason="queue_full"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Errorf("%d files in the store, want 1", len(files))
	}
	// The real volume answers too (unix): far more than 0 bytes free.
	if got, ok := freeBytes(dir); ok && got <= 0 {
		t.Errorf("freeBytes(%s) = %d", dir, got)
	}
}
