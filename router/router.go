// Package router is wafcanary's request path: a reverse proxy that judges
// every request with one of two compiled rulesets (baseline or candidate),
// chosen by a sticky, keyed hash of the client, and evaluates a sample of
// requests with the other ruleset in shadow.
package router

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Options configure a Router.
type Options struct {
	// Upstream is the application behind the proxy.
	Upstream *url.URL
	Routing  RoutingConfig
	Shadow   ShadowConfig
	Proxy    ProxyConfig
	// Secret keys the sticky assignment; see RoutingConfig.HashSecret.
	Secret []byte
	// Observe lists who is told of requests, shadow pairs and what serves.
	Observe Observers
	// Logger receives block, disagreement and error events. Required.
	Logger *slog.Logger
	// Transport reaches the upstream; nil means one built from Proxy.
	Transport http.RoundTripper
}

// Router is an http.Handler that proxies to the upstream under the WAF.
// It is safe for concurrent use. The routing state is one Snapshot read
// once per request; Swap replaces it for all requests that start after.
type Router struct {
	snap    atomic.Pointer[Snapshot]
	assign  Assigner
	sticky  stickyKey
	clients clientAddr
	ids     *requestIDs
	proxy   *httputil.ReverseProxy
	shadow  chan *capture
	// queued is the size of the samples in shadow, against
	// Shadow.QueueBytes.
	queued atomic.Int64
	// blockBody is how much of a blocked request's body its observers want.
	blockBody int
	opts      Options
	obs       Observers
	log       *slog.Logger
}

// New returns a Router serving initial. Call Run to start shadow evaluation.
func New(initial *Snapshot, o Options) (*Router, error) {
	if o.Upstream == nil || o.Upstream.Scheme == "" || o.Upstream.Host == "" {
		return nil, errors.New("router: upstream must be an absolute URL")
	}
	if o.Logger == nil {
		return nil, errors.New("router: a logger is required")
	}
	if len(o.Secret) < 16 {
		return nil, errors.New("router: assignment secret must be at least 16 bytes")
	}
	sections := []struct {
		name string
		v    interface{ Validate() error }
	}{{"routing", o.Routing}, {"shadow", o.Shadow}, {"proxy", o.Proxy}}
	for _, s := range sections { // a slice, so "the first invalid key" is always the same one
		if err := s.v.Validate(); err != nil {
			return nil, fmt.Errorf("router: %s.%w", s.name, err)
		}
	}
	sticky, _ := parseStickyKey(o.Routing.StickyKey)      // validated above
	clients, _ := newClientAddr(o.Routing.TrustedProxies) // validated above
	rt := &Router{
		assign:    NewAssigner(o.Secret),
		sticky:    sticky,
		clients:   clients,
		ids:       newRequestIDs(recentIDs),
		shadow:    make(chan *capture, o.Shadow.QueueSize),
		opts:      o,
		obs:       o.Observe,
		blockBody: o.Observe.blockBody(),
		log:       o.Logger,
	}
	rt.proxy = rt.newReverseProxy()
	if err := rt.Swap(initial); err != nil {
		return nil, err
	}
	return rt, nil
}

// RequestFunc is a RequestObserver made of a function.
type RequestFunc func(verdict.RequestRecord)

// ObserveRequest calls f.
func (f RequestFunc) ObserveRequest(r verdict.RequestRecord) { f(r) }

