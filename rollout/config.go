package rollout

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/router"
)

// Step is one stage of a rollout: the candidate's share, and how long and
// how much traffic it must see before the controller may move on.
type Step struct {
	Percent     float64       `mapstructure:"percent"`
	MinDuration time.Duration `mapstructure:"min_duration"`
	MinRequests int64         `mapstructure:"min_requests"`
	// Approval holds the rollout before this step, however good the
	// evidence, until an operator promotes it (Argo Rollouts' pause: {}).
	Approval bool `mapstructure:"approval"`
}

// Config is the rollout section.
type Config struct {
	Steps       []Step        `mapstructure:"steps"`
	Interval    time.Duration `mapstructure:"interval"`
	MaxDuration time.Duration `mapstructure:"max_duration"`
	Policy      Policy        `mapstructure:"policy"`
	// MetricsSource is where the evidence comes from: "process" (this
	// replica's own traffic) or "prometheus" (a fleet's, summed).
	MetricsSource string                    `mapstructure:"metrics_source"`
	Prometheus    evidence.PrometheusConfig `mapstructure:"prometheus"`
	// KeepBaselines is how many baselines that have served are kept, with
	// their files, for undo; the one serving is always among them.
	KeepBaselines int `mapstructure:"keep_baselines"`
	// ConsecutiveErrorLimit is how many analyses in a row may fail to
	// judge the candidate (its evidence unreadable, the live probe not
	// run) before the rollout rolls back: a candidate that cannot be
	// judged must not keep serving until max_duration (Argo Rollouts'
	// consecutiveErrorLimit).
	ConsecutiveErrorLimit int `mapstructure:"consecutive_error_limit"`
}

// DefaultConfig is the rollout section's default: shadow only, then 1%,
// 5%, 25%, 50% and 100% of clients.
var DefaultConfig = Config{
	Steps: []Step{
		{Percent: 0, MinDuration: 5 * time.Minute, MinRequests: 5000},
		{Percent: 1, MinDuration: 10 * time.Minute, MinRequests: 5000},
		{Percent: 5, MinDuration: 10 * time.Minute, MinRequests: 10000},
		{Percent: 25, MinDuration: 15 * time.Minute, MinRequests: 20000},
		{Percent: 50, MinDuration: 15 * time.Minute, MinRequests: 20000},
		{Percent: 100, MinDuration: 10 * time.Minute, MinRequests: 10000},
	},
	Interval:    15 * time.Second,
	MaxDuration: 6 * time.Hour,
	Policy: Policy{
		Alpha:                    0.05,
		MaxNewBlockRate:          0.001,
		MaxLostBlockRate:         0.001,
		MaxBlockRateIncrease:     0.005,
		MaxUpstreamErrorIncrease: 0.005,
		MaxLatencyRatio:          1.2,
		LatencySlackP50:          100 * time.Microsecond,
		LatencySlack:             time.Millisecond,
		LatencyTailMargin:        0.005,
		MinLatencySamples:        200,
		SplitChecksFromPercent:   25,
		OnMaxDuration:            RollbackAtMaxDuration,
	},
	MetricsSource:         "process",
	Prometheus:            evidence.PrometheusConfig{Timeout: 5 * time.Second},
	KeepBaselines:         10,
	ConsecutiveErrorLimit: 5,
}

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	if len(c.Steps) == 0 {
		return errors.New("steps: at least one step is required")
	}
	prev := -1.0
	for i, s := range c.Steps {
		// A step's percent becomes the router's share: one it cannot
		// serve exactly (0.001 would run at 0%) is refused as the
		// routing section refuses it.
		if _, err := router.ParseShare(s.Percent); err != nil {
			return fmt.Errorf("steps[%d].percent: %w", i, err)
		}
		switch {
		case s.Percent <= prev:
			return fmt.Errorf("steps[%d].percent: must rise from step to step, got %v after %v", i, s.Percent, prev)
		case s.MinDuration < 0:
			return fmt.Errorf("steps[%d].min_duration: must not be negative, got %s", i, s.MinDuration)
		case s.MinRequests < 0:
			return fmt.Errorf("steps[%d].min_requests: must not be negative, got %d", i, s.MinRequests)
		}
		prev = s.Percent
	}
	if c.Steps[0].Approval {
		return errors.New("steps[0].approval: the first step begins with `wafcanary start`, which is the approval; put approval on a later step")
	}
	if c.Steps[len(c.Steps)-1].Percent != 100 {
		return fmt.Errorf("steps[%d].percent: the last step must be 100, got %v", len(c.Steps)-1, c.Steps[len(c.Steps)-1].Percent)
	}
	if c.Interval < time.Second {
		return fmt.Errorf("interval: must be at least 1s, got %s", c.Interval)
	}
	if c.KeepBaselines < 2 {
		return fmt.Errorf("keep_baselines: must be at least 2 (the one serving and one to undo to), got %d", c.KeepBaselines)
	}
	if c.ConsecutiveErrorLimit < 1 {
		return fmt.Errorf("consecutive_error_limit: must be at least 1 (analyses in a row that cannot judge the candidate before it is rolled back), got %d", c.ConsecutiveErrorLimit)
	}
	if c.MaxDuration < c.Interval {
		return fmt.Errorf("max_duration: must be at least the interval (%s), got %s", c.Interval, c.MaxDuration)
	}
	switch c.MetricsSource {
	case "process":
	case "prometheus":
		u, err := url.Parse(c.Prometheus.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("prometheus.url: metrics_source is prometheus, want an http:// or https:// URL, got %q", c.Prometheus.URL)
		}
		if c.Prometheus.Timeout <= 0 || c.Prometheus.Timeout >= c.Interval {
			return fmt.Errorf("prometheus.timeout: must be positive and below the interval (%s), got %s", c.Interval, c.Prometheus.Timeout)
		}
	default:
		return fmt.Errorf("metrics_source: want process or prometheus, got %q", c.MetricsSource)
	}
	return c.Policy.validate()
}
