// Package notification tells people what a rollout did: a webhook POST
// per event (start, step, approval needed, promotion, rollback, undo,
// refused gates), as JSON or as a Slack message. Deliveries are queued and
// retried off the decision path, each webhook from its own queue: a
// receiver that fails or hangs never delays a decision nor another
// webhook, and is counted. At shutdown the queues get a short drain.
package notification

import (
	"fmt"
	"net/url"
	"slices"
	"time"
)

// Event is what a notification is about.
type Event string

// Events.
const (
	Start     Event = "start"
	Step      Event = "step"
	Approval  Event = "approval"
	Promotion Event = "promotion"
	Rollback  Event = "rollback"
	Undo      Event = "undo"
	Refused   Event = "gates_refused"
	// An exception of the baseline in service became stale (it let
	// nothing through over the configured thresholds) or expired.
	ExceptionStale   Event = "exception_stale"
	ExceptionExpired Event = "exception_expired"
)

// Events lists every event, as config and metrics name them.
var Events = []Event{Start, Step, Approval, Promotion, Rollback, Undo, Refused, ExceptionStale, ExceptionExpired}

// Format is a webhook's body.
type Format string

// Formats.
const (
	JSON  Format = "json"
	Slack Format = "slack"
)

// Webhook is one receiver.
type Webhook struct {
	// URL receives a POST per event. It often carries a secret (Slack's
	// do): it is never logged, only its host.
	URL string `mapstructure:"url"`
	// Events it wants; empty means all.
	Events []Event `mapstructure:"events"`
	Format Format  `mapstructure:"format"`
}

// Config is the notifications section.
type Config struct {
	Webhooks []Webhook `mapstructure:"webhooks"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries after a failed attempt, waiting 1 s, 2 s, 4 s... between.
	Retries int `mapstructure:"retries"`
	// QueueSize bounds the deliveries waiting for each webhook; past it,
	// new ones for that webhook are dropped and counted.
	QueueSize int `mapstructure:"queue_size"`
}

// DefaultConfig is the section's default: no webhooks.
var DefaultConfig = Config{Webhooks: []Webhook{}, Timeout: 5 * time.Second, Retries: 3, QueueSize: 256}

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	switch {
	case c.Timeout < 100*time.Millisecond || c.Timeout > time.Minute:
		return fmt.Errorf("timeout: must be between 100ms and 1m, got %s", c.Timeout)
	case c.Retries < 0 || c.Retries > 10:
		return fmt.Errorf("retries: must be between 0 and 10, got %d", c.Retries)
	case c.QueueSize < 1 || c.QueueSize > 100000:
		return fmt.Errorf("queue_size: must be between 1 and 100000, got %d", c.QueueSize)
	}
	for i, w := range c.Webhooks {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhooks[%d].url: want an http:// or https:// URL", i) // not quoted: it may hold a secret
		}
		switch w.Format {
		case JSON, Slack:
		default:
			return fmt.Errorf("webhooks[%d].format: want json or slack, got %q", i, w.Format)
		}
		for j, e := range w.Events {
			if !slices.Contains(Events, e) {
				return fmt.Errorf("webhooks[%d].events[%d]: unknown event %q; want one of %v", i, j, e, Events)
			}
		}
	}
	return nil
}
