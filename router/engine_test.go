package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wafcanary/wafcanary/metrics"
	"github.com/wafcanary/wafcanary/verdict"
)

// A second front-end drives the Engine as the HTTP proxy does (Client,
// Begin, Request, Response, Finish) and must get, for the same request
// from the same client, the same arm, the same verdict, the same metrics
// and the same shadow record. Clients are keyed by a header so that both
// arms are exercised; each case is sent first through the proxy, then
// straight to the engine, and the metrics are compared by what each
// request added.
func TestEngineJudgesAsTheHTTPProxyDoes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	f := newFixture(t, &Snapshot{Baseline: load(t, shipped("baseline.conf")), Candidate: load(t, shipped("candidate-exclusion.conf")),
		Share: MaxShare / 2, ShadowSample: MaxShare}, nil, func(o *Options) {
		o.Routing.StickyKey = "header:X-Client-ID"
		// The metrics are told first: once the recorder has a record,
		// the metrics have counted it.
		o.Observe.Requests = append([]RequestObserver{m}, o.Observe.Requests...)
		o.Observe.Shadows = append([]ShadowObserver{m}, o.Observe.Shadows...)
		o.Observe.Serving = append([]ServingObserver{m}, o.Observe.Serving...)
	})
	e := f.rt.Engine()
	cases := []struct {
		name, method, target, body string
		header                     map[string]string
	}{
		{"benign", "GET", "/search?q=wireless+headphones", "", nil},
		{"sqli", "GET", "/search?q=1%27%20OR%20%271%27%3D%271%27--", "", nil},
		{"fixed false positive", "POST", "/support/tickets", ticketBody, form},
		{"xss in a form", "POST", "/support/tickets", "message=%3Cscript%20src%3Dhttps%3A%2F%2Fevil.example%2Fx.js%3E%3C%2Fscript%3E", form},
	}
	arms := map[verdict.Arm]int{}
	for i, c := range cases {
		for client := range 4 {
			header := http.Header{}
			header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
			header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
			header.Set("Accept-Encoding", "gzip")
			header.Set("X-Client-ID", fmt.Sprintf("customer-%d", client))
			for k, v := range c.header {
				header.Set(k, v)
			}
			name := fmt.Sprintf("%s, client %d", c.name, client)

			before := gather(t, reg)
			httpID := fmt.Sprintf("http-%d-%d", i, client)
			status := f.send(t, c.method, c.target, httpID, c.body, header)
			viaHTTP := f.rec.byID(t, httpID)
			shadowHTTP := f.rec.nextShadow(t)
			mid := gather(t, reg)

			engineID := fmt.Sprintf("engine-%d-%d", i, client)
			engineStatus := driveEngine(t, e, f.proxy.Listener.Addr().String(), c.method, c.target, engineID, c.body, header)
			viaEngine := f.rec.byID(t, engineID)
			shadowEngine := f.rec.nextShadow(t)
			after := gather(t, reg)

			arms[viaHTTP.Arm]++
			if engineStatus != status {
				t.Errorf("%s: status %d through the engine, %d through the proxy", name, engineStatus, status)
			}
			if got, want := recordOf(viaEngine), recordOf(viaHTTP); got != want {
				t.Errorf("%s: through the engine %s\n  through the proxy %s", name, got, want)
			}
			if got, want := shadowOf(shadowEngine, engineID), shadowOf(shadowHTTP, httpID); got != want {
				t.Errorf("%s: shadow through the engine %s\n  through the proxy %s", name, got, want)
			}
			if got, want := added(mid, after), added(before, mid); !maps.Equal(got, want) {
				t.Errorf("%s: metrics added through the engine %v\n  through the proxy %v", name, got, want)
			}
		}
	}
	if arms[verdict.Baseline] == 0 || arms[verdict.Candidate] == 0 {
		t.Fatalf("requests per arm %v: both arms must be exercised", arms)
	}
}

