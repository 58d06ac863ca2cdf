package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/fleet/fleettest"
)

var (
	bannerProxy   = regexp.MustCompile(`(?m)^  proxy +(http://127\.0\.0\.1:[1-9]\d*)$`)
	bannerMetrics = regexp.MustCompile(`(?m)^  metrics +(http://127\.0\.0\.1:[1-9]\d*/metrics)$`)
	bannerLog     = regexp.MustCompile(`(?m)^  logs \(JSON lines\) +(\S+)$`)
	shadowAgree   = regexp.MustCompile(`shadow: [1-9]\d* agree`)
	bannerConfig  = regexp.MustCompile(`(?m)^  go run \./cmd/wafcanary status --wait -c (\S+)`)
	summaryLine   = regexp.MustCompile(`(?m)^\[ *\d+s\] baseline (\d+) req, \d+ blocked \| candidate (\d+) req, \d+ blocked \| shadow: `)
)

// TestDemo runs the demo for about three seconds and checks that what it
// prints is true: the URLs answer, the summary counts both arms, and the
// log it points to records blocks without leaking credentials.
func TestDemo(t *testing.T) {
	// The demo keeps its directory after it stops; keep it in the test's.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	// Bounded, but stopped by the test once it has seen what it needs:
	// start-up takes seconds under the race detector (two CRS rulesets,
	// RE2 compiled to Go).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, &out, demoOptions{
			listen: "127.0.0.1:0", adminListen: "127.0.0.1:0",
			baseline: "embedded:baseline.conf", candidate: "embedded:candidate-exclusion.conf",
			shadowPercent: 100, stepDuration: time.Minute,
			rate: 20, reportEvery: time.Second,
		})
	}()

	fleettest.WaitFor(t, time.Minute, "the demo banner", func() bool { return bannerLog.MatchString(out.String()) })
	banner := out.String()
	proxyM, metricsM, logM := bannerProxy.FindStringSubmatch(banner), bannerMetrics.FindStringSubmatch(banner), bannerLog.FindStringSubmatch(banner)
	if proxyM == nil || metricsM == nil || logM == nil {
		t.Fatalf("banner lacks the proxy URL, metrics URL or log path:\n%s", banner)
	}
	logPath := logM[1]
	if !strings.HasPrefix(logPath, tmp+string(filepath.Separator)) {
		t.Errorf("log path %s is not under TMPDIR %s", logPath, tmp)
	}

	// The banner's addresses are the live ones. This request carries
	// credentials the log must not repeat.
	const cookie, bearer = "session=c00kieSecret4242", "Bearer t0kenSecret4242"
	req, _ := http.NewRequest(http.MethodGet, proxyM[1]+sqliPath, nil)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Authorization", bearer)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 403 {
		t.Errorf("SQL injection through the banner's proxy URL: status %d, want 403", r.StatusCode)
	}
	ourID := r.Header.Get("X-Request-ID")
	if ourID == "" {
		t.Error("blocked response has no X-Request-ID")
	}
	m, err := http.Get(metricsM[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if m.StatusCode != 200 || !strings.Contains(string(body), "wafcanary_requests_total") {
		t.Errorf("banner's metrics URL: status %d, want 200 with wafcanary metrics", m.StatusCode)
	}

	// A periodic summary with shadow verdicts, then stop.
	fleettest.WaitFor(t, time.Minute, "a summary with shadow verdicts", func() bool { return shadowAgree.MatchString(out.String()) })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("runDemo returned %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("runDemo did not return within 15s")
	}

	text := out.String()
	summaries := summaryLine.FindAllStringSubmatch(text, -1)
	// Ticks at 1s and 2s, then the closing summary: at least one periodic line.
	if len(summaries) < 2 {
		t.Errorf("%d summary lines, want a periodic one and the final one:\n%s", len(summaries), text)
	}
	// The rollout starts in shadow: the baseline serves everyone and the
	// candidate judges copies.
	var served bool
	for _, m := range summaries {
		b, _ := strconv.Atoi(m[1])
		k, _ := strconv.Atoi(m[2])
		served = served || (b > 0 && k == 0 && strings.Contains(m[0], "shadow: "))
	}
	if !served || !shadowAgree.MatchString(text) {
		t.Errorf("no summary line shows baseline traffic judged in shadow:\n%s", text)
	}
	if !strings.Contains(text, "stopped; logs kept in "+logPath) {
		t.Errorf("output does not end by naming the log:\n%s", text)
	}

	logData, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	blocked, oursLogged := 0, false
	for line := range strings.Lines(string(logData)) {
		var rec struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %v\n%s", err, line)
			continue
		}
		if rec.Msg == "request blocked" && rec.RequestID != "" {
			blocked++
			oursLogged = oursLogged || rec.RequestID == ourID
		}
	}
	if blocked == 0 {
		t.Errorf("%s has no \"request blocked\" line with a request_id", logPath)
	}
	if !oursLogged {
		t.Errorf("%s does not log the block of our request %s", logPath, ourID)
	}
	for _, secret := range []string{"c00kieSecret4242", "t0kenSecret4242"} {
		if strings.Contains(string(logData), secret) {
			t.Errorf("%s contains the credential %q", logPath, secret)
		}
	}
	// No header dump of any kind: a "cookie" or "authorization" key with a value.
	if m := regexp.MustCompile(`(?i)"(cookie|authorization)"\s*:\s*(\[\s*)?"[^"]`).FindString(string(logData)); m != "" {
		t.Errorf("%s logs a credential header: %s", logPath, m)
	}
}

// TestDemoRollouts runs the demo's rollout on short steps: the exclusion
// candidate is promoted, the over-blocking one rolled back, each within a
// bounded wait.
func TestDemoRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two rollouts of several seconds each; the full test run covers it")
	}
	for _, tt := range []struct {
		name         string
		overBlocking bool
		want         string
		exit         int // of status --wait -c the demo's config
	}{
		{"exclusion is promoted", false, "rollout promote -> promoted", exitOK},
		{"over-blocking candidate is rolled back", true, "rollout rollback -> rolled_back", exitRolledBack},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TMPDIR", t.TempDir())
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			var out syncBuffer
			done := make(chan error, 1)
			go func() {
				done <- runDemo(ctx, &out, demoOptions{
					listen: "127.0.0.1:0", adminListen: "127.0.0.1:0", baseline: "embedded:baseline.conf",
					candidate: "embedded:candidate-exclusion.conf", overBlocking: tt.overBlocking,
					shadowPercent: 100, stepDuration: time.Second, rate: 100, reportEvery: 5 * time.Second,
				})
			}()
			start := time.Now()
			// What CI would run: wait for the outcome through the config
			// the demo wrote, from before the admin listener serves.
			fleettest.WaitFor(t, 30*time.Second, "the demo's config", func() bool { return bannerConfig.MatchString(out.String()) })
			cfgPath := bannerConfig.FindStringSubmatch(out.String())[1]
			waitOut, waitErr, err := runRoot(t, ctx, "status", "--wait", "--timeout", "80s", "--interval", "500ms", "-c", cfgPath)
			if exitCode(err) != tt.exit {
				t.Errorf("status --wait: exit %d, want %d: %v\n%s%s", exitCode(err), tt.exit, err, waitOut, waitErr)
			}
			t.Logf("status --wait exited %d after %s:\n%s", exitCode(err), time.Since(start).Round(time.Second), waitOut)
			fleettest.WaitFor(t, 10*time.Second, tt.want, func() bool { return strings.Contains(out.String(), tt.want) })
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runDemo: %v", err)
			}
		})
	}
}
