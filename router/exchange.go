package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Exchange is one request going through the engine, from Begin to
// Finish (see Engine for the steps). It belongs to the front-end's
// goroutine handling the request and is not safe for concurrent use.
type Exchange struct {
	e       *Engine
	start   time.Time
	snap    *Snapshot
	arm     verdict.Arm
	outside bool
	rs      *ruleset.Ruleset
	tx      types.Transaction // nil once failing open after an error
	opened  types.Transaction // the transaction opened, closed by Finish
	req     *verdict.Request
	sw      stopwatch
	sample  *sample
	offers  []func() // from the RequestSamplers, called by Finish
	rec     verdict.RequestRecord
	done    bool
}

// ErrFailed is a request or response Coraza could not process while the
// fail mode is closed: the front-end answers it with an error (500), and
// forwards nothing.
var ErrFailed = errors.New("the WAF failed to process it (fail_mode closed)")

// ErrUpstreamBody is a response body the upstream broke off while Coraza
// read it: an upstream failure, not the WAF's.
var ErrUpstreamBody = errors.New("reading upstream response body")

// Begin starts req from client c: it picks the arm, takes a reference on
// its ruleset and opens the transaction (named req.ID). The front-end
// must call Finish exactly once, whatever happens after.
func (e *Engine) Begin(ctx context.Context, c Client, req *verdict.Request) *Exchange {
	x := &Exchange{}
	e.begin(ctx, c, req, x)
	return x
}

// begin is Begin into x, for a front-end that allocates the exchange
// with the rest of its per-request state (Router.ServeHTTP).
func (e *Engine) begin(ctx context.Context, c Client, req *verdict.Request, x *Exchange) {
	snap, arm, rs, outside := e.pick(c, req.Host)
	*x = Exchange{e: e, start: time.Now(), snap: snap, arm: arm, outside: outside, rs: rs, req: req,
		rec: verdict.RequestRecord{ID: req.ID, Arm: arm, Outside: outside}}
	x.opened = rs.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: req.ID, Context: ctx})
	x.tx = x.opened
}

// Arm is the arm whose ruleset judges the request.
func (x *Exchange) Arm() verdict.Arm { return x.arm }

// Outside reports whether the request is on a host the rollout does not
// judge: the baseline serves it, and it is not evidence.
func (x *Exchange) Outside() bool { return x.outside }

// ID is the request's ID.
func (x *Exchange) ID() string { return x.req.ID }

// Record is the request's record as the observers are told it: complete
// once Finish has run.
func (x *Exchange) Record() verdict.RequestRecord { return x.rec }

// Version is the version of the ruleset that judges the request.
func (x *Exchange) Version() string { return x.rs.Version }

// Request runs phases 1 and 2 on the request's headers and body (nil for
// none) and, when a verdict is reached, samples the request for shadow
// evaluation. It returns the interruption to carry out (the request is
// then not forwarded), or the body to forward instead of the original:
// what Coraza buffered followed by the rest, byte for byte (nil when
// there was no body to read). Errors: verdict.ErrClientBody (the client
// broke off its body: answer 400) and ErrFailed (fail mode closed: answer
// 500). When failing open it returns no error and the body as far as it
// can be rebuilt, and the request counts as an error.
func (x *Exchange) Request(body io.Reader) (*types.Interruption, io.Reader, error) {
	start := time.Now()
	it, replay, err := verdict.RequestPhases(x.tx, x.rs, x.req, body)
	x.sw.since(start)
	if err == nil && !x.outside {
		x.sample = x.e.sampleShadow(x.snap, x, body, it)
	}
	if err == nil && x.arm == verdict.Baseline {
		for _, s := range x.e.obs.Samplers {
			if offer := s.SampleRequest(x.rs, x.tx, x.req, it != nil); offer != nil {
				x.offers = append(x.offers, offer)
			}
		}
	}
	switch {
	case errors.Is(err, verdict.ErrClientBody):
		x.rec.Action = verdict.Error
		x.e.log.Info("client broke off request body", "request_id", x.req.ID, "error", err)
		return nil, nil, err
	case err != nil:
		x.rec.Action = verdict.Error
		x.e.log.Error("waf processing failed", "request_id", x.req.ID, "arm", x.arm.String(), "fail_mode", x.e.opts.FailMode, "error", err)
		if x.e.opts.FailMode != FailOpen {
			return nil, nil, fmt.Errorf("%w: %w", ErrFailed, err)
		}
		tx := x.tx
		x.tx = nil // fail open: no more phases for this request
		if replay == nil {
			replay = failOpenBody(tx, body)
		}
		return nil, replay, nil
	case it != nil:
		x.rec.Action = verdict.Blocked
	}
	return it, replay, nil
}

// failOpenBody rebuilds the upstream body after a processing error: what
// Coraza had buffered, then the rest. Best effort by nature.
func failOpenBody(tx types.Transaction, body io.Reader) io.Reader {
	if body == nil {
		return nil
	}
	if buffered, err := tx.RequestBodyReader(); err == nil {
		return &verdict.Replay{Buffered: buffered, Rest: body}
	}
	return body
}

