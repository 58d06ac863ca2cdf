package router

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/ruleset"
)

// capture is a sampled request waiting for the other ruleset's verdict.
// It owns copies of everything it needs, and a reference on the ruleset
// it will be judged by.
type capture struct {
	view      requestView
	body      []byte
	path      string
	enforcing Arm
	verdict   Verdict // the enforcing ruleset's request-phase verdict
	snap      *Snapshot
	other     *ruleset.Ruleset
	// size is what the capture holds, counted against Shadow.QueueBytes.
	size int64
}

// captureShadow samples the request for shadow evaluation and copies what
// the other ruleset needs, while the transaction still holds the body.
// Verdicts are compared on the request phases only, since the shadow
// ruleset never sees a response. A nil capture means not sampled.
func (rt *Router) captureShadow(snap *Snapshot, ex *exchange, v *requestView, body io.Reader, it *types.Interruption) *capture {
	if snap.Candidate == nil || snap.ShadowSample == 0 || ex.tx == nil {
		return nil
	}
	if snap.ShadowSample < MaxShare && rand.Uint32N(uint32(MaxShare)) >= uint32(snap.ShadowSample) {
		return nil
	}
	var data []byte
	if body != nil {
		var ok bool
		if data, ok = rt.captureBody(ex.tx, it != nil); !ok {
			rt.obs.ShadowDropped()
			return nil
		}
	}
	other := snap.Ruleset(ex.arm.Other())
	if !other.Acquire() {
		return nil // swapped out since this request started; nothing left to compare
	}
	c := &capture{
		view:      *v,
		body:      data,
		path:      pathOf(v.uri),
		enforcing: ex.arm,
		verdict:   verdictOf(ex.tx),
		snap:      snap,
		other:     other,
	}
	c.view.header = v.header.Clone()
	c.view.transferEncoding = append([]string(nil), v.transferEncoding...)
	c.size = int64(len(data) + len(v.uri))
	for k, vs := range c.view.header {
		for _, hv := range vs {
			c.size += int64(len(k) + len(hv))
		}
	}
	return c
}

// offerShadow queues a capture for the shadow workers. It is called once
// the response has been handed to the client, so the shadow evaluation
// does not take CPU from the request it copies (on a small machine, the
// response phases and the upstream's own work). It never blocks: when the
// queue is full the sample is dropped and counted.
func (rt *Router) offerShadow(c *capture) {
	if c == nil {
		return
	}
	if rt.queued.Add(c.size) > rt.opts.Shadow.QueueBytes {
		rt.dropShadow(c)
		return
	}
	select {
	case rt.shadow <- c:
	default:
		rt.dropShadow(c)
	}
}

// dropShadow gives back what a capture holds without judging it.
func (rt *Router) dropShadow(c *capture) {
	rt.queued.Add(-c.size)
	c.other.Release()
	rt.obs.ShadowDropped()
}

// captureBody copies the request body Coraza buffered. A request blocked
// in phase 1 carries a body nobody read; judging it without that body could
// flip the other ruleset's verdict, so such a request is not sampled (and
// counts as dropped) rather than judged on part of what the client sent.
func (rt *Router) captureBody(tx types.Transaction, interrupted bool) ([]byte, bool) {
	if !tx.IsRequestBodyAccessible() {
		return nil, !interrupted
	}
	r, err := tx.RequestBodyReader()
	if err != nil {
		return nil, false
	}
	max := rt.opts.Shadow.MaxBodyBytes
	data, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil || len(data) > max {
		return nil, false
	}
	if len(data) == 0 && interrupted {
		return nil, false
	}
	return data, true
}

func pathOf(uri string) string {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		return uri[:i]
	}
	return uri
}

func (rt *Router) shadowWorker(ctx context.Context) {
	if err := lowerPriority(); err != nil {
		rt.log.Warn("shadow worker runs at normal priority", "error", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-rt.shadow:
			rt.evaluateShadow(ctx, c)
		}
	}
}

// evaluateShadow judges a capture with the ruleset that did not enforce
// on it. The shadow transaction runs with the ruleset's own engine mode:
// its interruption is the verdict the ruleset would have enforced, and it
// is only recorded, never acted on.
func (rt *Router) evaluateShadow(ctx context.Context, c *capture) {
	defer c.other.Release()
	defer rt.queued.Add(-c.size)
	tx := c.other.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: c.view.id, Context: ctx})
	shadow, err := func() (v Verdict, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = errPanic{p}
			}
		}()
		defer tx.Close()
		if processRequestHeaders(tx, &c.view) == nil {
			var body io.Reader
			if c.body != nil {
				body = bytes.NewReader(c.body)
			}
			if _, _, err := processRequestBody(tx, body); err != nil {
				return v, err
			}
		}
		return verdictOf(tx), nil
	}()
	if err != nil {
		rt.obs.ShadowDropped()
		rt.log.Error("shadow evaluation failed", "request_id", c.view.id, "error", err)
		return
	}

	rec := ShadowRecord{
		ID: c.view.id, Method: c.view.method, Path: c.path, Enforcing: c.enforcing,
		BaselineVersion: c.snap.Baseline.Version, CandidateVersion: c.snap.Candidate.Version,
	}
	shadowArm := c.enforcing.Other()
	if c.enforcing == Baseline {
		rec.Baseline, rec.Candidate = c.verdict, shadow
	} else {
		rec.Baseline, rec.Candidate = shadow, c.verdict
	}
	// Log before reporting, so whoever acts on the pair finds its lines.
	if shadow.Blocked {
		rt.logVerdict("request blocked", c.view.id, shadowArm, c.other.Version, "shadow", c.view.method, c.path, shadow)
	}
	if rec.Disagree() {
		kind := "new_block" // candidate blocks what the baseline allows
		if rec.Baseline.Blocked {
			kind = "lost_block"
		}
		rt.log.Warn("shadow disagreement",
			"request_id", rec.ID, "kind", kind, "method", rec.Method, "path", rec.Path,
			"enforcing", c.enforcing.String(),
			slogVerdict("baseline", rec.BaselineVersion, rec.Baseline),
			slogVerdict("candidate", rec.CandidateVersion, rec.Candidate))
	}
	rt.obs.ObserveShadow(rec)
}

type errPanic struct{ v any }

func (e errPanic) Error() string { return "coraza panicked during shadow evaluation" }

var _ http.Handler = (*Router)(nil)
