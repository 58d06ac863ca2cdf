package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/spoa/haproxytest"
)

// A node that serves only the SPOE agent, behind the real HAProxy with
// the shipped configuration: the controller promotes the shipped
// exclusion on evidence from HAProxy's traffic alone, and explain answers
// for a request ID read from HAProxy's log line.
func TestRolloutBehindHAProxy(t *testing.T) {
	app := httptest.NewServer(demo.NewApp())
	t.Cleanup(app.Close)
	cfg := rolloutConfig(t, app.URL)
	cfg.Listen = "" // the agent instead of the proxy
	cfg.SPOA.Listen = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, quietLogger(), "test")
	if err != nil {
		t.Fatal(err)
	}
	spoaLn, adminLn := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunListeners(ctx, Listeners{Admin: adminLn, SPOA: spoaLn}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	hp, err := haproxytest.Start(spoaLn.Addr().String(), app.Listener.Addr().String())
	if errors.Is(err, haproxytest.ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hp.Stop)
	ls := &liveServer{s: s, proxy: "http://" + hp.Frontend, admin: "http://" + adminLn.Addr().String()}

	if _, err := ls.api().Start(ctx, admin.StartRequest{Candidate: "../configs/rulesets/candidate-exclusion.conf", Actor: "alice",
		Reason: "930120 false positive on support tickets", Scope: evidence.Scope{Paths: []string{"/support/tickets"}, RuleIDs: []int{930120}}}); err != nil {
		t.Fatalf("start: %v", err)
	}
	now := time.Now()
	for i, want := range []rollout.Action{rollout.ActionAdvance, rollout.ActionAdvance, rollout.ActionPromote} {
		send(t, ls.proxy, 200, i*1000, []demo.Request{ticketFP()})
		settle(t, s, 150)
		now = now.Add(time.Minute)
		d, err := s.rollout.Step(ctx, now)
		if err != nil || d.Action != want {
			t.Fatalf("step %d: %s (%s), want %s\nHAProxy:\n%s", i, d.Action, d.Reason, want, tail(hp.Log(), 20))
		}
	}
	if snap := s.router.Snapshot(); snap.Candidate != nil || !strings.Contains(snap.Baseline.Path, "candidate-exclusion") {
		t.Fatalf("after promotion the baseline is %s", snap.Baseline.Path)
	}
	// The evidence was HAProxy's: the agent judged every request, and
	// counted them as such.
	var metrics strings.Builder
	if r := httpGet(t, newClient(t), ls.admin+"/metrics"); r.status == 200 {
		metrics.WriteString(r.body)
	}
	if v, _ := metricValue(metrics.String(), `wafcanary_spoa_messages_total{message="coraza-req",result="judged"}`); v < 600 {
		t.Errorf("the agent judged %v messages, want the 600 sent", v)
	}

	// An attack through HAProxy; its ID from HAProxy's log line explains it.
	var status atomic.Int32
	req, _ := http.NewRequest("GET", ls.proxy+"/search?q=1%27%20OR%20%271%27%3D%271%27--", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0")
	req.Header.Set("X-Client-ID", "mallory")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	status.Store(int32(resp.StatusCode))
	line := regexp.MustCompile(`"GET /search\?q=1%27%20OR[^"]*" id=(\S+) arm=baseline version=\w+ waf=deny rule=949110`)
	var id string
	for deadline := time.Now().Add(5 * time.Second); id == ""; time.Sleep(20 * time.Millisecond) {
		if m := line.FindStringSubmatch(hp.Log()); m != nil {
			id = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("attack got %d; no log line for it:\n%s", status.Load(), tail(hp.Log(), 10))
		}
	}
	ex, err := ls.api().Explain(ctx, id)
	if err != nil || ex.ID != id || ex.Arm != "baseline" || ex.InterruptedBy != 949110 || ex.Path != "/search" {
		t.Fatalf("explain %s: %v %+v", id, err, ex)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n") + fmt.Sprintf("\n(%d lines)", len(lines))
}
