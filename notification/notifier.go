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
}

func (m Message) slack() map[string]string {
	cand := m.Candidate
	if cand == "" {
		cand = "-"
	}
	return map[string]string{"text": fmt.Sprintf("wafcanary %s by %s: candidate %s, %s at %g%% (step %d of %d): %s",
		m.Event, m.Actor, cand, m.State, m.Percent, m.Step, m.Steps, m.Reason)}
}

type delivery struct {
	hook Webhook
	msg  Message
}

// Notifier delivers messages to the configured webhooks from one worker.
// Send never blocks.
type Notifier struct {
	cfg     Config
	queue   chan delivery
	client  *http.Client
	log     *slog.Logger
	results *prometheus.CounterVec
	// wait is how long to wait before retry n (1-based); tests shorten it.
	wait func(n int) time.Duration
}

// New returns a notifier for cfg, its metric registered with reg.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) *Notifier {
	n := &Notifier{cfg: cfg, queue: make(chan delivery, cfg.QueueSize), log: log,
		client: &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_notifications_total",
			Help: "Webhook notifications by event and result: sent, failed (after every retry) or dropped (queue full).",
		}, []string{"event", "result"}),
		wait: func(n int) time.Duration { return time.Second << (n - 1) },
	}
	reg.MustRegister(n.results)
	for _, e := range Events { // at zero from start-up, as every series is
		for _, r := range []string{"sent", "failed", "dropped"} {
			n.results.WithLabelValues(string(e), r)
		}
	}
	return n
}

// Send queues m for every webhook that wants its event.
func (n *Notifier) Send(m Message) {
	for _, h := range n.cfg.Webhooks {
		if len(h.Events) > 0 && !slices.Contains(h.Events, m.Event) {
			continue
		}
		select {
		case n.queue <- delivery{h, m}:
		default:
			n.results.WithLabelValues(string(m.Event), "dropped").Inc()
			n.log.Warn("notification dropped: queue full", "event", string(m.Event), "webhook", host(h.URL))
		}
	}
}

// Run delivers until ctx is done.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-n.queue:
			n.deliver(ctx, d)
		}
	}
}

func (n *Notifier) deliver(ctx context.Context, d delivery) {
	var body any = d.msg
	if d.hook.Format == Slack {
		body = d.msg.slack()
	}
	b, _ := json.Marshal(body) // plain types: cannot fail
	var err error
	for attempt := 0; attempt <= n.cfg.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(n.wait(attempt)):
			}
		}
		if err = n.post(ctx, d.hook.URL, b); err == nil {
			n.results.WithLabelValues(string(d.msg.Event), "sent").Inc()
			return
		}
	}
	n.log.Warn("notification failed", "event", string(d.msg.Event), "webhook", host(d.hook.URL), "attempts", n.cfg.Retries+1, "error", err.Error())
	n.results.WithLabelValues(string(d.msg.Event), "failed").Inc()
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
