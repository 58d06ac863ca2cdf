package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/router"
)

// inProcess answers with the bench upstream's handler without a socket,
// so a profile of BenchmarkMix is wafcanary's request path and nothing
// else.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil { // an outgoing GET has none; a handler expects one
		r.Body = http.NoBody
	}
	w := httptest.NewRecorder()
	p.h.ServeHTTP(w, r)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

// BenchmarkMix runs the bench mix through wafcanary's router in process:
// the shipped baseline and exclusion candidate split 50/50, response
// bodies inspected, as `make bench`'s wafcanary target (split, shadow
// off) and wafcanary-shadow target (shadow, every request sampled, the
// shadow worker running). For profiles:
// go test -run '^$' -bench Mix -cpuprofile cpu.out ./bench, and the
// profile `make pgo` builds cmd/wafcanary/default.pgo from.
// Besides wall time it reports the process's CPU time per request
// (cpu-ns/req, the shadow worker's included), the figure to compare on a
// machine shared with other work, where wall time also counts the waits
// for a core.
func BenchmarkMix(b *testing.B) {
	for _, c := range []struct {
		name   string
		sample router.Share
	}{{"split", 0}, {"shadow", router.MaxShare}} {
		b.Run(c.name, func(b *testing.B) { benchmarkMix(b, c.sample) })
	}
}

func benchmarkMix(b *testing.B, sample router.Share) {
	u, _ := url.Parse("http://upstream.internal")
	opts := router.Options{
		Upstream: u, Routing: router.DefaultRoutingConfig, Shadow: router.DefaultShadowConfig, Proxy: router.DefaultProxyConfig,
		Secret: []byte("bench-secret-0123456789"), Logger: slog.New(slog.DiscardHandler), Transport: inProcess{upstreamHandler()},
	}
	opts.Routing.StickyKey = "header:X-Client-ID"
	base, cand := loadRuleset(b, "../configs/rulesets/baseline.conf"), loadRuleset(b, "../configs/rulesets/candidate-exclusion.conf")
	rt, err := router.New(&router.Snapshot{Baseline: base, Candidate: cand, Share: router.MaxShare / 2, ShadowSample: sample}, opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }() // the shadow worker
	defer func() { cancel(); <-done }()
	reqs := mixRequests()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		m := reqs[i%len(reqs)]
		r := httptest.NewRequest(m.Method, m.Path, strings.NewReader(m.Body))
		for _, h := range mixHeaders {
			r.Header.Set(h[0], h[1])
		}
		r.Host = "shop.example.com"
		r.Header.Set("X-Client-ID", "client-"+string(rune('a'+i%64)))
		if m.ContentType != "" {
			r.Header.Set("Content-Type", m.ContentType)
		}
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, r)
		_, _ = io.Copy(io.Discard, w.Result().Body)
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/req")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
