package exception

import (
	"fmt"
	"math"
	"time"
)

// Config is the exceptions section: how much traffic is judged without
// each exception of the served baseline, and when one that suppresses
// nothing is called stale.
type Config struct {
	// SamplePercent of the requests the baseline judges are judged again,
	// off the request path, by the baseline without each exception in
	// turn; 0 turns the measurement off. Resolution 0.01.
	SamplePercent float64 `mapstructure:"sample_percent"`
	// MaxVariants bounds the compiled variants (the baseline without one
	// exception), each a compiled CRS of its own (docs/PERFORMANCE.md has
	// its memory); exceptions past it, in file order, are not measured.
	MaxVariants int `mapstructure:"max_variants"`
	// QueueSize and QueueBytes bound the sampled requests waiting to be
	// judged, in number and in bytes (headers and bodies); past either a
	// sample is dropped and counted.
	QueueSize  int   `mapstructure:"queue_size"`
	QueueBytes int64 `mapstructure:"queue_bytes"`
	// MaxBodyBytes bounds the body a sample may carry; a larger request
	// is not judged (counted as dropped).
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
	// Workers judge samples at a lower OS priority than the proxy.
	Workers int `mapstructure:"workers"`
	// StaleAfterRequests and StaleAfter: an exception judged on at least
	// that many requests over at least that long, since its last
	// would-be block or since it was first judged, without a would-be
	// block, is stale. Both must hold.
	StaleAfterRequests int           `mapstructure:"stale_after_requests"`
	StaleAfter         time.Duration `mapstructure:"stale_after"`
	// CheckInterval is how often expiry and staleness are judged again
	// (gauges, notifications).
	CheckInterval time.Duration `mapstructure:"check_interval"`
}

// DefaultConfig measures nothing (sample_percent 0) and holds at most
// ten variants.
var DefaultConfig = Config{
	SamplePercent:      0,
	MaxVariants:        10,
	QueueSize:          1024,
	QueueBytes:         32 << 20,
	MaxBodyBytes:       1 << 20,
	Workers:            1,
	StaleAfterRequests: 10000,
	StaleAfter:         30 * 24 * time.Hour,
	CheckInterval:      time.Minute,
}

// Bounds of the section.
const (
	MaxVariants   = 100
	MaxQueue      = 1 << 16
	MaxQueueBytes = 4 << 30
	MaxBody       = 64 << 20
	MaxWorkers    = 64
)

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	if math.IsNaN(c.SamplePercent) || c.SamplePercent < 0 || c.SamplePercent > 100 {
		return fmt.Errorf("sample_percent: must be between 0 and 100, got %v", c.SamplePercent)
	}
	if bp := math.Round(c.SamplePercent * 100); math.Abs(bp-c.SamplePercent*100) > 1e-6 {
		return fmt.Errorf("sample_percent: resolution is 0.01, got %v", c.SamplePercent)
	}
	switch {
	case c.MaxVariants < 0 || c.MaxVariants > MaxVariants:
		return fmt.Errorf("max_variants: must be between 0 and %d, got %d", MaxVariants, c.MaxVariants)
	case c.QueueSize < 1 || c.QueueSize > MaxQueue:
		return fmt.Errorf("queue_size: must be between 1 and %d, got %d", MaxQueue, c.QueueSize)
	case c.MaxBodyBytes < 0 || c.MaxBodyBytes > MaxBody:
		return fmt.Errorf("max_body_bytes: must be between 0 and %d, got %d", MaxBody, c.MaxBodyBytes)
	case c.QueueBytes < int64(c.MaxBodyBytes) || c.QueueBytes < 1<<20 || c.QueueBytes > MaxQueueBytes:
		return fmt.Errorf("queue_bytes: must be between max(1 MiB, max_body_bytes = %d) and %d, got %d", c.MaxBodyBytes, int64(MaxQueueBytes), c.QueueBytes)
	case c.Workers < 1 || c.Workers > MaxWorkers:
		return fmt.Errorf("workers: must be between 1 and %d, got %d", MaxWorkers, c.Workers)
	case c.StaleAfterRequests < 1:
		return fmt.Errorf("stale_after_requests: must be at least 1, got %d", c.StaleAfterRequests)
	case c.StaleAfter < time.Minute:
		// A bare number decodes as nanoseconds: that mistake, not a choice.
		return fmt.Errorf("stale_after: must be at least 1m (write units, e.g. 720h), got %s", c.StaleAfter)
	case c.CheckInterval < time.Second || c.CheckInterval > time.Hour:
		return fmt.Errorf("check_interval: must be between 1s and 1h, got %s", c.CheckInterval)
	}
	return nil
}

// share is SamplePercent in basis points (validated).
func (c Config) share() uint32 { return uint32(math.Round(c.SamplePercent * 100)) }
