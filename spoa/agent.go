// Package spoa is wafcanary's HAProxy front-end: an SPOE agent that
// judges the requests HAProxy sends it with the same router.Engine as the
// HTTP proxy, so both rulesets, the split, the shadow, the evidence and
// the controller live in the agent, and a promotion or a rollback takes
// effect on the next request without reloading HAProxy.
//
// It accepts coraza-spoa's request message unchanged, so an existing
// HAProxy configuration works by pointing its spoe-agent backend here:
// message coraza-req with the arguments app, id (optional: HAProxy's
// unique-id), src-ip, src-port, dst-ip, dst-port, method, path, query,
// version, headers (req.hdrs, or req.hdrs_bin, which is exact) and body,
// and optionally client (the sticky key's value, such as req.cook(uid))
// and body-size (req.body_size, the advertised length, so a body cut at
// HAProxy's buffer is known as such). It answers with coraza-spoa's
// variables (action, status, data, ruleid, id, anomaly_score, rules_hit),
// plus arm and version for HAProxy's log-format.
//
// How a message maps onto the Engine's steps: the peer is src-ip:src-port
// and the headers are the request's, so Engine.Client puts the client on
// the arm the HTTP proxy would; Begin, Exchange.Request on the path,
// query, headers and body; the answer; Finish. Responses are not
// inspected: a coraza-res message is acknowledged with nothing (HAProxy
// carries on) and counted, and the response-phase rules of a ruleset run
// only behind the HTTP proxy.
package spoa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/spop"
	"github.com/wafcanary/wafcanary/verdict"
)

// The messages of coraza-spoa's SPOE configuration.
const (
	RequestMessage  = "coraza-req"
	ResponseMessage = "coraza-res"
)

// ErrorCode is what the agent sets txn.<prefix>.error to when it could
// not judge a request: a message it cannot read, or the WAF failing while
// proxy.fail_mode is closed. HAProxy's own set-on-error codes (a timeout,
// the agent unreachable) are below 256; the shipped configuration denies
// on any error above 0.
const ErrorCode = 500

// Agent answers HAProxy's NOTIFY frames with the Engine's judgement. It is
// an spop.Handler, safe for concurrent use.
type Agent struct {
	e   *router.Engine
	cfg Config
	log *slog.Logger
	m   *agentMetrics
}

// New returns an agent judging with e. reg receives its metrics.
func New(e *router.Engine, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("spoa.%w", err)
	}
	if log == nil {
		return nil, errors.New("spoa: a logger is required")
	}
	return &Agent{e: e, cfg: cfg, log: log, m: newAgentMetrics(reg)}, nil
}

// Server returns the SPOP server that serves the agent, configured from
// its Config. The caller runs Serve and Shutdown.
func (a *Agent) Server() *spop.Server {
	return &spop.Server{
		Handler:        a,
		MaxFrameSize:   a.cfg.MaxFrameSize,
		HandlerTimeout: a.cfg.ProcessingTimeout,
		ErrorActions:   a.errorActions,
		Disconnected: func(st spop.Status, byPeer bool) {
			by := "agent"
			if byPeer {
				by = "haproxy"
			}
			a.m.disconnects.WithLabelValues(strconv.Itoa(int(st)), by).Inc()
		},
		Logger: a.log,
	}
}

// errorActions is what a message the agent failed on gets: the error
// variable, which the shipped HAProxy configuration denies on.
func (a *Agent) errorActions(_ *spop.Notify, err error) []spop.Action {
	a.m.messages.WithLabelValues(RequestMessage, resultFailed).Inc()
	return []spop.Action{spop.SetVar(spop.ScopeTxn, "error", spop.Int64(ErrorCode))}
}

// Message results, the label of wafcanary_spoa_messages_total.
const (
	resultJudged  = "judged"  // judged by a ruleset: allowed or blocked
	resultRefused = "refused" // refused unjudged (a cut body under on_truncated_body block)
	resultFailed  = "failed"  // not judged: unreadable arguments, or the WAF failed closed
	resultIgnored = "ignored" // a message the agent does not act on (coraza-res, unknown names)
)

// ServeSPOP judges the coraza-req message of a NOTIFY frame.
func (a *Agent) ServeSPOP(ctx context.Context, n *spop.Notify) ([]spop.Action, error) {
	var acts []spop.Action
	for _, msg := range n.Messages {
		if msg.Name != RequestMessage {
			a.m.messages.WithLabelValues(messageLabel(msg.Name), resultIgnored).Inc()
			continue
		}
		got, err := a.judge(ctx, msg)
		if err != nil {
			// errorActions counts it.
			a.log.Warn("spoa: message not judged", "message", msg.Name, "error", err.Error())
			return nil, err
		}
		acts = append(acts, got...)
	}
	return acts, nil
}

// messageLabel bounds the message label to the names the agent knows.
func messageLabel(name string) string {
	if name == RequestMessage || name == ResponseMessage {
		return name
	}
	return "other"
}

