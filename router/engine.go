package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Engine is wafcanary's request path without a transport: it picks each
// client's arm, judges the request with that arm's ruleset, samples it for
// the other ruleset in shadow, and tells the observers. Every front-end
// (the HTTP proxy, Router, and any other: an SPOE agent, a replayer) maps
// its requests onto the same steps, so a client lands on the same arm and
// a request gets the same verdict, records and metrics whichever way it
// came in.
//
// The life of one request, as a front-end drives it:
//
//  1. Resolve the client (Client): its address, behind trusted proxies
//     the first untrusted hop, and its sticky key (the address, or a
//     header or cookie).
//  2. Begin: load the routing snapshot once, pick the arm from the sticky
//     key's bucket and the candidate's share (or the baseline, for a host
//     the rollout does not judge), take a reference on that arm's
//     ruleset and open a Coraza transaction named by the request ID.
//  3. Exchange.Request: phases 1 and 2 (headers, then body), timed; on a
//     verdict reached, a shadow sample is copied (Shadow.SamplePercent).
//     The front-end then carries out the interruption (deny, drop,
//     redirect), refuses the request (ErrClientBody: 400; ErrFailed: the
//     fail mode was closed, 500), or forwards it with the body it is
//     given (the bytes Coraza buffered, then the rest).
//  4. Exchange.Response: phases 3 and 4 on what the upstream answered;
//     the front-end sends the response it is given, or carries out the
//     interruption.
//  5. Exchange.Finish, on every path, exactly once: the logging phase,
//     the verdict copied out of the transaction, the transaction closed,
//     the request reported to the observers (and a block to the block
//     observers and the log), the ruleset reference given back, and the
//     shadow sample offered to the workers (Run), who judge it with the
//     other ruleset after the response is on its way.
//
// An Engine is safe for concurrent use. The routing state is one Snapshot
// read once per request; Swap replaces it for all requests that begin
// after.
type Engine struct {
	snap    atomic.Pointer[Snapshot]
	assign  Assigner
	sticky  stickyKey
	clients clientAddr
	ids     *requestIDs
	shadow  chan *sample
	// queued is the size of the samples in shadow, against
	// Shadow.QueueBytes.
	queued atomic.Int64
	// blockBody is how much of a blocked request's body its observers want.
	blockBody int
	opts      EngineOptions
	obs       Observers
	log       *slog.Logger
}

// EngineOptions configure an Engine.
type EngineOptions struct {
	Routing RoutingConfig
	Shadow  ShadowConfig
	// FailMode is what a Coraza failure does to a request: FailClosed
	// refuses it, FailOpen lets it through uninspected.
	FailMode string
	// InspectResponseBody lets rulesets that ask for response bodies see
	// them (ProxyConfig.InspectResponseBody).
	InspectResponseBody bool
	// Secret keys the sticky assignment; see RoutingConfig.HashSecret.
	Secret []byte
	// Observe lists who is told of requests, shadow pairs and what serves.
	Observe Observers
	// Logger receives block, disagreement and error events. Required.
	Logger *slog.Logger
}

// NewEngine returns an Engine serving initial. Call Run to start shadow
// evaluation.
func NewEngine(initial *Snapshot, o EngineOptions) (*Engine, error) {
	if o.Logger == nil {
		return nil, errors.New("router: a logger is required")
	}
	if len(o.Secret) < 16 {
		return nil, errors.New("router: assignment secret must be at least 16 bytes")
	}
	if o.FailMode != FailClosed && o.FailMode != FailOpen {
		return nil, fmt.Errorf("router: fail mode: must be %q or %q, got %q", FailClosed, FailOpen, o.FailMode)
	}
	sections := []struct {
		name string
		v    interface{ Validate() error }
	}{{"routing", o.Routing}, {"shadow", o.Shadow}}
	for _, s := range sections { // a slice, so "the first invalid key" is always the same one
		if err := s.v.Validate(); err != nil {
			return nil, fmt.Errorf("router: %s.%w", s.name, err)
		}
	}
	sticky, _ := parseStickyKey(o.Routing.StickyKey)      // validated above
	clients, _ := newClientAddr(o.Routing.TrustedProxies) // validated above
	e := &Engine{
		assign:    NewAssigner(o.Secret),
		sticky:    sticky,
		clients:   clients,
		ids:       newRequestIDs(recentIDs),
		shadow:    make(chan *sample, o.Shadow.QueueSize),
		opts:      o,
		obs:       o.Observe,
		blockBody: o.Observe.blockBody(),
		log:       o.Logger,
	}
	if err := e.Swap(initial); err != nil {
		return nil, err
	}
	return e, nil
}

// Client is who sent a request, as the engine needs it: the address that
// Coraza sees as REMOTE_ADDR and the sticky key that picks the arm.
type Client struct {
	// IP and Port are the client's: the peer's, or behind trusted proxies
	// the first untrusted hop of X-Forwarded-For (then Port is the
	// peer's, and only says which connection).
	IP   string
	Port int
	// PeerTrusted is set when the peer is a trusted proxy, whose
	// X-Forwarded-For chain the front-end may pass on.
	PeerTrusted bool
	// space and key are the sticky key: the configured header or cookie,
	// else the address, prefixed by its space so the spaces never collide
	// (stickyKey.of). They are kept apart, and hashed as one, so that no
	// request pays for joining them.
	space, key string
}

