package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

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
}
