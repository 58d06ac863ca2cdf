package router_test

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

	"github.com/corazawaf/coraza/v3/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/metrics"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// cannedUpstream answers in process, so the benchmarks measure the WAF
// path and not loopback networking.
type cannedUpstream struct{}

func (cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	body := "<html><body><h1>Results</h1><p>3 products found.</p></body></html>"
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

type benchRequest struct {
	name, method, target, body, contentType string
}

var benchRequests = []benchRequest{
	{"GET", "GET", "/search?q=wireless+headphones&page=2&sort=price", "", ""},
	{"POST-form", "POST", "/blog/comment", "name=Dana&email=dana%40example.com&comment=" + strings.Repeat("Great+post%2C+thanks+for+sharing.+", 20), "application/x-www-form-urlencoded"},
}

func (br benchRequest) new() *http.Request {
	var body io.Reader
	if br.body != "" {
		body = strings.NewReader(br.body)
	}
	r := httptest.NewRequest(br.method, br.target, body)
	r.RemoteAddr = "198.51.100.23:51234"
	r.Host = "shop.example.com"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-GB,en;q=0.7")
	r.Header.Set("Cookie", "session=3f9a1c; theme=dark")
	if br.contentType != "" {
		r.Header.Set("Content-Type", br.contentType)
	}
	return r
}

func loadB(b *testing.B, name string) *ruleset.Ruleset {
	rs, err := ruleset.Load("../configs/rulesets/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// observeAll tells m everything, as the node does.
func observeAll(m *metrics.Metrics) router.Observers {
	return router.Observers{Requests: []router.RequestObserver{m}, Shadows: []router.ShadowObserver{m}, Serving: []router.ServingObserver{m}}
}

func newBenchRouter(b *testing.B, snap *router.Snapshot) *router.Router {
	u, _ := url.Parse("http://upstream.internal")
	rt, err := router.New(snap, router.Options{
		Upstream: u, Routing: router.DefaultRoutingConfig, Shadow: router.DefaultShadowConfig, Proxy: router.DefaultProxyConfig,
		Secret: []byte("bench-secret-0123456789"), Observe: observeAll(metrics.New(prometheus.NewRegistry(), "bench")),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Transport: cannedUpstream{},
	})
	if err != nil {
		b.Fatal(err)
	}
	return rt
}

// bareCoraza runs the phases wafcanary runs, on the same request and
// response, the way a minimal connector would: the reference for overhead.
func bareCoraza(rs *ruleset.Ruleset, r *http.Request, body string) {
	tx := rs.WAF().NewTransaction()
	tx.ProcessConnection("198.51.100.23", 51234, "10.0.0.1", 8080)
	tx.ProcessURI(r.RequestURI, r.Method, r.Proto)
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	tx.AddRequestHeader("Host", r.Host)
	var it *types.Interruption
	if it = tx.ProcessRequestHeaders(); it == nil {
		if body != "" {
			tx.ReadRequestBodyFrom(strings.NewReader(body))
		}
		it, _ = tx.ProcessRequestBody()
	}
	if it == nil {
		resp, _ := cannedUpstream{}.RoundTrip(r)
		for k, vs := range resp.Header {
			for _, v := range vs {
				tx.AddResponseHeader(k, v)
			}
		}
		tx.ProcessResponseHeaders(200, "HTTP/1.1")
		tx.ReadResponseBodyFrom(resp.Body)
		tx.ProcessResponseBody()
	}
	tx.ProcessLogging()
	_ = tx.MatchedRules()
	tx.Close()
}

// BenchmarkOverheadVsBareCoraza interleaves a bare Coraza transaction and
// wafcanary's whole handler (routing, request ID, transaction lifecycle,
// reverse proxy, metrics) on the same request, so machine drift hits both
// alike, and reports the overhead as a percentage. Goal: under 5%.
func BenchmarkOverheadVsBareCoraza(b *testing.B) {
	base := loadB(b, "baseline.conf")
	rt := newBenchRouter(b, &router.Snapshot{Baseline: base})
	for _, br := range benchRequests {
		b.Run(br.name, func(b *testing.B) {
			var bare, waf time.Duration
			for b.Loop() {
				r := br.new()
				t0 := time.Now()
				bareCoraza(base, r, br.body)
				t1 := time.Now()
				w := httptest.NewRecorder()
				rt.ServeHTTP(w, br.new())
				t2 := time.Now()
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
				bare += t1.Sub(t0)
				waf += t2.Sub(t1)
			}
			n := float64(b.N)
			b.ReportMetric(float64(bare.Nanoseconds())/n, "bare-ns/req")
			b.ReportMetric(float64(waf.Nanoseconds())/n, "wafcanary-ns/req")
			b.ReportMetric(100*(float64(waf)/float64(bare)-1), "overhead-%")
		})
	}
}

// BenchmarkShadow compares shadow at 0% and 100%: the time the client
// waits and the process CPU per request. With the shipped exclusion
// candidate the benign POST's pairs are derived (the exclusion cannot
// change them), so 100% measures sampling and deriving, not a second
// evaluation; make bench's wafcanary-shadow-full row measures every pair
// evaluated.
func BenchmarkShadow(b *testing.B) {
	for _, pct := range []router.Share{0, router.MaxShare} {
		name := map[router.Share]string{0: "sample=0%", router.MaxShare: "sample=100%"}[pct]
		b.Run(name, func(b *testing.B) {
			rt := newBenchRouter(b, &router.Snapshot{Baseline: loadB(b, "baseline.conf"), Candidate: loadB(b, "candidate-exclusion.conf"), ShadowSample: pct})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { rt.Run(ctx); close(done) }()
			br := benchRequests[1]
			b.ReportAllocs() // counts the worker's allocations too
			cpu0 := cpuTime()
			for b.Loop() {
				w := httptest.NewRecorder()
				rt.ServeHTTP(w, br.new())
			}
			b.StopTimer()
			cancel()
			<-done
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/req")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeHTTP is wafcanary's whole handler per request (routing,
// request ID, transaction lifecycle, reverse proxy to an in-process
// upstream, metrics) with allocations, the numbers to watch in review:
// a change that adds allocations per request shows here.
func BenchmarkServeHTTP(b *testing.B) {
	rt := newBenchRouter(b, &router.Snapshot{Baseline: loadB(b, "baseline.conf"), Candidate: loadB(b, "candidate-exclusion.conf"), Share: router.MaxShare / 2})
	for _, br := range benchRequests {
		b.Run(br.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				rt.ServeHTTP(w, br.new())
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkAssign is the sticky assignment: a keyed hash of the client
// key, once per request.
func BenchmarkAssign(b *testing.B) {
	a := router.NewAssigner([]byte("bench-secret-0123456789"))
	keys := []string{"ip:198.51.100.23", "h:client-42", "c:3f9a1c0b7d2e44a1"}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if a.Assign(keys[n%len(keys)], router.MaxShare/2) == verdict.Candidate {
			n++
		}
		n++
	}
}

// BenchmarkObserveRequest is the metrics side of a request: counters,
// histograms and the per-rule matches of a blocked request.
func BenchmarkObserveRequest(b *testing.B) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "bench")
	// Rule series are counted only for the loaded rulesets' rules.
	m.ObserveServing(verdict.Serving{Baseline: loadB(b, "baseline.conf"), Candidate: loadB(b, "candidate-exclusion.conf")})
	// The blocked record first: CI runs benchmarks once.
	recs := []verdict.RequestRecord{
		{ID: "b", Arm: verdict.Candidate, Action: verdict.Blocked, Status: 403, WAFDuration: 1500 * time.Microsecond, Duration: 1600 * time.Microsecond,
			Verdict: verdict.Verdict{Blocked: true, RuleID: 949110, Rules: []verdict.RuleMatch{{ID: 942100}, {ID: 949110}}}},
		{ID: "a", Arm: verdict.Baseline, Action: verdict.Allowed, Status: 200, WAFDuration: 900 * time.Microsecond, Duration: 1200 * time.Microsecond},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.ObserveRequest(recs[i%len(recs)])
		i++
	}
	b.StopTimer()
	if n := ruleMatches(b, reg, "candidate", "942100"); n == 0 {
		b.Fatal("rule 942100 was never counted: the benchmark skipped the per-rule work")
	}
}

func ruleMatches(b *testing.B, g prometheus.Gatherer, arm, id string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wafcanary_rule_matches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["arm"] == arm && l["rule_id"] == id {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
