package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// exchange is one request's state, shared by ServeHTTP and the reverse
// proxy's hooks through the request context.
type exchange struct {
	id          string
	arm         verdict.Arm
	rs          *ruleset.Ruleset
	tx          types.Transaction // nil when failing open after an error
	sw          stopwatch
	peerTrusted bool
	req         *verdict.Request // what Coraza was fed, for the block's log line

	blocked     bool // a response phase interrupted
	dropped     bool // a response phase dropped the connection
	failed      bool // a response phase failed to process
	upstreamErr bool
	clientGone  bool
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// ServeHTTP judges the request with the ruleset of its arm and, if allowed,
// proxies it.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	id := rt.ids.of(r)
	if why, code := rt.admit(r); why != verdict.NotRefused {
		rt.refuse(sw, r, id, why, code, start)
		return
	}
	clientIP, clientPort, peerTrusted := rt.clients.resolve(r)
	snap, arm, rs, outside := rt.pick(r, clientIP)
	ex := &exchange{id: id, arm: arm, rs: rs, peerTrusted: peerTrusted}
	rec := verdict.RequestRecord{ID: id, Arm: arm, Outside: outside}

	tx := rs.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: id, Context: r.Context()})
	ex.tx = tx
	var sample *capture
	defer func() {
		// Runs on every exit, including the panic net/http uses to abort a
		// response (drop, or a copy error once headers are out).
		p := recover()
		if p != nil && r.Context().Err() == nil && !ex.dropped && rec.Action != verdict.Blocked {
			ex.upstreamErr = true // the upstream broke off mid-response
		}
		rt.finish(ex, tx, r, &rec, sw.status, start)
		rs.Release()
		rt.offerShadow(sample)
		if p != nil {
			panic(p)
		}
	}()

	view := verdict.RequestOf(r, id, clientIP, clientPort)
	ex.req = &view
	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody {
		body = r.Body
	}
	it, replay, err := rt.inspectRequest(ex, &view, body)
	if err == nil && !outside {
		sample = rt.captureShadow(snap, ex, &view, body, it)
	}

	switch {
	case errors.Is(err, verdict.ErrClientBody):
		rec.Action = verdict.Error
		rt.log.Info("client broke off request body", "request_id", id, "error", err)
		http.Error(sw, "bad request", http.StatusBadRequest)
		return
	case err != nil:
		rec.Action = verdict.Error
		rt.log.Error("waf processing failed", "request_id", id, "arm", arm.String(), "fail_mode", rt.opts.Proxy.FailMode, "error", err)
		if rt.opts.Proxy.FailMode != FailOpen {
			writeStatus(sw, id, http.StatusInternalServerError)
			return
		}
		ex.tx = nil // fail open: no more phases for this request
		if replay == nil {
			replay = failOpenBody(tx, body)
		}
	case it != nil:
		rec.Action = verdict.Blocked
		rt.interrupt(sw, r, id, it)
		return
	}

	out := r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	if replay != nil {
		out.Body = io.NopCloser(replay)
	}
	rt.proxy.ServeHTTP(sw, out)
	switch {
	case ex.blocked:
		rec.Action, rec.BlockedInResponse = verdict.Blocked, true
	case ex.failed:
		rec.Action = verdict.Error
	}
}

// inspectRequest runs phases 1 and 2, timed. A panic inside Coraza comes
// back as a processing error, so the fail mode decides, not the server's
// recover.
func (rt *Router) inspectRequest(ex *exchange, v *verdict.Request, body io.Reader) (*types.Interruption, io.Reader, error) {
	start := time.Now()
	defer ex.sw.since(start)
	return verdict.RequestPhases(ex.tx, ex.rs, v, body)
}

// failOpenBody rebuilds the upstream body after a processing error: what
// Coraza had buffered, then the rest. Best effort by nature.
func failOpenBody(tx types.Transaction, body io.Reader) io.Reader {
	if body == nil {
		return nil
	}
	if buffered, err := tx.RequestBodyReader(); err == nil {
		return io.MultiReader(buffered, body)
	}
	return body
}

