package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// recorder is a hand-written Observer that keeps everything it is told.
type recorder struct {
	mu      sync.Mutex
	reqs    []verdict.RequestRecord
	shadows chan verdict.ShadowRecord
	dropped int
	serving []verdict.Serving
}

func newRecorder() *recorder { return &recorder{shadows: make(chan verdict.ShadowRecord, 100000)} }

func (r *recorder) ObserveRequest(rec verdict.RequestRecord) {
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
}
func (r *recorder) ObserveShadow(s verdict.ShadowRecord) { r.shadows <- s }
func (r *recorder) ShadowDropped() {
	r.mu.Lock()
	r.dropped++
	r.mu.Unlock()
}
func (r *recorder) ObserveServing(s verdict.Serving) {
	r.mu.Lock()
	r.serving = append(r.serving, s)
	r.mu.Unlock()
}

// observers tells r everything.
func (r *recorder) observers() Observers {
	return Observers{Requests: []RequestObserver{r}, Shadows: []ShadowObserver{r}, Serving: []ServingObserver{r}}
}

func (r *recorder) requests() []verdict.RequestRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]verdict.RequestRecord(nil), r.reqs...)
}

// byID waits (bounded) for the record of a request: records are reported
// after the response is sent, so a client can see its answer first.
func (r *recorder) byID(t *testing.T, id string) verdict.RequestRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, rec := range r.requests() {
			if rec.ID == id {
				return rec
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no record for request %s", id)
	return verdict.RequestRecord{}
}

// nextShadow waits (bounded) for the next shadow pair.
func (r *recorder) nextShadow(t *testing.T) verdict.ShadowRecord {
	t.Helper()
	select {
	case s := <-r.shadows:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no shadow verdict")
	}
	return verdict.ShadowRecord{}
}

func load(t testing.TB, path string) *ruleset.Ruleset {
	t.Helper()
	rs, err := ruleset.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func shipped(name string) string { return filepath.Join("..", "configs", "rulesets", name) }

// upstream is a real loopback server that records what reached it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]seenRequest // by X-Request-ID
}

type seenRequest struct {
	host, uri, bodySum string
	bodyLen            int
	xff                string
}

func newUpstream(t testing.TB, h http.Handler) *upstream {
	u := &upstream{seen: map[string]seenRequest{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		u.mu.Lock()
		u.seen[r.Header.Get("X-Request-ID")] = seenRequest{host: r.Host, uri: r.RequestURI, bodySum: hex.EncodeToString(sum[:]), bodyLen: len(body), xff: r.Header.Get("X-Forwarded-For")}
		u.mu.Unlock()
		if h != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello from upstream\n")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) get(id string) (seenRequest, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.seen[id]
	return s, ok
}

type fixture struct {
	rt    *Router
	rec   *recorder
	proxy *httptest.Server
	up    *upstream
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newFixture starts upstream, router and proxy on loopback. edit may
// adjust the options before the router is built.
func newFixture(t testing.TB, snap *Snapshot, upstreamHandler http.Handler, edit func(*Options)) *fixture {
	t.Helper()
	f := &fixture{rec: newRecorder(), up: newUpstream(t, upstreamHandler), logs: &syncBuffer{}}
	u, _ := url.Parse(f.up.URL)
	o := Options{
		Upstream: u,
		Routing:  DefaultRoutingConfig,
		Shadow:   DefaultShadowConfig,
		Proxy:    DefaultProxyConfig,
		Secret:   []byte("test-secret-0123456789"),
		Observe:  f.rec.observers(),
		Logger:   slog.New(slog.NewJSONHandler(f.logs, nil)),
	}
	if edit != nil {
		edit(&o)
	}
	rt, err := New(snap, o)
	if err != nil {
		t.Fatal(err)
	}
	f.rt = rt
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	f.proxy = httptest.NewServer(rt)
	t.Cleanup(f.proxy.Close)
	return f
}

// do sends a request through the proxy with a fixed request ID and returns
// the response with its body read.
func (f *fixture) do(t testing.TB, method, target, id string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.proxy.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if id != "" {
		req.Header.Set("X-Request-ID", id)
	}
	for k, v := range hdr {
		if k == "Host" { // the client sends req.Host, not a Host header
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

func newServer(t testing.TB, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func loadErr(path string) (*ruleset.Ruleset, error) { return ruleset.Load(path) }
