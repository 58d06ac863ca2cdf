package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/verdict"
)

// proxied is what the reverse proxy's hooks need of a request in
// flight, shared with ServeHTTP through the request's context.
type proxied struct {
	x           *Exchange
	peerTrusted bool

	dropped     bool // a response phase dropped the connection
	upstreamErr bool
	clientGone  bool
}

type proxiedKey struct{}

// inflight is all ServeHTTP allocates of its own for a request, in one
// piece rather than four: the status writer, the request as Coraza is
// fed it, the exchange, and what the proxy's hooks read. It lives as long
// as any of them is referenced, which is until the handler returns:
// observers copy what they keep (RequestSampler, BlockObserver).
type inflight struct {
	sw   statusWriter
	view verdict.Request
	x    Exchange
	p    proxied
	body nopCloser // the upstream's body, when Coraza read some of it
}

// nopCloser is io.NopCloser for a reader without WriteTo, kept in
// inflight rather than allocated. Closing the request body is the
// server's business.
type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }

func proxiedFrom(ctx context.Context) *proxied {
	p, _ := ctx.Value(proxiedKey{}).(*proxied)
	return p
}

// ServeHTTP is the HTTP front-end of the engine (see Engine for the steps
// it maps onto): it refuses what the WAF and the upstream would read
// differently (admit), judges the request, carries out the verdict, and
// proxies what is allowed.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := rt.engine
	start := time.Now()
	in := &inflight{sw: statusWriter{ResponseWriter: w}}
	sw := &in.sw
	id := e.RequestID(r.Header)
	if why, code := rt.admit(r); why != verdict.NotRefused {
		rt.refuse(sw, r, id, why, code, start)
		return
	}
	c := e.Client(r.RemoteAddr, r.Header)
	in.view = verdict.RequestOf(r, id, c.IP, c.Port)
	x := &in.x
	e.begin(r.Context(), c, &in.view, x)
	in.p = proxied{x: x, peerTrusted: c.PeerTrusted}
	p := &in.p
	defer func() {
		// Runs on every exit, including the panic net/http uses to abort a
		// response (drop, or a copy error once headers are out).
		pv := recover()
		if pv != nil && r.Context().Err() == nil && !p.dropped && x.rec.Action != verdict.Blocked {
			p.upstreamErr = true // the upstream broke off mid-response
		}
		status := sw.status
		if p.clientGone {
			status = 0
		}
		x.Finish(Outcome{Status: status, UpstreamError: p.upstreamErr})
		if pv != nil {
			panic(pv)
		}
	}()

	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody {
		body = r.Body
	}
	it, replay, err := x.Request(body)
	switch {
	case errors.Is(err, verdict.ErrClientBody):
		http.Error(sw, "bad request", http.StatusBadRequest)
		return
	case err != nil:
		writeStatus(sw, id, http.StatusInternalServerError)
		return
	case it != nil:
		rt.interrupt(sw, r, id, it)
		return
	}
	out := r.WithContext(context.WithValue(r.Context(), proxiedKey{}, p))
	if replay != nil {
		in.body = nopCloser{replay}
		out.Body = &in.body
	}
	rt.proxy.ServeHTTP(sw, out)
}

// logVerdict writes a block's log line: which site and which client, so
// "who was blocked?" needs no other log, and the query's parameter names
// (never their values, which can be secrets) beside the rules that fired.
func (e *Engine) logVerdict(msg string, req *verdict.Request, arm verdict.Arm, version, mode string, v verdict.Verdict) {
	if !e.log.Enabled(context.Background(), slog.LevelWarn) {
		return // the attributes cost allocations even for a logger that drops them (the suite's)
	}
	e.log.Warn(msg,
		"request_id", req.ID, "arm", arm.String(), "version", version, "mode", mode,
		"method", req.Method, "host", req.Host, "path", pathOf(req.URI), "query_params", queryParams(req.URI),
		"client", req.ClientIP,
		"action", v.Action, "status", v.Status, "rule_id", v.RuleID,
		"rule_ids", v.RuleIDs(), "rules", v.Rules, "inbound_anomaly_score", v.InboundScore)
}

// Bounds of the parameter names a log line lists: a request can carry
// thousands, and a name is the client's to choose.
const (
	maxLoggedParams    = 32
	maxLoggedParamName = 64
)

