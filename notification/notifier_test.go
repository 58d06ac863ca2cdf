package notification

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type receiver struct {
	mu     sync.Mutex
	bodies []string
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// A real loopback receiver gets each event in its format; one that fails
// is retried, then counted as failed; one that hangs never holds Send; a
// full queue drops and counts; the webhook's secret path is never logged.
func TestNotifier(t *testing.T) {
	ok := &receiver{}
	okSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ok.mu.Lock()
		ok.bodies = append(ok.bodies, r.Header.Get("Content-Type")+" "+string(b))
		ok.mu.Unlock()
	}))
	defer okSrv.Close()
	var failures atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failures.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer failing.Close()

	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(p) }), nil))
	reg := prometheus.NewRegistry()
	n := New(Config{Timeout: time.Second, Retries: 2, QueueSize: 8, Webhooks: []Webhook{
		{URL: okSrv.URL + "/json", Format: JSON},
		{URL: okSrv.URL + "/slack", Format: Slack, Events: []Event{Rollback}},
		{URL: failing.URL + "/services/T0/B0/s3cret-path", Format: JSON, Events: []Event{Rollback}},
	}}, reg, log)
	n.wait = func(int) time.Duration { return 10 * time.Millisecond }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	n.Send(Message{Event: Start, Actor: "alice", Reason: "fp", State: "shadow", Step: 1, Steps: 3, Baseline: "b1", Candidate: "c1"})
	n.Send(Message{Event: Rollback, Actor: "controller", Reason: "new blocks", State: "rolled_back", Step: 2, Steps: 3, Percent: 10, Baseline: "b1", Candidate: "c1"})
	deadline := time.Now().Add(5 * time.Second)
	for len(ok.got()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := ok.got()
	if len(got) != 3 {
		t.Fatalf("receiver got %d posts: %q", len(got), got)
	}
	var m Message
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got[0], "application/json ")), &m); err != nil || m.Event != Start || m.Actor != "alice" || m.Candidate != "c1" {
		t.Errorf("JSON message %q: %v", got[0], err)
	}
	if !strings.Contains(strings.Join(got, "\n"), `{"text":"wafcanary rollback by controller: candidate c1, rolled_back at 10% (step 2 of 3): new blocks"}`) {
		t.Errorf("no Slack message among %q", got)
	}
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(n.results.WithLabelValues("rollback", "failed")) != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if v := testutil.ToFloat64(n.results.WithLabelValues("rollback", "failed")); v != 1 || failures.Load() != 3 {
		t.Errorf("failed deliveries counted %v after %d attempts, want 1 after 3 (two retries)", v, failures.Load())
	}
	if v := testutil.ToFloat64(n.results.WithLabelValues("rollback", "sent")); v != 2 {
		t.Errorf("sent rollbacks %v, want 2", v)
	}
	logMu.Lock()
	if l := logs.String(); strings.Contains(l, "s3cret-path") || !strings.Contains(l, "notification failed") {
		t.Errorf("log: %s", l)
	}
	logMu.Unlock()

	// A receiver that hangs: Send returns at once, and past the queue
	// the rest are dropped and counted.
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // the server sees a client hang up only once the body is read: release at the end
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	h := New(Config{Timeout: time.Minute, Retries: 0, QueueSize: 2, Webhooks: []Webhook{{URL: hang.URL, Format: JSON}}}, prometheus.NewRegistry(), log)
	hctx, hcancel := context.WithCancel(context.Background())
	hdone := make(chan struct{})
	go func() { h.Run(hctx); close(hdone) }()
	start := time.Now()
	for range 10 {
		h.Send(Message{Event: Step})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Send blocked for %s behind a hanging receiver", d)
	}
	if v := testutil.ToFloat64(h.results.WithLabelValues("step", "dropped")); v < 7 {
		t.Errorf("dropped %v, want at least 7 of 10 with a queue of 2", v)
	}
	hcancel()
	<-hdone
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
