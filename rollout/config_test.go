package rollout

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Every bad value names its key. NaN and infinities are refused wherever
// a number is read: NaN compares false with everything, and a NaN alpha
// once let a paranoia-level-2 candidate reach 100% in about 12 requests.
func TestConfigValidate(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"the default", func(*Config) {}, ""},
		{"NaN alpha", func(c *Config) { c.Policy.Alpha = nan }, "policy.alpha: must be between 0 and 0.5, got NaN"},
		{"alpha too high", func(c *Config) { c.Policy.Alpha = 0.5 }, "policy.alpha"},
		{"NaN new-block limit", func(c *Config) { c.Policy.MaxNewBlockRate = nan }, "policy.max_new_block_rate"},
		{"infinite lost-block limit", func(c *Config) { c.Policy.MaxLostBlockRate = inf }, "policy.max_lost_block_rate"},
		{"NaN block-rate limit", func(c *Config) { c.Policy.MaxBlockRateIncrease = nan }, "policy.max_block_rate_increase"},
		{"NaN upstream-error limit", func(c *Config) { c.Policy.MaxUpstreamErrorIncrease = nan }, "policy.max_upstream_error_increase"},
		{"NaN latency ratio", func(c *Config) { c.Policy.MaxLatencyRatio = nan }, "policy.max_latency_ratio"},
		{"infinite latency ratio", func(c *Config) { c.Policy.MaxLatencyRatio = inf }, "policy.max_latency_ratio"},
		{"NaN tail margin", func(c *Config) { c.Policy.LatencyTailMargin = nan }, "policy.latency_tail_margin"},
		{"NaN split-checks share", func(c *Config) { c.Policy.SplitChecksFromPercent = nan }, "policy.split_checks_from_percent"},
		{"negative p50 slack", func(c *Config) { c.Policy.LatencySlackP50 = -time.Millisecond }, "policy.latency_slack_p50"},
		{"NaN step", func(c *Config) { c.Steps[2].Percent = nan }, "steps[2].percent: must be between 0 and 100, got NaN"},
		// Why: the router's share has 0.01% steps; 0.001 ran at 0% while "progressing".
		{"step below the share's resolution", func(c *Config) { c.Steps[1].Percent = 0.001 }, "steps[1].percent: resolution is 0.01"},
		{"keep one baseline only", func(c *Config) { c.KeepBaselines = 1 }, "keep_baselines"},
		{"unknown on_max_duration", func(c *Config) { c.Policy.OnMaxDuration = "promote" }, "policy.on_max_duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig
			c.Steps = append([]Step(nil), DefaultConfig.Steps...)
			tt.edit(&c)
			err := c.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
