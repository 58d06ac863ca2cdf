package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/rollout"
)

// The page and its state are open, with headers that keep the page its
// own; actions still need the token, and a browser's cross-origin request
// is refused even with it.
func TestPage(t *testing.T) {
	const token = "0123456789abcdef"
	srv := httptest.NewServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Token: token, Status: func() Status { return Status{State: "shadow"} }, Rollouts: fakeRollouts{}}))
	defer srv.Close()
	do := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{}`))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := do("GET", "/", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<script src="/ui/app.js" defer></script>`) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("page: %d %v\n%.200s", resp.StatusCode, resp.Header, body)
	}
	for path, want := range map[string]string{"/ui/app.js": "sessionStorage", "/ui/app.css": "font:", "/ui/state": `"state": "shadow"`} {
		if resp, body := do("GET", path, nil); resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %.100s", path, resp.StatusCode, body)
		}
	}
	if _, body := do("GET", "/ui/state", nil); strings.Contains(body, token) {
		t.Error("the open state carries the token")
	}
	if resp, _ := do("GET", "/ui/../api/v1/status", nil); resp.StatusCode == 200 {
		t.Error("a path through /ui/ reaches the API without a token")
	}
	auth := "Bearer " + token
	for _, c := range []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"the page's own request", map[string]string{"Authorization": auth, "Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}, 200},
		{"the CLI (no Origin)", map[string]string{"Authorization": auth}, 200},
		{"another origin with the token", map[string]string{"Authorization": auth, "Origin": "http://evil.example"}, 403},
		{"a cross-site fetch", map[string]string{"Authorization": auth, "Sec-Fetch-Site": "cross-site"}, 403},
		{"the page without the token", map[string]string{"Origin": srv.URL}, 401},
		{"a cookie instead of the header", map[string]string{"Cookie": "token=" + token}, 401},
	} {
		if resp, body := do("POST", "/api/v1/rollout/rollback", c.hdr); resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
		}
	}
}

// journalRollouts is a journal of entries behind the Rollouts interface
// that counts how often it is read.
type journalRollouts struct {
	fakeRollouts
	entries []rollout.Entry
	reads   atomic.Int64
}

func (j *journalRollouts) History(n int) ([]rollout.Entry, error) {
	j.reads.Add(1)
	if n > 0 && n < len(j.entries) {
		return j.entries[len(j.entries)-n:], nil
	}
	return j.entries, nil
}

// The fault this guards against: every poll of /ui/state decoded the
// whole journal (up to 16 MiB), and six open pages took the proxy from
// 2,090 to 49 requests/s. Polls at once share one read of the journal's
// tail, and the page shows that tail, newest first; the answer is read
// again once it is pageMaxAge old, or at once after an action.
func TestPageStateOneReadForManyPolls(t *testing.T) {
	j := &journalRollouts{}
	for i := range 500 {
		j.entries = append(j.entries, rollout.Entry{Action: rollout.ActionHold, Reason: fmt.Sprint("look ", i)})
	}
	var clock atomic.Int64 // nanoseconds since t0
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	const token = "0123456789abcdef"
	srv := httptest.NewServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Token: token, Status: func() Status { return Status{State: "shadow"} },
		Rollouts: j, Now: func() time.Time { return t0.Add(time.Duration(clock.Load())) }}))
	defer srv.Close()
	poll := func(pollers int) []PageState {
		t.Helper()
		var wg sync.WaitGroup
		bodies := make([]PageState, pollers)
		for i := range pollers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(srv.URL + "/ui/state")
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("poll: %d", resp.StatusCode)
				}
				if err := json.NewDecoder(resp.Body).Decode(&bodies[i]); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		return bodies
	}
	const pollers = 16
	bodies := poll(pollers)
	if n := j.reads.Load(); n != 1 {
		t.Errorf("%d polls read the journal %d times, want once", pollers, n)
	}
	for i, ps := range bodies {
		if len(ps.History) != pageEntries || ps.History[0].Reason != "look 499" || ps.History[pageEntries-1].Reason != "look 300" {
			t.Fatalf("poll %d: %d entries, want the last %d newest first", i, len(ps.History), pageEntries)
		}
	}
	for _, step := range []struct {
		name  string
		do    func()
		reads int64
	}{
		{"just under pageMaxAge", func() { clock.Add(int64(pageMaxAge - time.Millisecond)) }, 1},
		{"at pageMaxAge", func() { clock.Add(int64(time.Millisecond)) }, 2},
		// Why: the page polls right after its own action and must show it.
		{"after an action", func() {
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/rollout/pause", strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+token)
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
				t.Fatalf("pause: %v", err)
			}
		}, 3},
		{"the clock set back", func() { clock.Add(-int64(time.Hour)) }, 4},
	} {
		step.do()
		poll(pollers)
		if n := j.reads.Load(); n != step.reads {
			t.Errorf("%s: %d reads of the journal in all, want %d", step.name, n, step.reads)
		}
	}
}

// The fault this guards against: the admin listener answered any Host, so
// a page on a name rebound to 127.0.0.1 (DNS rebinding) could read the
// status page's state from a browser. The page, /ui/ and /api/ answer
// only a Host that is an IP address, localhost, or a name in
// admin.allowed_hosts; /metrics and /healthz answer any (Prometheus
// scrapes by service name).
func TestHostChecked(t *testing.T) {
	const token = "0123456789abcdef"
	srv := httptest.NewServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Token: token, Status: func() Status { return Status{State: "shadow"} },
		Rollouts: fakeRollouts{}, AllowedHosts: []string{"wafcanary.ops.svc", "Admin.Example.COM"}}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, tc := range []struct {
		host, path string
		status     int
	}{
		{"rebound.example:" + port, "/", 403},
		{"rebound.example:" + port, "/ui/state", 403},
		{"rebound.example:" + port, "/ui/app.js", 403},
		{"rebound.example", "/api/v1/status", 403},
		// Why: a name that starts with localhost is the attacker's.
		{"localhost.rebound.example", "/ui/state", 403},
		{"rebound.example:" + port, "/metrics", 200},
		{"wafcanary.monitoring.svc:" + port, "/healthz", 200},
		{"127.0.0.1:" + port, "/ui/state", 200},
		{"localhost:" + port, "/", 200},
		{"LOCALHOST", "/api/v1/status", 200},
		{"localhost.:" + port, "/ui/state", 200}, // the fully qualified form
		{"[::1]:" + port, "/ui/state", 200},
		{"10.0.0.7", "/api/v1/status", 200},
		// admin.allowed_hosts, compared without case.
		{"wafcanary.ops.svc:" + port, "/ui/state", 200},
		{"admin.example.com", "/", 200},
		{"wafcanary.ops.svc.rebound.example", "/ui/state", 403},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		req.Host = tc.host
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s with Host %s: %d %.80s, want %d", tc.path, tc.host, resp.StatusCode, b, tc.status)
		}
		if tc.status == 403 && !strings.Contains(string(b), "admin.allowed_hosts") {
			t.Errorf("GET %s with Host %s: the refusal %.80q does not say what to do", tc.path, tc.host, b)
		}
	}
}
