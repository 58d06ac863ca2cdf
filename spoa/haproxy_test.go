package spoa

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/spoa/haproxytest"
	"github.com/wafcanary/wafcanary/spop"
	"github.com/wafcanary/wafcanary/verdict"
)

func TestMain(m *testing.M) {
	code := m.Run()
	behind.stop()
	os.Exit(code)
}

// behind is Debian's haproxy with the shipped deploy/haproxy files,
// started once for the package on loopback, in front of an application,
// with the agent on an engine serving the shipped baseline and exclusion
// candidate at 50%.
var behind haproxyFixture

type haproxyFixture struct {
	once    sync.Once
	skip    string
	err     error
	hp      *haproxytest.HAProxy
	agentAt string
	app     *httptest.Server
	e       *router.Engine
	rec     *records
	agent   *Agent
	srv     *spop.Server
	stopRun context.CancelFunc
}

func startBehindHAProxy(t *testing.T) *haproxyFixture {
	t.Helper()
	h := &behind
	h.once.Do(func() { h.err = h.start(t) })
	if errors.Is(h.err, haproxytest.ErrNotInstalled) {
		t.Skip(h.err)
	}
	if h.err != nil {
		t.Fatalf("starting haproxy: %v", h.err)
	}
	return h
}

func (h *haproxyFixture) start(t *testing.T) error {
	h.rec = newRecords()
	routing := router.DefaultRoutingConfig
	routing.StickyKey = "cookie:uid"
	log := slog.New(slog.DiscardHandler)
	var err error
	h.e, err = router.NewEngine(&router.Snapshot{Baseline: load(t, "baseline.conf"), Candidate: load(t, "candidate-exclusion.conf"),
		Share: router.MaxShare / 2, ShadowSample: router.MaxShare}, router.EngineOptions{Routing: routing, Shadow: router.DefaultShadowConfig,
		FailMode: router.FailClosed, Secret: []byte(secret), Logger: log,
		Observe: router.Observers{Requests: []router.RequestObserver{h.rec}, Shadows: []router.ShadowObserver{h.rec}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stopRun = cancel
	go h.e.Run(ctx)
	if h.agent, err = New(h.e, DefaultConfig, prometheus.NewRegistry(), log); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.agentAt = ln.Addr().String()
	h.srv = h.agent.Server()
	go h.srv.Serve(ln)
	// The application answers with the request ID it was sent, so a test
	// finds an allowed request's record.
	h.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, r.Header.Get("X-Request-ID"))
	}))
	h.hp, err = haproxytest.Start(h.agentAt, h.app.Listener.Addr().String())
	return err
}

func (h *haproxyFixture) stop() {
	if h.hp != nil {
		h.hp.Stop()
	}
	if h.srv != nil {
		h.srv.Close()
	}
	if h.stopRun != nil {
		h.stopRun()
	}
	if h.app != nil {
		h.app.Close()
	}
}

// send sends a request through HAProxy as client uid and returns the
// status and the request ID (the application's answer, or the deny's
// X-Request-ID header).
func (h *haproxyFixture) send(t *testing.T, method, target, uid, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+h.hp.Frontend+target, strings.NewReader(body))
	req.Host = "shop.example"
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if uid != "" {
		req.AddCookie(&http.Cookie{Name: "uid", Value: uid})
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, target, err, h.hp.Log())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, string(b)
	}
	return resp.StatusCode, resp.Header.Get("X-Request-ID")
}

// armOf finds a client on the given arm.
func (h *haproxyFixture) clientOn(t *testing.T, arm verdict.Arm) string {
	t.Helper()
	for i := range 100 {
		uid := fmt.Sprintf("user-%d", i)
		c := h.e.ClientKeyedBy("192.0.2.1:1", nil, uid)
		if a, _ := h.e.Arm(c, "shop.example"); a == arm {
			return uid
		}
	}
	t.Fatalf("no client on the %s arm", arm)
	return ""
}

const ticket = "email=jane.doe%40example.com&subject=Dashboard&message=I+added+the+server+IP+to+%2Fetc%2Fhosts+as+your+guide+says"

