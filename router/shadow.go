package router

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// sample is a request sampled for shadow evaluation, waiting for the
// other ruleset's verdict. It owns copies of everything it needs, and a
// reference on the ruleset it will be judged by; a derived one, recorded
// before the request ends, shares the request's headers instead.
type sample struct {
	req       verdict.Request
	body      []byte
	path      string
	enforcing verdict.Arm
	enforced  verdict.Verdict // the enforcing ruleset's request-phase verdict
	snap      *Snapshot
	other     *ruleset.Ruleset
	// size is what the sample holds, counted against Shadow.QueueBytes.
	size int64
	// derived is set when the other ruleset's verdict is known to be the
	// enforced one (Snapshot.agrees): the pair is recorded without an
	// evaluation, and the sample holds neither body nor ruleset.
	derived bool
}

// sampleShadow samples the request for shadow evaluation and copies what
// the other ruleset needs, while the transaction still holds the body.
// Verdicts are compared on the request phases only, since the shadow
// ruleset never sees a response. A nil sample means not sampled.
func (e *Engine) sampleShadow(snap *Snapshot, x *Exchange, body io.Reader, it *types.Interruption) *sample {
	if snap.Candidate == nil || snap.ShadowSample == 0 || x.tx == nil {
		return nil
	}
	if snap.ShadowSample < MaxShare && rand.Uint32N(uint32(MaxShare)) >= uint32(snap.ShadowSample) {
		return nil
	}
	if snap.agrees(x.arm, x.tx.MatchedRules()) {
		// A derived pair is recorded by Finish, while the request is still
		// in hand, and is never a new block for the block observers (its
		// shadow verdict is the enforced one), who alone keep a request:
		// it needs no copy of the headers.
		return &sample{req: *x.req, path: pathOf(x.req.URI), enforcing: x.arm, enforced: verdict.Of(x.tx), snap: snap, derived: true}
	}
	var data []byte
	if body != nil {
		var ok bool
		if data, ok = e.sampleBody(x.tx, it != nil); !ok {
			e.obs.dropped()
			return nil
		}
	}
	other := snap.Ruleset(x.arm.Other())
	if !other.Acquire() {
		return nil // swapped out since this request began; nothing left to compare
	}
	c := &sample{
		req:       x.req.Clone(),
		body:      data,
		path:      pathOf(x.req.URI),
		enforcing: x.arm,
		enforced:  verdict.Of(x.tx),
		snap:      snap,
		other:     other,
	}
	c.size = int64(len(data) + x.req.Size())
	return c
}

// offerShadow queues a sample for the shadow workers. It is called once
// the response has been handed to the client, so the shadow evaluation
// does not take CPU from the request it copies (on a small machine, the
// response phases and the upstream's own work). It never blocks: when the
// queue is full the sample is dropped and counted.
func (e *Engine) offerShadow(c *sample) {
	if c == nil {
		return
	}
	if c.derived {
		e.recordShadow(c, c.enforced)
		return
	}
	if e.queued.Add(c.size) > e.opts.Shadow.QueueBytes {
		e.dropShadow(c)
		return
	}
	select {
	case e.shadow <- c:
	default:
		e.dropShadow(c)
	}
}

// dropShadow gives back what a sample holds without judging it.
func (e *Engine) dropShadow(c *sample) {
	e.queued.Add(-c.size)
	c.other.Release()
	e.obs.dropped()
}

// sampleBody copies the request body Coraza buffered. A request blocked
// in phase 1 carries a body nobody read; judging it without that body could
// flip the other ruleset's verdict, so such a request is not sampled (and
// counts as dropped) rather than judged on part of what the client sent.
func (e *Engine) sampleBody(tx types.Transaction, interrupted bool) ([]byte, bool) {
	if !tx.IsRequestBodyAccessible() {
		return nil, !interrupted
	}
	r, err := tx.RequestBodyReader()
	if err != nil {
		return nil, false
	}
	max := e.opts.Shadow.MaxBodyBytes
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

func (e *Engine) shadowWorker(ctx context.Context) {
	if err := lowerPriority(); err != nil {
		e.log.Warn("shadow worker runs at normal priority", "error", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-e.shadow:
			e.evaluateShadow(ctx, c)
		}
	}
}

// evaluateShadow judges a sample with the ruleset that did not enforce
// on it. The shadow transaction runs with the ruleset's own engine mode:
// its interruption is the verdict the ruleset would have enforced, and it
// is only recorded, never acted on.
func (e *Engine) evaluateShadow(ctx context.Context, c *sample) {
	defer c.other.Release()
	defer e.queued.Add(-c.size)
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	shadow, err := verdict.Judge(ctx, c.other, &c.req, body)
	if err != nil {
		e.obs.dropped()
		e.log.Error("shadow evaluation failed", "request_id", c.req.ID, "error", err)
		return
	}
	e.recordShadow(c, shadow)
}

// recordShadow logs and reports the pair of c's enforced verdict and the
// other ruleset's, shadow.
func (e *Engine) recordShadow(c *sample, shadow verdict.Verdict) {
	rec := verdict.ShadowRecord{
		ID: c.req.ID, Method: c.req.Method, Host: c.req.Host, Path: c.path, Enforcing: c.enforcing,
		BaselineVersion: c.snap.Baseline.Version, CandidateVersion: c.snap.Candidate.Version,
		Derived: c.derived,
	}
	other := c.snap.Ruleset(c.enforcing.Other())
	shadowArm := c.enforcing.Other()
	if c.enforcing == verdict.Baseline {
		rec.Baseline, rec.Candidate = c.enforced, shadow
	} else {
		rec.Baseline, rec.Candidate = shadow, c.enforced
	}
	// Log before reporting, so whoever acts on the pair finds its lines.
	if shadow.Blocked {
		e.logVerdict("request blocked", &c.req, shadowArm, other.Version, "shadow", shadow)
	}
	if kind := rec.Disagreement(); kind != verdict.Agree {
		e.log.Warn("shadow disagreement",
			"request_id", rec.ID, "kind", kind.String(), "method", rec.Method, "host", c.req.Host, "path", rec.Path,
			"enforcing", c.enforcing.String(),
			slogVerdict("baseline", rec.BaselineVersion, rec.Baseline),
			slogVerdict("candidate", rec.CandidateVersion, rec.Candidate))
	}
	e.obs.shadow(rec)
	if shadowArm == verdict.Candidate && shadow.Blocked && !c.enforced.Blocked && len(e.obs.Blocks) > 0 {
		e.obs.block(e.shadowBlock(c, shadow, other.Version))
	}
}

// shadowBlock is the candidate's new block of c, for the block observers
// (captures, explain): the request as the shadow judged it, its body up
// to what they keep.
func (e *Engine) shadowBlock(c *sample, shadow verdict.Verdict, version string) verdict.Block {
	b := verdict.Block{
		Record:  verdict.RequestRecord{ID: c.req.ID, Arm: verdict.Candidate, Action: verdict.Blocked, Status: shadow.Status, Verdict: shadow},
		Request: c.req, Version: version, Time: time.Now(), Shadow: true,
	}
	if e.blockBody > 0 {
		b.Body = c.body[:min(len(c.body), e.blockBody)]
		b.BodyTruncated = len(c.body) > e.blockBody
	}
	return b
}

var _ http.Handler = (*Router)(nil)
