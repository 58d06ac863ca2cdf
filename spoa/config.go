package spoa

import (
	"fmt"
	"net"
	"time"
)

// Config is the spoa section: the SPOE agent beside (or instead of) the
// HTTP proxy.
type Config struct {
	// Listen is the agent's TCP address; "" runs no agent. HAProxy's
	// spoe-agent backend points at it.
	Listen string `mapstructure:"listen"`
	// MaxFrameSize is the largest SPOP frame the agent accepts, HAProxy's
	// tune.bufsize minus 4 at most; a request body larger than a frame
	// arrives cut (see OnTruncatedBody). The agent answers HAProxy's HELLO
	// with the smaller of the two sizes.
	MaxFrameSize uint32 `mapstructure:"max_frame_size"`
	// OnTruncatedBody is what a request whose body arrived cut gets: the
	// bytes after the cut would reach the application unjudged.
	OnTruncatedBody TruncatedBody `mapstructure:"on_truncated_body"`
	// ProcessingTimeout bounds one message's judgement; set it to
	// HAProxy's "timeout processing", after which HAProxy stops waiting.
	ProcessingTimeout time.Duration `mapstructure:"processing_timeout"`
}

// TruncatedBody is the spoa.on_truncated_body word.
type TruncatedBody string

// The words on_truncated_body takes.
const (
	// BlockTruncated denies the request (413): what the WAF did not read
	// must not reach the application. The default, as the HTTP proxy
	// refuses a body over the ruleset's limit.
	BlockTruncated TruncatedBody = "block"
	// JudgeTruncated judges the bytes that arrived, as coraza-spoa does,
	// and lets the rest through unjudged; counted and logged.
	JudgeTruncated TruncatedBody = "judge"
)

// DefaultConfig runs no agent; the rest is what one gets when Listen is
// set.
var DefaultConfig = Config{
	MaxFrameSize:      16380, // HAProxy's default tune.bufsize (16384) minus the length
	OnTruncatedBody:   BlockTruncated,
	ProcessingTimeout: 500 * time.Millisecond,
}

// Validate names the first key that is wrong.
func (c Config) Validate() error {
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("listen: want host:port, got %q: %w", c.Listen, err)
		}
	}
	switch {
	case c.MaxFrameSize < 256:
		return fmt.Errorf("max_frame_size: must be at least 256 bytes (HAProxy's minimum), got %d", c.MaxFrameSize)
	case c.OnTruncatedBody != BlockTruncated && c.OnTruncatedBody != JudgeTruncated:
		return fmt.Errorf("on_truncated_body: must be %q or %q, got %q", BlockTruncated, JudgeTruncated, string(c.OnTruncatedBody))
	case c.ProcessingTimeout <= 0:
		return fmt.Errorf("processing_timeout: must be positive, got %s", c.ProcessingTimeout)
	}
	return nil
}