// finish runs the logging phase, copies the verdict out of the transaction,
// closes it, and reports the request.
func (rt *Router) finish(ex *exchange, tx types.Transaction, r *http.Request, rec *verdict.RequestRecord, status int, start time.Time) {
	t := time.Now()
	func() {
		defer func() { _ = recover() }() // a failing logging phase must not lose the record
		tx.ProcessLogging()
	}()
	ex.sw.since(t)
	rec.Verdict = verdict.Of(tx)
	var block *verdict.Block
	if rec.Action == verdict.Blocked && len(rt.obs.Blocks) > 0 && ex.req != nil {
		block = blockOf(tx, ex, rt.blockBody)
	}
	_ = tx.Close() // only fails removing temporary body files, which it logs itself
	rec.Status = status
	if ex.clientGone {
		rec.Status = 0
	}
	rec.UpstreamError = ex.upstreamErr
	rec.WAFDuration = ex.sw.total
	rec.Duration = time.Since(start)
	rt.obs.request(*rec)
	if block != nil {
		block.Record = *rec
		rt.obs.block(*block)
	}
	if rec.Action == verdict.Blocked {
		rt.logVerdict("request blocked", ex.req, rec.Arm, ex.rs.Version, "enforce", rec.Verdict)
	}
}

// maxBlockBody is the most of a blocked request's body ever copied for
// its observers.
const maxBlockBody = 1 << 20

// blockOf copies a blocked request out of its transaction, before Close,
// with at most limit bytes of its body.
func blockOf(tx types.Transaction, ex *exchange, limit int) *verdict.Block {
	b := &verdict.Block{Request: ex.req.Clone(), Version: ex.rs.Version, Time: time.Now()}
	if limit > 0 && tx.IsRequestBodyAccessible() {
		if r, err := tx.RequestBodyReader(); err == nil {
			data, _ := io.ReadAll(io.LimitReader(r, int64(limit)+1))
			if len(data) > limit {
				data, b.BodyTruncated = data[:limit], true
			}
			b.Body = data
		}
	}
	return b
}

// logVerdict writes a block's log line: which site and which client, so
// "who was blocked?" needs no other log, and the query's parameter names
// (never their values, which can be secrets) beside the rules that fired.
func (rt *Router) logVerdict(msg string, req *verdict.Request, arm verdict.Arm, version, mode string, v verdict.Verdict) {
	rt.log.Warn(msg,
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
	switch it.Action {
	case "drop":
		drop(w)
	case "redirect":
		code := it.Status
		if code < 300 || code > 399 {
			code = http.StatusFound
		}
		w.Header().Set("X-Request-ID", id)
		http.Redirect(w, r, it.Data, code)
	default: // deny, and any action we do not know: block rather than pass
		writeStatus(w, id, denyStatus(it))
	}
}

func denyStatus(it *types.Interruption) int {
	if it.Status >= 400 && it.Status <= 599 {
		return it.Status
	}
	return http.StatusForbidden
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
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Request-ID", id)
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s\nrequest id: %s\n", code, http.StatusText(code), id)
}

// proxyError handles everything the reverse proxy could not deliver.
func (rt *Router) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeFrom(r.Context())
	switch {
	case errors.Is(err, errDropResponse):
		ex.dropped = true
		drop(w)
		return
	case r.Context().Err() != nil:
		// The client went away; nobody is left to answer, and it says
		// nothing about the upstream.
		ex.clientGone = true
		return
	}
	ex.upstreamErr = true
	code := http.StatusBadGateway
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		code = http.StatusGatewayTimeout
	}
	rt.log.Warn("upstream error", "request_id", ex.id, "arm", ex.arm.String(), "status", code, "error", err)
	writeStatus(w, ex.id, code)
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

// stopwatch sums the time spent inside Coraza across a request's phases.
type stopwatch struct{ total time.Duration }

func (s *stopwatch) since(start time.Time) { s.total += time.Since(start) }