func (a *Agent) judge(ctx context.Context, msg spop.Message) ([]spop.Action, error) {
	start := time.Now()
	in, err := readRequest(msg)
	if err != nil {
		return nil, err
	}
	peer := netip.AddrPortFrom(in.src, in.srcPort).String()
	c := a.e.ClientKeyedBy(peer, in.req.Header, in.client)
	in.req.ID = a.e.RequestIDGiven(in.id)
	in.req.ClientIP, in.req.ClientPort = c.IP, c.Port

	if in.truncated() {
		a.m.truncated.WithLabelValues(string(a.cfg.OnTruncatedBody)).Inc()
		a.log.Warn("spoa: request body arrived cut", "request_id", in.req.ID, "host", in.req.Host, "received_bytes", len(in.body),
			"advertised_bytes", in.bodySize, "on_truncated_body", string(a.cfg.OnTruncatedBody))
		if a.cfg.OnTruncatedBody == BlockTruncated {
			const status = 413
			a.e.Refuse(in.req.ID, verdict.RefusedBodyTruncated, status, start)
			a.m.messages.WithLabelValues(RequestMessage, resultRefused).Inc()
			return []spop.Action{
				spop.SetVar(spop.ScopeTxn, "id", spop.String(in.req.ID)),
				spop.SetVar(spop.ScopeTxn, "action", spop.String("deny")),
				spop.SetVar(spop.ScopeTxn, "status", spop.Int64(status)),
			}, nil
		}
	}

	x := a.e.Begin(ctx, c, &in.req)
	it, _, err := x.Request(in.bodyReader())
	// The client's status when allowed is the application's, which the
	// agent does not see: 0, as for a client that left.
	action, status := "", 0
	if it != nil {
		action, status = router.Enforce(it)
	}
	x.Finish(router.Outcome{Status: status})
	if err != nil {
		// Only ErrFailed: the body is in memory, it cannot break off.
		return nil, fmt.Errorf("request %s: %w", in.req.ID, err)
	}
	a.m.messages.WithLabelValues(RequestMessage, resultJudged).Inc()
	rec := x.Record()
	acts := []spop.Action{
		spop.SetVar(spop.ScopeTxn, "id", spop.String(in.req.ID)),
		spop.SetVar(spop.ScopeTxn, "arm", spop.String(rec.Arm.String())),
		spop.SetVar(spop.ScopeTxn, "version", spop.String(x.Version())),
		spop.SetVar(spop.ScopeTxn, "anomaly_score", spop.Int64(int64(rec.Verdict.InboundScore))),
		spop.SetVar(spop.ScopeTxn, "rules_hit", spop.Int64(rulesHit(rec.Verdict))),
	}
	if it != nil {
		acts = append(acts,
			spop.SetVar(spop.ScopeTxn, "action", spop.String(action)),
			spop.SetVar(spop.ScopeTxn, "status", spop.Int64(int64(status))),
			spop.SetVar(spop.ScopeTxn, "ruleid", spop.Int64(int64(it.RuleID))),
		)
		if action == "redirect" {
			acts = append(acts, spop.SetVar(spop.ScopeTxn, "data", spop.String(it.Data)))
		}
	}
	return acts, nil
}

// rulesHit counts the attack rules that matched, as coraza-spoa's
// rules_hit does: CRS's attack ranges and local rules 190000-199999, not
// the scoring and reporting rules.
func rulesHit(v verdict.Verdict) int64 {
	var n int64
	for _, r := range v.Rules {
		if (r.ID >= 910000 && r.ID < 960000) || (r.ID >= 190000 && r.ID < 200000) {
			n++
		}
	}
	return n
}

type agentMetrics struct {
	messages    *prometheus.CounterVec
	truncated   *prometheus.CounterVec
	disconnects *prometheus.CounterVec
}

func newAgentMetrics(reg prometheus.Registerer) *agentMetrics {
	m := &agentMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_spoa_messages_total",
			Help: "SPOE messages HAProxy sent the agent, by message and result: judged, refused (a cut body), failed (not judged: the error variable was set), ignored.",
		}, []string{"message", "result"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_spoa_truncated_bodies_total",
			Help: "Requests whose body reached the agent cut at HAProxy's buffer, by what spoa.on_truncated_body did (block or judge).",
		}, []string{"decision"}),
	}
	m.disconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wafcanary_spoa_disconnects_total",
		Help: "SPOP connections ended by a DISCONNECT, by its status code (doc/SPOE.txt 3.5: 0 normal, 1 I/O error, 2 timeout, 3 frame too big, 4 invalid frame, 5-9 a bad HELLO, 10 fragmentation, 13 resources, 99 unknown) and by who sent it (agent: a peer that broke the protocol, a timeout, a shutdown; haproxy).",
	}, []string{"status", "by"})
	for _, msg := range []string{RequestMessage, ResponseMessage, "other"} {
		for _, r := range []string{resultJudged, resultRefused, resultFailed, resultIgnored} {
			m.messages.WithLabelValues(msg, r)
		}
	}
	for _, d := range []TruncatedBody{BlockTruncated, JudgeTruncated} {
		m.truncated.WithLabelValues(string(d))
	}
	reg.MustRegister(m.messages, m.truncated, m.disconnects)
	return m
}
