package capture

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is the capture section: blocked requests kept, redacted, so that
// an operator can explain a block and reproduce it. Off by default: a
// capture holds what users sent.
type Config struct {
	// Enabled keeps each request the enforcing ruleset blocked.
	Enabled bool `mapstructure:"enabled"`
	// MaxRequests, MaxBytes and MaxAge bound the store; the oldest
	// captures go first.
	MaxRequests int           `mapstructure:"max_requests"`
	MaxBytes    int64         `mapstructure:"max_bytes"`
	MaxAge      time.Duration `mapstructure:"max_age"`
	// MaxBodyBytes is the most of a request body kept.
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
	// MinFreeBytes is the free space a capture never takes: captures
	// share state_dir's volume with the journal and the rollout state, and
	// blocked requests (anyone can send them) must not fill it so that a
	// rollout cannot be recorded. 0 turns the check off.
	MinFreeBytes int64 `mapstructure:"min_free_bytes"`
	// Redact lists parameter and field names whose values are replaced by
	// a placeholder, matched as substrings in lower case without - and _
	// (pass covers new_password, key covers api-key). Headers are kept only
	// when known not to carry credentials; Cookie and Authorization never.
	Redact []string `mapstructure:"redact"`
}

// DefaultConfig is the capture section's default.
var DefaultConfig = Config{
	MaxRequests:  1000,
	MaxBytes:     64 << 20,
	MaxAge:       7 * 24 * time.Hour,
	MaxBodyBytes: 64 << 10,
	MinFreeBytes: 256 << 20,
	Redact:       []string{"pass", "pwd", "token", "secret", "card", "cvv", "cvc", "iban", "ssn", "auth", "session", "key", "cred", "sig", "pin", "otp"},
}

// Bounds of the capture section.
const (
	MaxStoreRequests = 100000
	MaxStoreBytes    = 4 << 30
	MaxCaptureBody   = 1 << 20
)

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	switch {
	case c.MaxRequests < 1 || c.MaxRequests > MaxStoreRequests:
		return fmt.Errorf("max_requests: must be between 1 and %d, got %d", MaxStoreRequests, c.MaxRequests)
	case c.MaxBytes < 1<<20 || c.MaxBytes > MaxStoreBytes:
		return fmt.Errorf("max_bytes: must be between 1 MiB and %d, got %d", int64(MaxStoreBytes), c.MaxBytes)
	case c.MaxAge < time.Minute:
		return fmt.Errorf("max_age: must be at least 1m (write units, e.g. 168h), got %s", c.MaxAge)
	case c.MaxBodyBytes < 0 || c.MaxBodyBytes > MaxCaptureBody:
		return fmt.Errorf("max_body_bytes: must be between 0 and %d, got %d", MaxCaptureBody, c.MaxBodyBytes)
	case c.MinFreeBytes < 0:
		return fmt.Errorf("min_free_bytes: must be 0 (no check) or more, got %d", c.MinFreeBytes)
	}
	for i, r := range c.Redact {
		if strings.TrimSpace(r) == "" {
			return fmt.Errorf("redact[%d]: %w", i, errors.New("an empty name would redact every value; remove it"))
		}
	}
	return nil
}