// Client resolves who sent a request from its peer address (host:port)
// and headers, as every front-end must, so that a client is on the same
// arm whichever front-end it came through.
func (e *Engine) Client(peer string, header http.Header) Client {
	ip, port, trusted := e.clients.resolve(peer, header)
	c := Client{IP: ip, Port: port, PeerTrusted: trusted}
	c.space, c.key = e.sticky.of(header, ip)
	return c
}

// ClientKeyedBy is Client for a front-end told the sticky key's value
// apart from the headers (an SPOE agent's client argument, such as
// req.cook(uid)). The value is taken as the configured header's or
// cookie's would be, so a client keyed the same way lands on the same
// arm through either front-end; "" falls back to Client.
func (e *Engine) ClientKeyedBy(peer string, header http.Header, key string) Client {
	c := e.Client(peer, header)
	if key != "" {
		c.space, c.key = e.sticky.given(key)
	}
	return c
}

// RequestID returns the request ID for a request with these headers: the
// client's X-Request-ID if it is a sane token not given recently, else a
// new one (requestIDs).
func (e *Engine) RequestID(header http.Header) string { return e.ids.of(header) }

// RequestIDGiven is RequestID for an ID a front-end was given some other
// way (HAProxy's unique-id), under the same rules; "" for none.
func (e *Engine) RequestIDGiven(id string) string { return e.ids.given(id) }

// Refuse reports a request a front-end refused before any ruleset judged
// it (started at start, answered with status): outside the rollout's
// evidence, counted by reason. The front-end answers and logs it.
func (e *Engine) Refuse(id string, why verdict.Refusal, status int, start time.Time) {
	e.obs.request(verdict.RequestRecord{ID: id, Action: verdict.Blocked, Status: status, Outside: true, Refused: why, Duration: time.Since(start)})
}

// Snapshot returns the routing state in force.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Swap installs next for every request that begins from now on. Requests
// in flight finish on the rulesets they began with; rulesets that next
// no longer uses are retired and closed when their last request ends. If
// next is invalid nothing changes.
func (e *Engine) Swap(next *Snapshot) error {
	if err := next.Validate(); err != nil {
		return fmt.Errorf("router: refusing snapshot: %w", err)
	}
	e.compare(e.snap.Load(), next)
	prev := e.snap.Swap(next)
	for _, rs := range prev.retiredBy(next) {
		rs.Retire()
	}
	e.obs.serving(next.Serving())
	return nil
}

// compare sets next's difference between candidate and baseline, taken
// over from prev for the same pair: a rollout's steps swap snapshots
// that differ only in shares. It runs before next is installed.
func (e *Engine) compare(prev, next *Snapshot) {
	switch {
	case next.Candidate == nil || e.opts.Shadow.FullEvaluation:
		return
	case next.diff != nil && next.diff.baseline == next.Baseline && next.diff.candidate == next.Candidate:
		return
	case prev != nil && prev.diff != nil && prev.diff.baseline == next.Baseline && prev.diff.candidate == next.Candidate:
		next.diff = prev.diff
		return
	}
	d := ruleset.Compare(next.Baseline, next.Candidate)
	next.diff = &difference{baseline: next.Baseline, candidate: next.Candidate, Difference: d}
	e.log.Info("candidate compared with the baseline for shadow evaluation",
		"baseline", next.Baseline.Version, "candidate", next.Candidate.Version, "difference", d.String())
}

// Run evaluates shadow samples until ctx is done.
func (e *Engine) Run(ctx context.Context) {
	done := make(chan struct{})
	for range e.opts.Shadow.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			e.shadowWorker(ctx)
		}()
	}
	for range e.opts.Shadow.Workers {
		<-done
	}
	// Give back the references held by samples nobody will evaluate.
	for {
		select {
		case s := <-e.shadow:
			s.other.Release()
			e.queued.Add(-s.size)
		default:
			return
		}
	}
}

// Arm returns the arm client c gets for a request on host under the
// routing in force, and whether host is outside the rollout (served by
// the baseline, not evidence). It takes no reference: a front-end that
// judges the request calls Begin instead. The simulator uses it.
func (e *Engine) Arm(c Client, host string) (verdict.Arm, bool) {
	s := e.snap.Load()
	return s.arm(e.assign.bucket(c.space, c.key), host)
}

// ClientKeyed is a Client known only by its sticky key, used as it is,
// for a front-end that has no request to resolve one from: the
// simulator's clients.
func ClientKeyed(key string) Client { return Client{key: key} }

// pick chooses the arm for a request and takes a reference on its ruleset.
// The bucket is computed once; only the snapshot is re-read if a swap
// closed the ruleset between loading the snapshot and acquiring it.
func (e *Engine) pick(c Client, host string) (s *Snapshot, arm verdict.Arm, rs *ruleset.Ruleset, outside bool) {
	bucket := e.assign.bucket(c.space, c.key)
	for {
		s = e.snap.Load()
		arm, outside = s.arm(bucket, host)
		if rs = s.Ruleset(arm); rs.Acquire() {
			return s, arm, rs, outside
		}
	}
}
