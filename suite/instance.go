package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Instance is a wafcanary proxy serving one ruleset on a loopback port,
// in front of the suite's Backend, that remembers what it recorded for each
// request ID.
type Instance struct {
	// Addr is the proxy's host:port.
	Addr string
	// Ruleset is the ruleset the proxy enforces.
	Ruleset *ruleset.Ruleset

	rec      *recorder
	proxy    *http.Server
	upstream *http.Server
}

// Proxy builds the proxy under test: rs enforcing alone, in front of
// upstream, telling observe of every request it has answered. The wiring
// passes wafcanary's own (router.Standalone); the suite never builds one.
type Proxy func(rs *ruleset.Ruleset, upstream *url.URL, observe func(verdict.RequestRecord)) (http.Handler, error)

// Start serves rs through proxy on loopback. rs must be compiled for the
// suite (see Compile); Start takes over its owner reference and retires
// it on Close. If Start fails, rs is still the caller's to retire.
func Start(rs *ruleset.Ruleset, proxy Proxy) (*Instance, error) {
	up, upAddr, err := serve(Backend())
	if err != nil {
		return nil, fmt.Errorf("suite backend: %w", err)
	}
	rec := newRecorder()
	rt, err := proxy(rs, &url.URL{Scheme: "http", Host: upAddr}, rec.ObserveRequest)
	if err != nil {
		_ = up.Close()
		return nil, err
	}
	px, addr, err := serve(rt)
	if err != nil {
		_ = up.Close()
		return nil, fmt.Errorf("suite proxy: %w", err)
	}
	return &Instance{Addr: addr, Ruleset: rs, rec: rec, proxy: px, upstream: up}, nil
}

// discardLog silences net/http's own complaints about the malformed
// requests the suite sends on purpose.
var discardLog = log.New(io.Discard, "", 0)

func serve(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: discardLog}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// Close stops the proxy and the backend and retires the ruleset.
func (i *Instance) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := errors.Join(i.proxy.Shutdown(ctx), i.upstream.Shutdown(ctx))
	i.Ruleset.Retire()
	return err
}

// record waits up to wait for what the proxy recorded for request id. The
// proxy reports a request after its response is written, so the client can
// be a little ahead.
func (i *Instance) record(id string, wait time.Duration) (verdict.RequestRecord, bool) {
	return i.rec.wait(id, wait)
}

// recorder is a router.Observer keeping each request's record until it is
// collected.
type recorder struct {
	mu      sync.Mutex
	records map[string]verdict.RequestRecord
	arrived chan struct{} // closed and replaced on every record
}

func newRecorder() *recorder {
	return &recorder{records: map[string]verdict.RequestRecord{}, arrived: make(chan struct{})}
}

func (r *recorder) ObserveRequest(rec verdict.RequestRecord) {
	r.mu.Lock()
	r.records[rec.ID] = rec
	close(r.arrived)
	r.arrived = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) wait(id string, wait time.Duration) (verdict.RequestRecord, bool) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		rec, ok := r.records[id]
		if ok {
			delete(r.records, id)
		}
		arrived := r.arrived
		r.mu.Unlock()
		if ok {
			return rec, true
		}
		select {
		case <-arrived:
		case <-deadline.C:
			return verdict.RequestRecord{}, false
		}
	}
}
