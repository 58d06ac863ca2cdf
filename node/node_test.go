package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	sqliPath   = "/search?q=1%27%20OR%20%271%27%3D%271%27--"
	benignPath = "/search?q=blue+shoes"
	// brokenRuleset does not compile: its second line's regexp is unclosed.
	brokenRuleset = "SecRuleEngine On\nSecRule ARGS \"@rx (unclosed\" \"id:1,phase:2,deny\"\n"
)

// newUpstream is the application behind the proxy: it answers every
// request with 200 and names the path it saw.
func newUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw %s\n", r.URL.Path)
	}))
	t.Cleanup(up.Close)
	return up
}

// testConfig is a valid configuration for newServer against upstream.
func testConfig(t *testing.T, upstream string) Config {
	cfg := Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Upstream = upstream
	cfg.StateDir = t.TempDir()
	// The CRS suite gate takes ~20 s a start; TestStartRunsCRSSuite covers it.
	cfg.Gates.CRSSuite = false
	return cfg
}

func quietLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

func listen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServeEndToEnd runs the server as serve does, on loopback listeners,
// and reloads its candidate from a broken and then a changed file.
func TestServeEndToEnd(t *testing.T) {
	up := newUpstream(t)
	exclusion, err := os.ReadFile("../configs/rulesets/candidate-exclusion.conf")
	if err != nil {
		t.Fatal(err)
	}
	candFile := filepath.Join(t.TempDir(), "candidate.conf")
	if err := os.WriteFile(candFile, exclusion, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, up.URL)
	cfg.Rulesets = RulesetsConfig{Baseline: "embedded:baseline.conf", Candidate: candFile}
	cfg.Routing.CandidatePercent = 50
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}

	s, err := New(cfg, quietLogger(), "test")
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	proxyLn, adminLn := listen(t), listen(t)
	proxyURL, adminURL := "http://"+proxyLn.Addr().String(), "http://"+adminLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, proxyLn, adminLn) }()
	c := newClient(t)

	checkProxy := func(t *testing.T) {
		t.Helper()
		if r := httpGet(t, c, proxyURL+sqliPath); r.status != http.StatusForbidden {
			t.Errorf("SQL injection: status %d, want 403; body %q", r.status, r.body)
		}
		if r := httpGet(t, c, proxyURL+benignPath); r.status != http.StatusOK || r.body != "upstream saw /search\n" {
			t.Errorf("benign request: status %d body %q, want 200 from the upstream", r.status, r.body)
		}
	}
	scrape := func(t *testing.T) string {
		t.Helper()
		r := httpGet(t, c, adminURL+"/metrics")
		if r.status != http.StatusOK {
			t.Fatalf("GET /metrics: status %d", r.status)
		}
		return r.body
	}

	start := s.router.Snapshot()
	if start.Candidate == nil {
		t.Fatal("no candidate in service after start-up")
	}
	baseVersion, candVersion := start.Baseline.Version, start.Candidate.Version

	t.Run("proxy", checkProxy)

	t.Run("metrics", func(t *testing.T) {
		body := scrape(t)
		for _, name := range []string{
			"wafcanary_requests_total",
			"wafcanary_waf_duration_seconds",
			"wafcanary_request_duration_seconds",
			"wafcanary_rule_matches_total",
			"wafcanary_shadow_verdicts_total",
			"wafcanary_shadow_dropped_total",
			"wafcanary_upstream_errors_total",
			"wafcanary_candidate_weight_ratio",
			"wafcanary_ruleset_info",
			"wafcanary_build_info",
			"wafcanary_ruleset_load_failures_total",
		} {
			if !strings.Contains(body, "\n# TYPE "+name+" ") {
				t.Errorf("/metrics has no %s", name)
			}
		}
		if v, _ := metricValue(body, "wafcanary_candidate_weight_ratio"); v != 0.5 {
			t.Errorf("wafcanary_candidate_weight_ratio = %v, want 0.5", v)
		}
	})

	t.Run("admin API", func(t *testing.T) {
		tokenFile := filepath.Join(cfg.StateDir, "admin.token")
		fi, err := os.Stat(tokenFile)
		if err != nil {
			t.Fatalf("admin token file: %v", err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %o, want 600", tokenFile, perm)
		}
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		token := strings.TrimSpace(string(b))
		tests := []struct {
			name   string
			header []string
			want   int
		}{
			{name: "no token", want: http.StatusUnauthorized},
			{name: "wrong token", header: []string{"Authorization", "Bearer " + strings.Repeat("x", len(token))}, want: http.StatusUnauthorized},
			// The token alone, without the scheme, is not accepted.
			{name: "bare token", header: []string{"Authorization", token}, want: http.StatusUnauthorized},
			{name: "token from state_dir", header: []string{"Authorization", "Bearer " + token}, want: http.StatusOK},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := httpGet(t, c, adminURL+"/api/v1/status", tt.header...)
				if r.status != tt.want {
					t.Fatalf("GET /api/v1/status: status %d, want %d", r.status, tt.want)
				}
				if r.status != http.StatusOK {
					return
				}
				var st struct {
					Candidate struct{ Path, Version string }
					Percent   float64 `json:"candidate_percent"`
				}
				if err := json.Unmarshal([]byte(r.body), &st); err != nil {
					t.Fatalf("status is not JSON: %v\n%s", err, r.body)
				}
				if st.Candidate.Path != candFile || st.Candidate.Version != candVersion || st.Percent != 50 {
					t.Errorf("status = %s\nwant candidate %s version %s at 50%%", r.body, candFile, candVersion)
				}
			})
		}
	})

	t.Run("reload refuses a broken candidate", func(t *testing.T) {
		if err := os.WriteFile(candFile, []byte(brokenRuleset), 0o644); err != nil {
			t.Fatal(err)
		}
		err := s.Reload()
		if err == nil {
			t.Error("reload of a broken candidate returned nil, want an error")
		} else if !regexp.MustCompile(regexp.QuoteMeta(candFile) + `:\d+: `).MatchString(err.Error()) {
			t.Errorf("reload error %q does not name %s and a line", err, candFile)
		}
		snap := s.router.Snapshot()
		if snap.Candidate == nil {
			t.Errorf("candidate dropped from service after a failed reload, want version %s kept", candVersion)
		} else if snap.Candidate.Version != candVersion {
			t.Errorf("candidate version %s after a failed reload, want %s kept", snap.Candidate.Version, candVersion)
		}
		if snap.Share.Percent() != 50 {
			t.Errorf("candidate share %v%% after a failed reload, want 50%% kept", snap.Share.Percent())
		}
		body := scrape(t)
		if v, ok := metricValue(body, `wafcanary_ruleset_load_failures_total{arm="candidate"}`); !ok || v != 1 {
			t.Errorf(`wafcanary_ruleset_load_failures_total{arm="candidate"} = %v (found %v), want 1`, v, ok)
		}
		if v, _ := metricValue(body, `wafcanary_ruleset_load_failures_total{arm="baseline"}`); v != 0 {
			t.Errorf(`wafcanary_ruleset_load_failures_total{arm="baseline"} = %v, want 0`, v)
		}
		checkProxy(t)
	})

	t.Run("reload installs a changed candidate", func(t *testing.T) {
		changed := string(exclusion) + "\n# changed\nSecRule REQUEST_HEADERS:X-Canary-Test \"@streq on\" \"id:10001,phase:1,deny,status:403,log\"\n"
		if err := os.WriteFile(candFile, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(); err != nil {
			t.Fatalf("reload: %v", err)
		}
		snap := s.router.Snapshot()
		if snap.Candidate == nil || snap.Candidate.Version == candVersion {
			t.Fatalf("candidate %v after reloading a changed file, want a version other than %s", versionOf(snap.Candidate), candVersion)
		}
		// The baseline's files did not change, nor must its version.
		if snap.Baseline.Version != baseVersion {
			t.Errorf("baseline version %s after reload, want %s", snap.Baseline.Version, baseVersion)
		}
		if body := scrape(t); !servesVersion(body, "candidate", snap.Candidate.Version) {
			t.Errorf("wafcanary_ruleset_info does not serve candidate %s:\n%s", snap.Candidate.Version, body)
		}
		checkProxy(t)
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5s of cancel")
	}
}

func TestNewRulesetFailures(t *testing.T) {
	up := newUpstream(t)
	tests := []struct {
		name                string
		baseline, candidate string
		wantInvalid         bool   // New fails with InvalidRulesetError; otherwise it must succeed
		wantErr             string // regular expression matching the error
	}{
		// The rollout cannot start, but production traffic must still be served.
		{name: "broken candidate", baseline: "embedded:baseline.conf", candidate: testRulesets + "/broken.conf"},
		{name: "missing candidate", baseline: "embedded:baseline.conf", candidate: testRulesets + "/missing.conf"},
		{name: "broken baseline", baseline: testRulesets + "/broken.conf", candidate: "embedded:candidate-pl2.conf",
			wantInvalid: true, wantErr: `rulesets/broken\.conf:3: `},
		{name: "broken include in baseline", baseline: testRulesets + "/include-broken.conf",
			wantInvalid: true, wantErr: `rulesets/parts/bad\.conf:3: `},
		{name: "missing baseline", baseline: testRulesets + "/missing.conf",
			wantInvalid: true, wantErr: `rulesets/missing\.conf: .*no such file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, up.URL)
			cfg.Rulesets = RulesetsConfig{Baseline: tt.baseline, Candidate: tt.candidate}
			if tt.candidate != "" {
				cfg.Routing.CandidatePercent = 50
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("test config: %v", err)
			}
			s, err := New(cfg, quietLogger(), "test")
			if invalid := errors.As(err, new(InvalidRulesetError)); invalid != tt.wantInvalid {
				t.Fatalf("New: %v; want an invalid-ruleset error: %v", err, tt.wantInvalid)
			}
			if err != nil {
				if !regexp.MustCompile(tt.wantErr).MatchString(err.Error()) {
					t.Errorf("newServer error %q does not match %s", err, tt.wantErr)
				}
				return
			}
			snap := s.router.Snapshot()
			if snap.Candidate != nil || snap.Share != 0 {
				t.Errorf("snapshot has candidate %v at %v%%, want the baseline alone", versionOf(snap.Candidate), snap.Share.Percent())
			}
			if got := counterValue(t, s.reg, "wafcanary_ruleset_load_failures_total", "arm", "candidate"); got != 1 {
				t.Errorf("candidate load failures = %v, want 1", got)
			}
			proxy := httptest.NewServer(s.router)
			defer proxy.Close()
			c := newClient(t)
			if r := httpGet(t, c, proxy.URL+sqliPath); r.status != http.StatusForbidden {
				t.Errorf("SQL injection: status %d, want 403 from the baseline", r.status)
			}
			if r := httpGet(t, c, proxy.URL+benignPath); r.status != http.StatusOK {
				t.Errorf("benign request: status %d, want 200", r.status)
			}
		})
	}
}

// counterValue is the value of counter name with label key=value as the
// registry serves it.
func counterValue(t *testing.T, g prometheus.Gatherer, name, key, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == name && l.GetName() == key && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// The fault this guards against: a client trickling its body held the
// connection for ever (3,000 of them held ~56 KB each).
func TestTricklingBodyIsCutOff(t *testing.T) {
	cfg := testConfig(t, newUpstream(t).URL)
	cfg.Proxy.ReadTimeout = 300 * time.Millisecond
	s, err := New(cfg, quietLogger(), "test")
	if err != nil {
		t.Fatal(err)
	}
	pl, al := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, pl, al) }()
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", pl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /comment HTTP/1.1\r\nHost: shop.example.com\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nabc")
	began := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	if took := time.Since(began); err != nil || took > 3*time.Second {
		t.Fatalf("the trickling connection was still open after %s (%v), want it closed after about 300ms", took.Round(time.Millisecond), err)
	}
}

// A stop asked for (SIGTERM cancels serve's context) is logged at its
// start and its end, so a log tells it from a crash (issue 27, item 9).
func TestShutdownIsLogged(t *testing.T) {
	var logs syncBuffer
	s, err := New(testConfig(t, newUpstream(t).URL), slog.New(slog.NewJSONHandler(&logs, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, listen(t), listen(t)) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"shutting down: no new decisions, draining requests"`) || !strings.Contains(out, `"msg":"stopped"`) {
		t.Errorf("the shutdown is not logged:\n%s", out)
	}
}
