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
	"sync"
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

// Router is the engine's HTTP front-end: an http.Handler that proxies to
// the upstream under the WAF. It is safe for concurrent use.
type Router struct {
	engine *Engine
	proxy  *httputil.ReverseProxy
	opts   Options
}

// New returns a Router serving initial, with its Engine. Call Run to start
// shadow evaluation.
func New(initial *Snapshot, o Options) (*Router, error) {
	if o.Upstream == nil || o.Upstream.Scheme == "" || o.Upstream.Host == "" {
		return nil, errors.New("router: upstream must be an absolute URL")
	}
	if err := o.Proxy.Validate(); err != nil {
		return nil, fmt.Errorf("router: proxy.%w", err)
	}
	e, err := NewEngine(initial, EngineOptions{
		Routing: o.Routing, Shadow: o.Shadow, FailMode: o.Proxy.FailMode, InspectResponseBody: o.Proxy.InspectResponseBody,
		Secret: o.Secret, Observe: o.Observe, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	rt := &Router{engine: e, opts: o}
	rt.proxy = rt.newReverseProxy()
	return rt, nil
}

// Engine is the router's engine: the request path the HTTP front-end
// drives, and the routing state the controller swaps.
func (rt *Router) Engine() *Engine { return rt.engine }

// Snapshot returns the routing state in force (Engine.Snapshot).
func (rt *Router) Snapshot() *Snapshot { return rt.engine.Snapshot() }

// Swap installs next for every request that starts from now on
// (Engine.Swap).
func (rt *Router) Swap(next *Snapshot) error { return rt.engine.Swap(next) }

// Run evaluates shadow samples until ctx is done (Engine.Run).
func (rt *Router) Run(ctx context.Context) { rt.engine.Run(ctx) }

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
			p := proxiedFrom(pr.In.Context())
			if p.peerTrusted {
				// Keep the chain built by trusted proxies; SetXForwarded
				// appends this hop. From anyone else it is discarded.
				pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			} else {
				// An upstream may trust this for the client's address.
				// (Canonical spelling: Del would allocate it per request.)
				pr.Out.Header.Del("X-Real-Ip")
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
			setForwarded(pr, p.x.ID())
		},
		Transport:      transport,
		BufferPool:     &copyBuffers{},
		ModifyResponse: rt.modifyResponse,
		ErrorHandler:   rt.proxyError,
		ErrorLog:       slog.NewLogLogger(rt.engine.log.Handler(), slog.LevelDebug),
	}
}

// setForwarded does what pr.SetXForwarded does (X-Forwarded-For,
// X-Forwarded-Host, X-Forwarded-Proto) and sets X-Request-Id to id, with
// the four values in one allocation where setting each is one: the value
// slices share one array, each capped at its own element, so an append
// to one copies it rather than overwrite the next. A test holds it to
// SetXForwarded.
func setForwarded(pr *httputil.ProxyRequest, id string) {
	h := pr.Out.Header
	vs := make([]string, 4)
	if clientIP, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			clientIP = strings.Join(prior, ", ") + ", " + clientIP
		}
		vs[0] = clientIP
		h["X-Forwarded-For"] = vs[0:1:1]
	} else {
		delete(h, "X-Forwarded-For")
	}
	vs[1] = pr.In.Host
	h["X-Forwarded-Host"] = vs[1:2:2]
	vs[2] = "http"
	if pr.In.TLS != nil {
		vs[2] = "https"
	}
	h["X-Forwarded-Proto"] = vs[2:3:3]
	vs[3] = id
	h[requestIDHeader] = vs[3:4:4]
}

// copyBufferSize is the size of the buffers the reverse proxy copies
// response bodies through: its own default.
const copyBufferSize = 32 << 10

// copyBuffers lends the reverse proxy its copy buffers, which it would
// otherwise allocate afresh for every response (32 KB each, about a tenth
// of what a request allocates in all). A buffer only ever holds bytes on
// their way to one client, and the proxy writes out only what it read
// into it, so reuse leaks nothing between responses. It is safe for
// concurrent use.
type copyBuffers struct{ pool sync.Pool }

var _ httputil.BufferPool = (*copyBuffers)(nil)

// Get returns a buffer of copyBufferSize bytes.
func (c *copyBuffers) Get() []byte {
	if b, ok := c.pool.Get().(*[copyBufferSize]byte); ok {
		return b[:]
	}
	return new([copyBufferSize]byte)[:]
}

// Put takes back a buffer Get returned. The pool holds array pointers, so
// giving one back allocates nothing (a *[]byte would be a new pointer
// each time).
func (c *copyBuffers) Put(b []byte) {
	if len(b) == copyBufferSize {
		c.pool.Put((*[copyBufferSize]byte)(b))
	}
}