// paramName is what a parameter name looks like; anything else in a
// query (a bare token, ?token%3Dabc) could be a secret and is only
// counted.
var paramName = regexp.MustCompile(`^[A-Za-z0-9_.\[\]-]+$`)

// queryParams returns the names of the query's name=value parameters,
// sorted, each once, bounded in number and length; other parts are
// counted, never shown.
func queryParams(uri string) []string {
	_, q, ok := strings.Cut(uri, "?")
	if !ok || q == "" {
		return nil
	}
	q, _, _ = strings.Cut(q, "#")
	var names []string
	other := 0
	for _, p := range strings.Split(q, "&") {
		if p == "" {
			continue
		}
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil || !hasValue || !paramName.MatchString(name) {
			other++
			continue
		}
		if len(name) > maxLoggedParamName {
			name = name[:maxLoggedParamName] + "..."
		}
		names = append(names, name)
	}
	sort.Strings(names)
	names = slices.Compact(names)
	if len(names) > maxLoggedParams {
		other += len(names) - maxLoggedParams
		names = names[:maxLoggedParams]
	}
	if other > 0 {
		names = append(names, fmt.Sprintf("(%d other)", other))
	}
	return names
}

// interrupt carries out a request-phase interruption.
func (rt *Router) interrupt(w http.ResponseWriter, r *http.Request, id string, it *types.Interruption) {
	switch action, status := Enforce(it); action {
	case "drop":
		drop(w)
	case "redirect":
		w.Header().Set(requestIDHeader, id)
		http.Redirect(w, r, it.Data, status)
	default:
		writeStatus(w, id, status)
	}
}

// Enforce is what carrying out an interruption means, for every
// front-end: the action, "deny", "drop" or "redirect" (any action not
// known blocks as a deny rather than passes), and the status the client
// gets: a deny's is the rule's if it is an error status, else 403; a
// redirect's the rule's if it is a redirection, else 302; a drop sends
// none (0).
func Enforce(it *types.Interruption) (action string, status int) {
	switch it.Action {
	case "drop":
		return "drop", 0
	case "redirect":
		if it.Status >= 300 && it.Status <= 399 {
			return "redirect", it.Status
		}
		return "redirect", http.StatusFound
	}
	if it.Status >= 400 && it.Status <= 599 {
		return "deny", it.Status
	}
	return "deny", http.StatusForbidden
}

// drop closes the client connection without a response. HTTP/1 connections
// are hijacked and closed; where that is impossible (HTTP/2) the handler
// aborts, which resets the stream.
func drop(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// writeStatus sends a short plain-text page that carries the request ID, so
// a blocked user has something to quote to support.
func writeStatus(w http.ResponseWriter, id string, code int) {
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	page := statusPage(code, id)
	for k, v := range pageHeader(id) {
		h[k] = v
	}
	w.WriteHeader(code)
	io.WriteString(w, page)
}

// statusPage is the page every refusal and block answers with, in a
// request or a response phase: the status and the request ID.
func statusPage(code int, id string) string {
	return fmt.Sprintf("%d %s\nrequest id: %s\n", code, http.StatusText(code), id)
}

// pageHeader is the status page's header: nothing of the upstream's
// (its cookies), nothing to sniff, nothing to cache.
func pageHeader(id string) http.Header {
	return http.Header{
		"Content-Type":           {"text/plain; charset=utf-8"},
		"X-Content-Type-Options": {"nosniff"},
		"Cache-Control":          {"no-store"},
		requestIDHeader:          {id},
	}
}

// proxyError handles everything the reverse proxy could not deliver.
func (rt *Router) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	p := proxiedFrom(r.Context())
	switch {
	case errors.Is(err, errDropResponse):
		p.dropped = true
		drop(w)
		return
	case r.Context().Err() != nil:
		// The client went away; nobody is left to answer, and it says
		// nothing about the upstream.
		p.clientGone = true
		return
	}
	p.upstreamErr = true
	code := http.StatusBadGateway
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		code = http.StatusGatewayTimeout
	}
	rt.engine.log.Warn("upstream error", "request_id", p.x.ID(), "arm", p.x.Arm().String(), "status", code, "error", err)
	writeStatus(w, p.x.ID(), code)
}

// statusWriter remembers the status sent. Unwrap lets
// http.ResponseController reach Flush and Hijack underneath, which the
// reverse proxy uses for streaming and upgrades.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
