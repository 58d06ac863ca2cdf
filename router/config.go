package router

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// RoutingConfig decides which ruleset enforces on which client.
type RoutingConfig struct {
	// CandidatePercent is the share of sticky keys the candidate enforces
	// on, 0 to 100 with 0.01 resolution.
	CandidatePercent float64 `mapstructure:"candidate_percent"`
	// StickyKey is "ip" (the client address), "header:NAME" or "cookie:NAME".
	// Requests without the header or cookie fall back to the client address.
	StickyKey string `mapstructure:"sticky_key"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed when
	// finding the client address.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// HashSecret keys the assignment hash so clients cannot work out, or
	// choose, their arm. Empty means a secret generated once and kept in
	// the state directory; replicas of one fleet must share it.
	HashSecret string `mapstructure:"hash_secret"`
}

// ShadowConfig controls evaluation of the non-enforcing ruleset.
type ShadowConfig struct {
	// SamplePercent of requests are also evaluated by the ruleset that did
	// not enforce on them, when there is a candidate.
	SamplePercent float64 `mapstructure:"sample_percent"`
	// QueueSize bounds the captured requests waiting for evaluation; when
	// it is full new samples are dropped and counted.
	QueueSize int `mapstructure:"queue_size"`
	// Workers evaluate captured requests concurrently.
	Workers int `mapstructure:"workers"`
	// MaxBodyBytes bounds the request body a sample may carry; larger
	// requests are not sampled (counted as dropped).
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
	// QueueBytes bounds the bodies and headers of the samples waiting,
	// together; a sample that would pass it is dropped and counted. Without
	// it the bound was QueueSize x MaxBodyBytes, 1 GiB by default, which
	// 14 requests/s of 900 KB posts reached.
	QueueBytes int64 `mapstructure:"queue_bytes"`
	// FullEvaluation judges every sample with the other ruleset. Without
	// it, a candidate that only takes rules or targets away from the
	// baseline is evaluated only on samples where something it touches
	// matched; on the others its verdict is the enforcing one by
	// construction (ruleset.Difference), and the pair is counted in
	// wafcanary_shadow_derived_total.
	FullEvaluation bool `mapstructure:"full_evaluation"`
}

// ProxyConfig controls the proxy's behaviour towards clients and upstream.
type ProxyConfig struct {
	// FailMode is what happens when Coraza fails to process a request:
	// "closed" answers 500 without contacting the upstream, "open" lets
	// the request through uninspected.
	FailMode string `mapstructure:"fail_mode"`
	// InspectResponseBody lets rulesets that ask for response bodies
	// (SecResponseBodyAccess On) see them. Only the MIME types the ruleset
	// lists are buffered, up to its SecResponseBodyLimit; everything else
	// streams through.
	InspectResponseBody bool `mapstructure:"inspect_response_body"`
	// PreserveHost sends the client's Host header upstream instead of the
	// upstream URL's host.
	PreserveHost bool `mapstructure:"preserve_host"`
	// DialTimeout bounds connecting to the upstream.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers; zero means no limit. An upstream that accepts and never
	// answers would otherwise hold the client, and a connection, for ever.
	ResponseHeaderTimeout time.Duration `mapstructure:"response_header_timeout"`
	// ReadTimeout bounds reading a client's whole request, body included;
	// zero means no limit. Without it a client trickling a body holds its
	// connection, and its buffer, for ever.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// MaxURIBytes bounds the request-target; a longer one is refused with
	// 414 before the WAF. CRS's cost grows with what it inspects (a 256 KB
	// query of binary arguments took half a second); nginx and Apache
	// stop at about 8 KB too.
	MaxURIBytes int `mapstructure:"max_uri_bytes"`
	// MaxHeaderBytes bounds the request line and headers together (the
	// server answers 431 past it). Go's default is 1 MiB, at which one
	// binary Cookie costs CRS seconds; nginx's buffers take 32 KB.
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
}

// Defaults for each section.
var (
	DefaultRoutingConfig = RoutingConfig{StickyKey: "ip"}
	DefaultShadowConfig  = ShadowConfig{SamplePercent: 100, QueueSize: 1024, Workers: 1, MaxBodyBytes: 1 << 20, QueueBytes: 64 << 20}
	DefaultProxyConfig   = ProxyConfig{
		FailMode:              FailClosed,
		InspectResponseBody:   true,
		PreserveHost:          true,
		DialTimeout:           5 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		ReadTimeout:           time.Minute,
		MaxURIBytes:           8 << 10,
		MaxHeaderBytes:        32 << 10,
	}
)

// Fail modes.
const (
	FailClosed = "closed"
	FailOpen   = "open"
)

// Validate reports the first invalid key, named relative to the section.
func (c RoutingConfig) Validate() error {
	if _, err := ParseShare(c.CandidatePercent); err != nil {
		return fmt.Errorf("candidate_percent: %w", err)
	}
	if _, err := parseStickyKey(c.StickyKey); err != nil {
		return fmt.Errorf("sticky_key: %w", err)
	}
	for i, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			return fmt.Errorf("trusted_proxies[%d]: %w", i, err)
		}
	}
	if c.HashSecret != "" && len(c.HashSecret) < 16 {
		return fmt.Errorf("hash_secret: must be at least 16 characters, got %d", len(c.HashSecret))
	}
	return nil
}

// Bounds of the shadow section.
const (
	MaxShadowQueue   = 1 << 16
	MaxShadowWorkers = 256
	MaxShadowBody    = 64 << 20
	MaxShadowBytes   = 16 << 30
)

// Validate reports the first invalid key, named relative to the section.
func (c ShadowConfig) Validate() error {
	if _, err := ParseShare(c.SamplePercent); err != nil {
		return fmt.Errorf("sample_percent: %w", err)
	}
	// The queue is allocated at start-up and each worker is an OS thread:
	// 1e11 slots or 100,000 workers crashed the process before it served.
	if c.QueueSize < 1 || c.QueueSize > MaxShadowQueue {
		return fmt.Errorf("queue_size: must be between 1 and %d, got %d", MaxShadowQueue, c.QueueSize)
	}
	if c.Workers < 1 || c.Workers > MaxShadowWorkers {
		return fmt.Errorf("workers: must be between 1 and %d, got %d", MaxShadowWorkers, c.Workers)
	}
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > MaxShadowBody {
		return fmt.Errorf("max_body_bytes: must be between 0 and %d, got %d", MaxShadowBody, c.MaxBodyBytes)
	}
	// A sample of max_body_bytes must fit, or large bodies are never judged.
	if c.QueueBytes < int64(c.MaxBodyBytes) || c.QueueBytes < 1<<20 || c.QueueBytes > MaxShadowBytes {
		return fmt.Errorf("queue_bytes: must be between max(1 MiB, max_body_bytes = %d) and %d, got %d", c.MaxBodyBytes, int64(MaxShadowBytes), c.QueueBytes)
	}
	return nil
}

// Validate reports the first invalid key, named relative to the section.
func (c ProxyConfig) Validate() error {
	if c.FailMode != FailClosed && c.FailMode != FailOpen {
		return fmt.Errorf("fail_mode: must be %q or %q, got %q", FailClosed, FailOpen, c.FailMode)
	}
	// A bare number in a config file decodes as nanoseconds; anything
	// under a millisecond is that mistake, not a choice.
	if c.DialTimeout < time.Millisecond {
		return fmt.Errorf("dial_timeout: must be at least 1ms (write units, e.g. 5s), got %s", c.DialTimeout)
	}
	if c.ResponseHeaderTimeout != 0 && c.ResponseHeaderTimeout < time.Millisecond {
		return fmt.Errorf("response_header_timeout: must be 0 (no limit) or at least 1ms (write units, e.g. 30s), got %s", c.ResponseHeaderTimeout)
	}
	if c.ReadTimeout != 0 && c.ReadTimeout < time.Millisecond {
		return fmt.Errorf("read_timeout: must be 0 (no limit) or at least 1ms (write units, e.g. 60s), got %s", c.ReadTimeout)
	}
	if c.MaxURIBytes < MinURIBytes || c.MaxURIBytes > MaxURIBytes {
		return fmt.Errorf("max_uri_bytes: must be between %d and %d, got %d", MinURIBytes, MaxURIBytes, c.MaxURIBytes)
	}
	if c.MaxHeaderBytes < c.MaxURIBytes || c.MaxHeaderBytes > MaxHeaderBytes {
		return fmt.Errorf("max_header_bytes: must be between max_uri_bytes (%d) and %d, got %d", c.MaxURIBytes, MaxHeaderBytes, c.MaxHeaderBytes)
	}
	return nil
}

// Bounds of the proxy section's sizes.
const (
	MinURIBytes    = 1 << 10
	MaxURIBytes    = 1 << 20
	MaxHeaderBytes = 1 << 20
)

// Share is a fraction of traffic in basis points: 0 to 10000, so 0.01%
// resolution with exact integer comparisons on the request path.
type Share uint32

// MaxShare is 100%.
const MaxShare Share = 10000

// ParseShare converts a percentage to a Share, refusing values out of range
// or finer than 0.01%.
func ParseShare(percent float64) (Share, error) {
	if math.IsNaN(percent) || percent < 0 || percent > 100 {
		return 0, fmt.Errorf("must be between 0 and 100, got %v", percent)
	}
	bp := math.Round(percent * 100)
	if math.Abs(bp-percent*100) > 1e-6 {
		return 0, fmt.Errorf("resolution is 0.01, got %v", percent)
	}
	return Share(bp), nil
}

// Percent returns the share as a percentage.
func (s Share) Percent() float64 { return float64(s) / 100 }

// Ratio returns the share as a fraction between 0 and 1.
func (s Share) Ratio() float64 { return float64(s) / float64(MaxShare) }

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("want an IP or CIDR, got %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want an IP or CIDR, got %q", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
