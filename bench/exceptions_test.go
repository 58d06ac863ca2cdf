package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// throughputEnv runs TestExceptionMonitorThroughput: about 40 s of both
// cores, so it is asked for, not run by every `go test`.
const throughputEnv = "TEST_EXCEPTION_THROUGHPUT"

// TestExceptionMonitorThroughput measures what measuring exceptions
// costs the proxy: the bench mix through the router in process, on a
// baseline carrying ten exceptions (the shipped one, four conditional ctl
// rules and four directives of removalCandidates, and one for a host the
// mix never names), without the monitor and with it at
// exceptions.sample_percent 100, side by side in rounds of the same run.
// The target is 0.8x or better.
//
//	TEST_EXCEPTION_THROUGHPUT=1 go test -run TestExceptionMonitorThroughput -v ./bench
func TestExceptionMonitorThroughput(t *testing.T) {
	if os.Getenv(throughputEnv) == "" {
		t.Skipf("set %s=1: about 40 s of every core", throughputEnv)
	}
	served := tenExceptions(t)
	off := mixRouter(t, served, nil)
	cfg := exception.DefaultConfig
	cfg.SamplePercent = 100
	mon := exception.NewMonitor(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), nil)
	on := mixRouter(t, served, mon)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { mon.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		list := exception.List(served, time.Time{})
		mon.Annotate(list, time.Now())
		if len(list) == 10 && list[0].Measured {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("variants not built in a minute")
		}
	}

	const rounds, each = 5, 4 * time.Second
	var ratios []float64
	for r := range rounds {
		var a, b float64 // with and without; which goes first alternates
		if r%2 == 0 {
			a, b = drive(on, each), drive(off, each)
		} else {
			b, a = drive(off, each), drive(on, each)
		}
		ratios = append(ratios, a/b)
		t.Logf("round %d: without the monitor %.0f req/s, with it %.0f req/s: %.2fx", r+1, b, a, a/b)
	}
	list := exception.List(served, time.Time{})
	mon.Annotate(list, time.Now())
	for _, e := range list {
		t.Logf("exception %-12s judged %7d, evaluated in full %6d, would-be blocks %5d", e.ID, e.Judged, e.Evaluated, e.WouldBlock)
	}
	slices.Sort(ratios)
	t.Logf("with/without: median %.2fx, range %.2f-%.2f over %d rounds of %s each, GOMAXPROCS %d",
		ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1], rounds, each, runtime.GOMAXPROCS(0))
	if ratios[len(ratios)/2] < 0.8 {
		t.Errorf("median ratio %.2f under the 0.8x target", ratios[len(ratios)/2])
	}
}

// tenExceptions is the shipped exclusion candidate with the removal
// candidates' changes and one exception nothing in the mix touches.
func tenExceptions(t *testing.T) *ruleset.Ruleset {
	t.Helper()
	before := []string{`SecRule REQUEST_HEADERS:Host "@streq legacy.example" "id:10019,phase:1,pass,t:none,nolog,ctl:ruleRemoveById=942100"`}
	var after []string
	for _, c := range removalCandidates {
		if c.before != "" {
			before = append(before, c.before)
		}
		if c.after != "" {
			after = append([]string{c.after}, after...) // see TestExceptionShortcutEqualsFullEvaluation
		}
	}
	shipped, err := os.ReadFile("../configs/rulesets/candidate-exclusion.conf")
	if err != nil {
		t.Fatal(err)
	}
	const crs = "Include @owasp_crs/*.conf"
	text := strings.Replace(string(shipped), crs, strings.Join(before, "\n")+"\n"+crs, 1) + "\n" + strings.Join(after, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "served.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadRuleset(t, path)
}

// mixRouter serves base alone, in process (BenchmarkMix's set-up), with
// mon as its sampler when set.
func mixRouter(t *testing.T, base *ruleset.Ruleset, mon *exception.Monitor) *router.Router {
	u, _ := url.Parse("http://upstream.internal")
	opts := router.Options{
		Upstream: u, Routing: router.DefaultRoutingConfig, Shadow: router.DefaultShadowConfig, Proxy: router.DefaultProxyConfig,
		Secret: []byte("bench-secret-0123456789"), Logger: slog.New(slog.DiscardHandler), Transport: inProcess{upstreamHandler()},
	}
	if mon != nil {
		opts.Observe = router.Observers{Serving: []router.ServingObserver{mon}, Samplers: []router.RequestSampler{mon}}
	}
	rt, err := router.New(&router.Snapshot{Baseline: base}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// drive sends the mix through rt from one goroutine per core for d and
// returns requests per second.
func drive(rt *router.Router, d time.Duration) float64 {
	reqs := mixRequests()
	var n atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := g * 7; time.Now().Before(stop); i++ {
				m := reqs[i%len(reqs)]
				r := httptest.NewRequest(m.Method, m.Path, strings.NewReader(m.Body))
				for _, h := range mixHeaders {
					r.Header.Set(h[0], h[1])
				}
				r.Host = "shop.example.com"
				if m.ContentType != "" {
					r.Header.Set("Content-Type", m.ContentType)
				}
				w := httptest.NewRecorder()
				rt.ServeHTTP(w, r)
				_, _ = io.Copy(io.Discard, w.Result().Body)
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}