// Response runs phases 3 and 4 on the upstream's answer before any of it
// reaches the client: its status, protocol, headers and body. It returns
// the interruption to carry out instead of the response, or the body to
// send instead of the original (what Coraza buffered, then the rest; the
// original when it read none). Only bodies the ruleset can inspect, of
// the MIME types it lists, are buffered, and only with
// InspectResponseBody. Errors: ErrUpstreamBody (the upstream broke off)
// and ErrFailed (fail mode closed: answer 500). After a request-phase
// failure while failing open, it does nothing.
func (x *Exchange) Response(status int, proto string, header http.Header, body io.ReadCloser) (*types.Interruption, io.ReadCloser, error) {
	if x.tx == nil {
		return nil, body, nil
	}
	start := time.Now()
	defer x.sw.since(start)
	it, fwd, err := x.responsePhases(status, proto, header, body)
	switch {
	case errors.Is(err, ErrUpstreamBody):
		x.rec.UpstreamError = true
		return nil, nil, err
	case err != nil:
		x.rec.Action = verdict.Error
		x.e.log.Error("waf processing failed", "request_id", x.req.ID, "arm", x.arm.String(), "phase", "response", "fail_mode", x.e.opts.FailMode, "error", err)
		if x.e.opts.FailMode == FailOpen {
			return nil, body, nil
		}
		return nil, nil, fmt.Errorf("%w: %w", ErrFailed, err)
	case it != nil:
		x.rec.Action, x.rec.BlockedInResponse = verdict.Blocked, true
		return it, nil, nil
	}
	return nil, fwd, nil
}

func (x *Exchange) responsePhases(status int, proto string, header http.Header, body io.ReadCloser) (it *types.Interruption, fwd io.ReadCloser, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("coraza panicked: %v", p)
		}
	}()
	tx := x.tx
	for k, vs := range header {
		for _, v := range vs {
			tx.AddResponseHeader(k, v)
		}
	}
	if it = tx.ProcessResponseHeaders(status, proto); it != nil {
		return it, nil, nil
	}
	fwd = body
	// Only bodies the ruleset can inspect are buffered, up to its limit;
	// the rest (SSE, downloads, binary types) stream straight through.
	if x.e.opts.InspectResponseBody && body != nil && tx.IsResponseBodyAccessible() && tx.IsResponseBodyProcessable() {
		rb := &responseBody{track: verdict.TrackingReader{R: body}, Closer: body}
		upstream := &rb.track
		it, _, err := tx.ReadResponseBodyFrom(upstream)
		if upstream.Err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrUpstreamBody, upstream.Err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("buffering response body: %w", err)
		}
		if it != nil {
			return it, nil, nil
		}
		buffered, err := tx.ResponseBodyReader()
		if err != nil {
			return nil, nil, fmt.Errorf("replaying response body: %w", err)
		}
		rb.replay = verdict.Replay{Buffered: buffered, Rest: body}
		fwd = rb
	}
	it, err = tx.ProcessResponseBody()
	if err != nil {
		return nil, nil, fmt.Errorf("processing response body: %w", err)
	}
	return it, fwd, nil
}

// responseBody is the readers an upstream's body goes through, allocated
// together: the error tracker Coraza reads through, then what the client
// gets (the replay of Coraza's buffer and the rest), closed as the
// upstream's body.
type responseBody struct {
	track  verdict.TrackingReader
	replay verdict.Replay
	io.Closer
}

func (b *responseBody) Read(p []byte) (int, error) { return b.replay.Read(p) }

// Outcome is what happened to a request outside the engine, as the
// front-end saw it.
type Outcome struct {
	// Status is the status the client was sent; 0 when it got none (it
	// left first, or the connection was dropped).
	Status int
	// UpstreamError is set when the upstream could not be reached or
	// broke off; a client that went away is not an upstream error.
	UpstreamError bool
}

// Finish ends the exchange, on every path and exactly once: it runs the
// logging phase, copies the verdict out of the transaction and closes it,
// tells the observers of the request (and of a block, with the request
// as Coraza saw it), logs a block, gives back the ruleset, and offers the
// shadow sample. Calling it again does nothing.
func (x *Exchange) Finish(o Outcome) {
	if x.done {
		return
	}
	x.done = true
	e, tx := x.e, x.opened
	t := time.Now()
	func() {
		defer func() { _ = recover() }() // a failing logging phase must not lose the record
		tx.ProcessLogging()
	}()
	x.sw.since(t)
	rec := &x.rec
	rec.Verdict = verdict.Of(tx)
	var block *verdict.Block
	if rec.Action == verdict.Blocked && len(e.obs.Blocks) > 0 {
		block = blockOf(tx, x, e.blockBody)
	}
	_ = tx.Close() // only fails removing temporary body files, which it logs itself
	rec.Status = o.Status
	rec.UpstreamError = rec.UpstreamError || o.UpstreamError
	rec.WAFDuration = x.sw.total
	rec.Duration = time.Since(x.start)
	e.obs.request(*rec)
	if block != nil {
		block.Record = *rec
		e.obs.block(*block)
	}
	if rec.Action == verdict.Blocked {
		e.logVerdict("request blocked", x.req, rec.Arm, x.rs.Version, "enforce", rec.Verdict)
	}
	x.rs.Release()
	e.offerShadow(x.sample)
	for _, offer := range x.offers {
		offer()
	}
}

// maxBlockBody is the most of a blocked request's body ever copied for
// its observers.
const maxBlockBody = 1 << 20

// blockOf copies a blocked request out of its transaction, before Close,
// with at most limit bytes of its body.
func blockOf(tx types.Transaction, x *Exchange, limit int) *verdict.Block {
	b := &verdict.Block{Request: x.req.Clone(), Version: x.rs.Version, Time: time.Now()}
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

// stopwatch sums the time spent inside Coraza across a request's phases.
type stopwatch struct{ total time.Duration }

func (s *stopwatch) since(start time.Time) { s.total += time.Since(start) }
