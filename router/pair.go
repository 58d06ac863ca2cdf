package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/corazawaf/coraza/v3/experimental"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// ErrNoCandidate is a pair asked for while no candidate serves.
var ErrNoCandidate = errors.New("no candidate in force: nothing to pair the baseline with")

// Pair judges req, with body (nil for none), by both rulesets in force,
// synchronously, and returns the pair as a shadow record, enforcing
// baseline; the observers are not told. It is for a front-end that judges
// recorded requests (a replayer) rather than live ones. Where the
// candidate only takes away from the baseline and nothing it touches
// matched, the candidate's verdict is the baseline's by construction and
// is not evaluated (Derived), as in shadow evaluation.
func (e *Engine) Pair(ctx context.Context, req *verdict.Request, body []byte) (verdict.ShadowRecord, error) {
	snap := e.snap.Load()
	if snap.Candidate == nil {
		return verdict.ShadowRecord{}, ErrNoCandidate
	}
	if !snap.Baseline.Acquire() {
		return verdict.ShadowRecord{}, ruleset.ErrClosed
	}
	defer snap.Baseline.Release()
	rec := verdict.ShadowRecord{ID: req.ID, Method: req.Method, Host: req.Host, Path: pathOf(req.URI), Enforcing: verdict.Baseline,
		BaselineVersion: snap.Baseline.Version, CandidateVersion: snap.Candidate.Version}
	tx := snap.Baseline.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: req.ID, Context: ctx})
	_, _, err := verdict.RequestPhases(tx, snap.Baseline, req, reader(body))
	if err == nil {
		rec.Baseline = verdict.Of(tx)
		rec.Derived = snap.agrees(verdict.Baseline, tx.MatchedRules())
	}
	_ = tx.Close()
	if err != nil {
		return verdict.ShadowRecord{}, err
	}
	if rec.Derived {
		rec.Candidate = rec.Baseline
		return rec, nil
	}
	if !snap.Candidate.Acquire() {
		return verdict.ShadowRecord{}, ruleset.ErrClosed
	}
	defer snap.Candidate.Release()
	if rec.Candidate, err = verdict.Judge(ctx, snap.Candidate, req, reader(body)); err != nil {
		return verdict.ShadowRecord{}, err
	}
	return rec, nil
}

func reader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// Judged is a request's outcome as a front-end that reaches its verdicts
// without Coraza knows it: the simulator draws them. Observe reports it
// exactly as the engine reports a request it judged itself.
type Judged struct {
	Request verdict.Request
	// Arm and Outside are as Arm answered for the request's client.
	Arm     verdict.Arm
	Outside bool
	// Enforced is the enforcing ruleset's request-phase verdict, WAFTime
	// the time it took.
	Enforced verdict.Verdict
	WAFTime  time.Duration
	// BlockedInResponse is a block in a response phase, after an allowed
	// request; UpstreamError an allowed request the upstream failed.
	BlockedInResponse bool
	UpstreamError     bool
	// Other, when set, is the other ruleset's request-phase verdict: the
	// request was sampled for shadow.
	Other *verdict.Verdict
}

// Observe reports j to the observers: the request, and its shadow pair
// when it has one. Nothing is judged.
func (e *Engine) Observe(j Judged) {
	rec := verdict.RequestRecord{ID: j.Request.ID, Arm: j.Arm, Outside: j.Outside, Action: verdict.Allowed,
		Verdict: j.Enforced, WAFDuration: j.WAFTime, BlockedInResponse: !j.Enforced.Blocked && j.BlockedInResponse,
		UpstreamError: !j.Enforced.Blocked && j.UpstreamError}
	if j.Enforced.Blocked || rec.BlockedInResponse {
		rec.Action = verdict.Blocked
	}
	e.obs.request(rec)
	snap := e.snap.Load()
	if j.Other == nil || j.Outside || snap.Candidate == nil {
		return
	}
	e.recordShadow(&sample{req: j.Request, path: pathOf(j.Request.URI), enforcing: j.Arm, enforced: j.Enforced, snap: snap}, *j.Other)
}