// Through the real HAProxy with the shipped configuration: verdicts,
// request IDs from HAProxy's log, sticky arms, shadow pairs, a cut body,
// a rollback effective on the next request, and the agent killed and
// restarted with HAProxy untouched.
func TestBehindHAProxy(t *testing.T) {
	h := startBehindHAProxy(t)

	t.Run("attacks 403, benign 200, under HAProxy's unique-id", func(t *testing.T) {
		status, id := h.send(t, "GET", "/search?q=wireless+headphones", "alice", "")
		if status != 200 || h.rec.byID(t, id).Action != verdict.Allowed {
			t.Fatalf("benign: %d %s", status, id)
		}
		status, id = h.send(t, "GET", "/search?q=1%27%20OR%20%271%27%3D%271%27--", "alice", "")
		if status != 403 || id == "" {
			t.Fatalf("attack: %d, request ID %q", status, id)
		}
		if rec := h.rec.byID(t, id); rec.Action != verdict.Blocked || rec.Verdict.RuleID != 949110 {
			t.Errorf("attack's record %+v", rec)
		}
		// explain takes the ID from HAProxy's log line.
		line := regexp.MustCompile(`(?m)^.*id=` + regexp.QuoteMeta(id) + ` arm=(baseline|candidate) version=\w+ waf=deny rule=949110 .*$`)
		deadline := time.Now().Add(5 * time.Second)
		for !line.MatchString(h.hp.Log()) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line for %s in HAProxy's log:\n%s", id, h.hp.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("a client stays on its arm, and every request gives a shadow pair", func(t *testing.T) {
		for _, arm := range []verdict.Arm{verdict.Baseline, verdict.Candidate} {
			uid := h.clientOn(t, arm)
			for range 5 {
				status, id := h.send(t, "GET", "/products?page=2", uid, "")
				if rec := h.rec.byID(t, id); status != 200 || rec.Arm != arm {
					t.Fatalf("%s: %d on %s, want 200 on %s", uid, status, rec.Arm, arm)
				}
				if s := h.rec.shadowFor(t, id); s.Enforcing != arm || s.Host != "shop.example" || s.Path != "/products" {
					t.Errorf("shadow pair %+v for %s", s, id)
				}
			}
		}
	})

	t.Run("a body cut at HAProxy's buffer is refused", func(t *testing.T) {
		status, id := h.send(t, "POST", "/support/tickets", "alice", "message="+strings.Repeat("a", 20000))
		if status != 413 || h.rec.byID(t, id).Refused != verdict.RefusedBodyTruncated {
			t.Fatalf("%d %s", status, id)
		}
	})

	t.Run("a rollback takes effect on the next request", func(t *testing.T) {
		uid := h.clientOn(t, verdict.Candidate)
		if status, _ := h.send(t, "POST", "/support/tickets", uid, ticket); status != 200 {
			t.Fatalf("the fixed false positive on the candidate: %d", status)
		}
		prev := h.e.Snapshot()
		if err := h.e.Swap(&router.Snapshot{Baseline: prev.Baseline}); err != nil {
			t.Fatal(err)
		}
		status, id := h.send(t, "POST", "/support/tickets", uid, ticket)
		if status != 403 || h.rec.byID(t, id).Arm != verdict.Baseline {
			t.Fatalf("after the rollback: %d, want the baseline's 403", status)
		}
	})

	t.Run("the agent killed fails closed, restarted serves again", func(t *testing.T) {
		h.srv.Close()
		if status, _ := h.send(t, "GET", "/search?q=shoes", "alice", ""); status != 500 {
			t.Fatalf("agent down: %d, want 500 (fail closed)", status)
		}
		ln, err := net.Listen("tcp", h.agentAt)
		if err != nil {
			t.Fatal(err)
		}
		h.srv = h.agent.Server()
		go h.srv.Serve(ln)
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, _ := h.send(t, "GET", "/search?q=shoes", "alice", "")
			if status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent restarted, still %d", status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
