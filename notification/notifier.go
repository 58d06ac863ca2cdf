package notification

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Message is what a webhook receives as JSON.
type Message struct {
	Event     Event     `json:"event"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Reason    string    `json:"reason"`
	State     string    `json:"state"`
	Step      int       `json:"step"` // from 1, as status prints it
	Steps     int       `json:"steps"`
	Percent   float64   `json:"candidate_percent"`
	Baseline  string    `json:"baseline_version"`
	Candidate string    `json:"candidate_version,omitempty"`
	// Replica is the replica that decided, in a fleet.
	Replica string `json:"replica,omitempty"`
	// Exception is the exception's ID, for the exception events.
	Exception string `json:"exception,omitempty"`
	// Ticket is the change ticket the action was taken under.
	Ticket string `json:"ticket,omitempty"`
	// Emergency marks an admin's promotion past four-eyes.
	Emergency bool `json:"emergency,omitempty"`
}

// slackEscaper escapes the three characters Slack parses as markup in a
// message's text (api.slack.com/reference/surfaces/formatting#escaping).
// A reason is free text from an operator or a rule's message: unescaped,
// "<!channel>" would page a whole channel and "<https://x|logs>" would show
// a link under a name it does not go to.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func (m Message) slack() map[string]string {
	cand := m.Candidate
	if cand == "" {
		cand = "-"
	}
	e := slackEscaper.Replace
	event := e(string(m.Event))
	if m.Emergency {
		event = "EMERGENCY " + event
	}
	reason := e(m.Reason)
	if m.Ticket != "" {
		reason += " (ticket " + e(m.Ticket) + ")"
	}
	return map[string]string{"text": fmt.Sprintf("wafcanary %s by %s: candidate %s, %s at %g%% (step %d of %d): %s",
		event, e(m.Actor), e(cand), e(m.State), m.Percent, m.Step, m.Steps, reason)}
}

// result is how a delivery ended, as the metric's result label says it.
type result string

const (
	sent   result = "sent"
	failed result = "failed" // after every retry
	// dropped: the webhook's queue was full, or the delivery was still
	// queued or in flight when the shutdown's drain ended.
	dropped result = "dropped"
)

var results = []result{sent, failed, dropped}

// DefaultDrain bounds how long Run goes on delivering, once its context is
// done, what was queued before: a rollback decided in the last seconds
// still reaches the pager, and a dead receiver holds a shutdown no longer.
const DefaultDrain = 5 * time.Second

// hook is one webhook with its own queue, drained by its own worker in
// order: a receiver that hangs holds up only its own deliveries.
type hook struct {
	Webhook
	queue chan Message
}

func (h *hook) wants(e Event) bool { return len(h.Events) == 0 || slices.Contains(h.Events, e) }

// Notifier delivers messages to the configured webhooks, each from its own
// worker with its own queue, timeout and retries. Send never blocks; it is
// safe for concurrent use.
type Notifier struct {
	cfg     Config
	hooks   []*hook
	client  *http.Client
	log     *slog.Logger
	results *prometheus.CounterVec
	// wait is how long to wait before retry n (1-based).
	wait func(n int) time.Duration
	// drain is how long Run delivers what is queued once its ctx is done.
	drain time.Duration

	mu      sync.Mutex // orders Send against the end of Run
	stopped bool       // Run has returned: Send counts as dropped
}

// New returns a notifier for cfg, its metric registered with reg.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) *Notifier {
	n := &Notifier{cfg: cfg, log: log, drain: DefaultDrain,
		client: &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_notifications_total",
			Help: "Webhook notifications by event and result: sent, failed (after every retry) or dropped (the webhook's queue full, or not delivered by the end of the shutdown drain).",
		}, []string{"event", "result"}),
		wait: func(n int) time.Duration { return time.Second << (n - 1) },
	}
	for _, w := range cfg.Webhooks {
		n.hooks = append(n.hooks, &hook{Webhook: w, queue: make(chan Message, cfg.QueueSize)})
	}
	reg.MustRegister(n.results)
	for _, e := range Events { // at zero from start-up, as every series is
		for _, r := range results {
			n.results.WithLabelValues(string(e), string(r))
		}
	}
	return n
}

// Send queues m for every webhook that wants its event. A webhook whose
// queue is full drops it, counted and logged; once Run has returned,
// every webhook does.
func (n *Notifier) Send(m Message) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hooks {
		if !h.wants(m.Event) {
			continue
		}
		why := "queue full"
		if !n.stopped {
			select {
			case h.queue <- m:
				continue
			default:
			}
		} else {
			why = "notifier stopped"
		}
		n.count(m, dropped)
		n.log.Warn("notification dropped: "+why, "event", string(m.Event), "webhook", host(h.URL))
	}
}

// Run delivers until ctx is done, then for at most the drain (DefaultDrain)
// what is still queued: a delivery queued or in flight when the drain ends
// is dropped, counted, and the count logged once. It returns when every
// webhook's worker has stopped; call it once.
func (n *Notifier) Run(ctx context.Context) {
	// Deliveries outlive ctx by the drain: a rollback decided just before
	// a shutdown is the one the pager needs.
	sendCtx, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	lost := make([]int, len(n.hooks))
	var wg sync.WaitGroup
	for i, h := range n.hooks {
		wg.Go(func() { lost[i] = n.work(ctx, sendCtx, h) })
	}
	<-ctx.Done()
	deadline := time.AfterFunc(n.drain, cut)
	wg.Wait()
	deadline.Stop()

	n.mu.Lock()
	n.stopped = true
	for i, h := range n.hooks { // sent after its worker's last look
		for len(h.queue) > 0 {
			n.count(<-h.queue, dropped)
			lost[i]++
		}
	}
	n.mu.Unlock()
	total := 0
	for _, l := range lost {
		total += l
	}
	if total > 0 {
		n.log.Warn("notifications dropped at shutdown: not delivered within the drain", "count", total, "drain", n.drain.String())
	}
}

// work delivers h's queue in order until ctx is done, then what is queued
// until the queue is empty or sendCtx ends, and returns how many it
// dropped at shutdown.
func (n *Notifier) work(ctx, sendCtx context.Context, h *hook) (lost int) {
	for {
		select {
		case m := <-h.queue:
			if n.deliver(sendCtx, h, m) == dropped {
				lost++
			}
			continue
		case <-ctx.Done():
		}
		for {
			select {
			case m := <-h.queue:
				if sendCtx.Err() != nil {
					n.count(m, dropped)
					lost++
				} else if n.deliver(sendCtx, h, m) == dropped {
					lost++
				}
			default:
				return lost
			}
		}
	}
}

// deliver posts m to h, retrying, and counts the result; dropped when ctx
// ended first (the shutdown's drain), which is not the receiver's failure.
func (n *Notifier) deliver(ctx context.Context, h *hook, m Message) result {
	var body any = m
	if h.Format == Slack {
		body = m.slack()
	}
	b, _ := json.Marshal(body) // plain types: cannot fail
	var err error
	for attempt := 0; attempt <= n.cfg.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(n.wait(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return n.count(m, dropped)
			case <-t.C:
			}
		}
		if err = n.post(ctx, h.URL, b); err == nil {
			return n.count(m, sent)
		}
		if ctx.Err() != nil {
			return n.count(m, dropped)
		}
	}
	n.log.Warn("notification failed", "event", string(m.Event), "webhook", host(h.URL), "attempts", n.cfg.Retries+1, "error", err.Error())
	return n.count(m, failed)
}

func (n *Notifier) count(m Message, r result) result {
	n.results.WithLabelValues(string(m.Event), string(r)).Inc()
	return r
}

func (n *Notifier) post(ctx context.Context, u string, b []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("request: %w", redact(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wafcanary")
	resp, err := n.client.Do(req)
	if err != nil {
		return redact(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %d", resp.StatusCode)
	}
	return nil
}

// redact keeps a webhook URL (which may carry a token) out of an error.
func redact(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s %s: %w", ue.Op, host(ue.URL), ue.Err)
	}
	return err
}

func host(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return "(unparsable URL)"
}
