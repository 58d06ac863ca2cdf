package router

import (
	"log/slog"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// The proxy reports what it learns to observers of three kinds, each
// told only what it asked for. Their methods are called on the request
// path and by shadow workers: implementations must be safe for concurrent
// use and must not block.

// RequestObserver is told of each proxied request, after the response has
// been sent.
type RequestObserver interface {
	ObserveRequest(verdict.RequestRecord)
}

// ShadowObserver is told of each evaluated shadow pair, and of each sample
// not evaluated because the queue was full or the request too large.
type ShadowObserver interface {
	ObserveShadow(verdict.ShadowRecord)
	ShadowDropped()
}

// ServingObserver is told what serves after each snapshot is installed.
type ServingObserver interface {
	ObserveServing(verdict.Serving)
}

// BlockObserver is told of each request its enforcing ruleset blocked,
// with the request as Coraza saw it. Blocks are rare; copying one is
// paid only when a BlockObserver is set, and its body only up to the most
// any observer wants (BlockBody, bytes; 0 for none).
type BlockObserver interface {
	ObserveBlock(verdict.Block)
	BlockBody() int
}

// RequestSampler is offered each request the baseline enforces on, once
// its request phases reached a verdict (interrupted says whether it was
// blocked), while tx still holds what Coraza saw: its matched rules, nolog
// ones included, and its buffered body. It copies what it keeps before it
// returns (tx is pooled after Finish) and may return a func, which Finish
// calls once the response is on its way. Called per request: it must not
// block.
type RequestSampler interface {
	SampleRequest(rs *ruleset.Ruleset, tx types.Transaction, req *verdict.Request, interrupted bool) (offer func())
}

// Observers are the proxy's observers, by kind.
type Observers struct {
	Requests []RequestObserver
	Shadows  []ShadowObserver
	Serving  []ServingObserver
	Blocks   []BlockObserver
	Samplers []RequestSampler
}

func (o Observers) request(r verdict.RequestRecord) {
	for _, x := range o.Requests {
		x.ObserveRequest(r)
	}
}

func (o Observers) shadow(s verdict.ShadowRecord) {
	for _, x := range o.Shadows {
		x.ObserveShadow(s)
	}
}

func (o Observers) dropped() {
	for _, x := range o.Shadows {
		x.ShadowDropped()
	}
}

// blockBody is the most of a blocked request's body any observer wants.
func (o Observers) blockBody() int {
	n := 0
	for _, x := range o.Blocks {
		n = max(n, x.BlockBody())
	}
	return min(n, maxBlockBody)
}

func (o Observers) block(b verdict.Block) {
	for _, x := range o.Blocks {
		x.ObserveBlock(b)
	}
}

func (o Observers) serving(s verdict.Serving) {
	for _, x := range o.Serving {
		x.ObserveServing(s)
	}
}

// slogVerdict renders one side of a shadow pair for a log line: rule IDs,
// messages, matched variable names and score; never matched values.
func slogVerdict(key, version string, v verdict.Verdict) slog.Attr {
	return slog.Group(key,
		"version", version, "blocked", v.Blocked, "rule_ids", v.RuleIDs(),
		"rules", v.Rules, "inbound_anomaly_score", v.InboundScore)
}