// Standalone returns a Router enforcing rs alone in front of upstream,
// with the default configuration and a random secret, telling observe of
// each request and logging nothing: the proxy the CRS regression suite
// runs through (suite.Proxy). It never samples shadow pairs, so Run need
// not be called.
func Standalone(rs *ruleset.Ruleset, upstream *url.URL, observe func(verdict.RequestRecord)) (http.Handler, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	rt, err := New(&Snapshot{Baseline: rs}, Options{
		Upstream: upstream,
		Routing:  DefaultRoutingConfig,
		Shadow:   DefaultShadowConfig,
		Proxy:    DefaultProxyConfig,
		Secret:   secret,
		Observe:  Observers{Requests: []RequestObserver{RequestFunc(observe)}},
		// The suite sends attacks on purpose: block and error lines
		// would only be noise. Outcomes are read from the observer.
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err // not a nil *Router in a non-nil interface
	}
	return rt, nil
}

// Snapshot returns the routing state in force.
func (rt *Router) Snapshot() *Snapshot { return rt.snap.Load() }

// Swap installs next for every request that starts from now on. Requests
// in flight finish on the rulesets they started with; rulesets that next
// no longer uses are retired and closed when their last request ends. If
// next is invalid nothing changes.
func (rt *Router) Swap(next *Snapshot) error {
	if err := next.Validate(); err != nil {
		return fmt.Errorf("router: refusing snapshot: %w", err)
	}
	rt.compare(rt.snap.Load(), next)
	prev := rt.snap.Swap(next)
	for _, rs := range prev.retiredBy(next) {
		rs.Retire()
	}
	rt.obs.serving(next.Serving())
	return nil
}

// compare sets next's difference between candidate and baseline, taken
// over from prev for the same pair: a rollout's steps swap snapshots
// that differ only in shares. It runs before next is installed.
func (rt *Router) compare(prev, next *Snapshot) {
	switch {
	case next.Candidate == nil || rt.opts.Shadow.FullEvaluation:
		return
	case next.diff != nil && next.diff.baseline == next.Baseline && next.diff.candidate == next.Candidate:
		return
	case prev != nil && prev.diff != nil && prev.diff.baseline == next.Baseline && prev.diff.candidate == next.Candidate:
		next.diff = prev.diff
		return
	}
	d := ruleset.Compare(next.Baseline, next.Candidate)
	next.diff = &difference{baseline: next.Baseline, candidate: next.Candidate, Difference: d}
	rt.log.Info("candidate compared with the baseline for shadow evaluation",
		"baseline", next.Baseline.Version, "candidate", next.Candidate.Version, "difference", d.String())
}

// Run evaluates shadow samples until ctx is done.
func (rt *Router) Run(ctx context.Context) {
	done := make(chan struct{})
	for range rt.opts.Shadow.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			rt.shadowWorker(ctx)
		}()
	}
	for range rt.opts.Shadow.Workers {
		<-done
	}
	// Give back the references held by samples nobody will evaluate.
	for {
		select {
		case c := <-rt.shadow:
			c.other.Release()
			rt.queued.Add(-c.size)
		default:
			return
		}
	}
}

// pick chooses the arm for a request and takes a reference on its ruleset.
// The bucket is computed once; only the snapshot is re-read if a swap
// closed the ruleset between loading the snapshot and acquiring it.
// outside is set for a request on a host the rollout does not judge.
func (rt *Router) pick(r *http.Request, clientIP string) (s *Snapshot, arm verdict.Arm, rs *ruleset.Ruleset, outside bool) {
	bucket := rt.assign.Bucket(rt.sticky.of(r, clientIP))
	for {
		s = rt.snap.Load()
		// A snapshot's share is above zero only with a candidate (Validate).
		arm = armOf(bucket, s.Share)
		outside = s.Candidate != nil && !s.judges(r.Host)
		if outside {
			arm = verdict.Baseline
		}
		if rs = s.Ruleset(arm); rs.Acquire() {
			return s, arm, rs, outside
		}
	}
}

func (rt *Router) newReverseProxy() *httputil.ReverseProxy {
	transport := rt.opts.Transport
	if transport == nil {
		transport = &http.Transport{
			Proxy:                 nil, // the upstream is configured, never taken from the environment
			DialContext:           (&net.Dialer{Timeout: rt.opts.Proxy.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: rt.opts.Proxy.ResponseHeaderTimeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	up := rt.opts.Upstream
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			if rt.opts.Proxy.PreserveHost {
				pr.Out.Host = pr.In.Host
			}
			ex := exchangeFrom(pr.In.Context())
			if ex.peerTrusted {
				// Keep the chain built by trusted proxies; SetXForwarded
				// appends this hop. From anyone else it is discarded.
				pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			} else {
				// An upstream may trust this for the client's address.
				pr.Out.Header.Del("X-Real-IP")
			}
			// An h2c upgrade would turn the connection into HTTP/2 the
			// upstream speaks directly with the client: every request
			// after it would pass without the WAF. Other upgrades
			// (WebSocket) are judged at their handshake like any request.
			if strings.EqualFold(strings.TrimSpace(pr.Out.Header.Get("Upgrade")), "h2c") {
				pr.Out.Header.Del("Upgrade")
				pr.Out.Header.Del("Http2-Settings")
				pr.Out.Header.Del("Connection")
			}
			// Trailers arrive after the body, when the verdict is taken:
			// nothing judged them, so nothing forwards them (admit).
			pr.Out.Trailer = nil
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Request-ID", ex.id)
		},
		Transport:      transport,
		ModifyResponse: rt.modifyResponse,
		ErrorHandler:   rt.proxyError,
		ErrorLog:       slog.NewLogLogger(rt.log.Handler(), slog.LevelDebug),
	}
}