// send sends a request through the proxy with exactly these headers and
// returns its status.
func (f *fixture) send(t *testing.T, method, target, id, body string, header http.Header) int {
	t.Helper()
	req, err := http.NewRequest(method, f.proxy.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	req.Header.Set("X-Request-ID", id)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// driveEngine is a second front-end in a few lines: what it knows of a
// request is its line, host, headers, body and peer, as an SPOE agent
// would be told. It answers allowed requests itself, as the upstream does.
func driveEngine(t *testing.T, e *Engine, host, method, target, id, body string, header http.Header) int {
	t.Helper()
	h := header.Clone()
	h.Set("X-Request-ID", id)
	if body != "" {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	c := e.Client("127.0.0.1:50000", h)
	req := &verdict.Request{ID: e.RequestID(h), Method: method, URI: target, Proto: "HTTP/1.1", Host: host,
		Header: h, ClientIP: c.IP, ClientPort: c.Port}
	x := e.Begin(context.Background(), c, req)
	var in io.Reader
	if body != "" {
		in = strings.NewReader(body)
	}
	status := 0
	defer func() { x.Finish(Outcome{Status: status}) }()
	it, _, err := x.Request(in)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	if it != nil {
		_, status = Enforce(it)
		return status
	}
	respHeader := http.Header{"Content-Type": {"text/plain"}}
	it, out, err := x.Response(http.StatusOK, "HTTP/1.1", respHeader, io.NopCloser(strings.NewReader("hello from upstream\n")))
	if err != nil {
		t.Fatalf("%s: response: %v", id, err)
	}
	if it != nil {
		_, status = Enforce(it)
		return status
	}
	io.Copy(io.Discard, out)
	status = http.StatusOK
	return status
}

// recordOf is a request record without what differs by nature between
// two requests: the ID and the durations.
func recordOf(r verdict.RequestRecord) string {
	return fmt.Sprintf("arm %s, action %s, status %d, outside %v, upstream error %v, refused %v, blocked %v by %d, rules %v, score %d",
		r.Arm, r.Action, r.Status, r.Outside, r.UpstreamError, r.Refused, r.Verdict.Blocked, r.Verdict.RuleID, r.Verdict.RuleIDs(), r.Verdict.InboundScore)
}

func shadowOf(s verdict.ShadowRecord, id string) string {
	if s.ID != id {
		return fmt.Sprintf("pair for %s, want %s", s.ID, id)
	}
	return fmt.Sprintf("%s %s %s, enforcing %s, baseline blocked %v by %v, candidate blocked %v by %v, derived %v, versions %s %s",
		s.Method, s.Host, s.Path, s.Enforcing, s.Baseline.Blocked, s.Baseline.RuleIDs(), s.Candidate.Blocked, s.Candidate.RuleIDs(), s.Derived, s.BaselineVersion, s.CandidateVersion)
}

// gather reads every counter and every histogram's sample count (not its
// sums or buckets: durations differ between any two requests).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// added is what changed from before to after.
func added(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if v := after[k] - before[k]; v != 0 {
			d[k] = v
		}
	}
	return d
}

// Pair, for a replayer, gives the pair the live shadow gives for the same
// request, derived or evaluated alike; with no candidate it says so.
func TestPairIsTheLiveShadowPair(t *testing.T) {
	f := newFixture(t, &Snapshot{Baseline: load(t, shipped("baseline.conf")), Candidate: load(t, shipped("candidate-exclusion.conf")),
		ShadowSample: MaxShare}, nil, nil)
	e := f.rt.Engine()
	derived := 0
	for i, c := range []struct{ method, target, body string }{
		{"GET", "/search?q=wireless+headphones", ""},
		{"GET", "/search?q=1%27%20OR%20%271%27%3D%271%27--", ""},
		{"POST", "/support/tickets", ticketBody},
	} {
		header := http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"text/html"}, "Accept-Encoding": {"gzip"}}
		if c.body != "" {
			header.Set("Content-Type", form["Content-Type"])
		}
		id := fmt.Sprintf("pair-%d", i)
		f.send(t, c.method, c.target, id, c.body, header)
		live := f.rec.nextShadow(t)

		h := header.Clone()
		h.Set("X-Request-ID", id)
		if c.body != "" {
			h.Set("Content-Length", strconv.Itoa(len(c.body)))
		}
		req := &verdict.Request{ID: id, Method: c.method, URI: c.target, Proto: "HTTP/1.1", Host: f.proxy.Listener.Addr().String(),
			Header: h, ClientIP: "127.0.0.1", ClientPort: 50000}
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		got, err := e.Pair(context.Background(), req, body)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := shadowOf(got, id), shadowOf(live, id); a != b {
			t.Errorf("%s %s: Pair %s\n  live shadow %s", c.method, c.target, a, b)
		}
		if got.Derived {
			derived++
		}
	}
	if derived == 0 || derived == 3 {
		t.Errorf("%d of 3 pairs derived: the cases must cover both a derived and an evaluated pair", derived)
	}
	if err := e.Swap(&Snapshot{Baseline: e.Snapshot().Baseline}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pair(context.Background(), &verdict.Request{ID: "x", Method: "GET", URI: "/", Proto: "HTTP/1.1", Host: "a"}, nil); !errors.Is(err, ErrNoCandidate) {
		t.Errorf("Pair without a candidate: %v, want ErrNoCandidate", err)
	}
}
