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
//
// Captures are kept per signature (see SignatureOf): the first
// CapturesPerSignature requests of each, with a count of every block of
// it. When a bound is passed, the signature seen least recently goes
// first, whole, so a scanner's thousands of blocks on a few signatures
// never push out a rare one.
type Config struct {
	// Enabled keeps each request the enforcing ruleset blocked.
	Enabled bool `mapstructure:"enabled"`
	// MaxSignatures bounds the signatures remembered.
	MaxSignatures int `mapstructure:"max_signatures"`
	// CapturesPerSignature is how many requests of one signature are
	// kept: the first ones; later blocks of it are counted, not kept.
	CapturesPerSignature int `mapstructure:"captures_per_signature"`
	// MaxPinned bounds the signatures an operator pins (kept past
	// max_age and never evicted until unpinned).
	MaxPinned int `mapstructure:"max_pinned"`
	// MaxRequests and MaxBytes bound the captured requests over every
	// signature; MaxAge drops a capture, and a signature not seen since,
	// that old.
	MaxRequests int           `mapstructure:"max_requests"`
	MaxBytes    int64         `mapstructure:"max_bytes"`
	MaxAge      time.Duration `mapstructure:"max_age"`
	// MaxBodyBytes is the most of a request body kept, of any type.
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
	// MinFreeBytes is the free space a capture never takes: captures
	// share state_dir's volume with the journal and the rollout state, and
	// blocked requests (anyone can send them) must not fill it so that a
	// rollout cannot be recorded. 0 turns the check off.
	MinFreeBytes int64 `mapstructure:"min_free_bytes"`
	// Redact lists words whose presence in a parameter, field or JSON
	// key name redacts its value. A name is split into words at - _ . [ ]
	// spaces and camelCase; a listed word of 5 letters or more matches
	// anywhere in the name (password: newpassword, user_password), a
	// shorter one only as whole words (key: api_key, keyId, not
	// moderation_keys or keyword; pin: pin_code, not ping_status). Headers
	// are kept only when known not to carry credentials; Cookie and
	// Authorization never.
	Redact []string `mapstructure:"redact"`
	// RedactNames lists names whose values are redacted when the whole
	// name is one of them, in any case: CSRF tokens and nonces by default
	// (_wpnonce, csrfmiddlewaretoken), which are credentials for as long
	// as a session lives.
	RedactNames []string `mapstructure:"redact_names"`
}

// DefaultConfig is the capture section's default.
var DefaultConfig = Config{
	MaxSignatures:        1000,
	CapturesPerSignature: 3,
	MaxPinned:            20,
	MaxRequests:          3000,
	MaxBytes:             64 << 20,
	MaxAge:               7 * 24 * time.Hour,
	MaxBodyBytes:         64 << 10,
	MinFreeBytes:         256 << 20,
	Redact: []string{
		"password", "passwd", "passphrase", "passcode", "pass", "pwd",
		"secret", "token", "api_key", "access_key", "private_key", "authkey", "auth", "authorization", "credential", "cred", "bearer", "jwt",
		"session", "sessid", "sid", "key", "sig", "amz_signature", "goog_signature", "otp", "pin", "pincode",
		"card", "cardnumber", "creditcard", "cc_number", "cvv", "cvc", "iban", "ssn",
		"nonce", "csrf", "xsrf",
	},
	RedactNames: []string{
		"_wpnonce", "csrf_token", "csrfmiddlewaretoken", "authenticity_token", "_token",
		"__RequestVerificationToken", "_csrf", "_xsrf", "xsrf-token", "csrf-token", "__csrf_magic", "nonce",
		"form_key", "form_token",
	},
}

// Bounds of the capture section.
const (
	MaxStoreSignatures  = 20000
	MaxStoreRequests    = 100000
	MaxStoreBytes       = 4 << 30
	MaxCaptureBody      = 1 << 20
	MaxPerSignature     = 100
	MaxPinnedSignatures = 1000
)

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	switch {
	case c.MaxSignatures < 1 || c.MaxSignatures > MaxStoreSignatures:
		return fmt.Errorf("max_signatures: must be between 1 and %d, got %d", MaxStoreSignatures, c.MaxSignatures)
	case c.CapturesPerSignature < 1 || c.CapturesPerSignature > MaxPerSignature:
		return fmt.Errorf("captures_per_signature: must be between 1 and %d, got %d", MaxPerSignature, c.CapturesPerSignature)
	case c.MaxPinned < 0 || c.MaxPinned > MaxPinnedSignatures || c.MaxPinned > c.MaxSignatures:
		return fmt.Errorf("max_pinned: must be between 0 and %d and at most max_signatures (%d), got %d", MaxPinnedSignatures, c.MaxSignatures, c.MaxPinned)
	case c.MaxRequests < 1 || c.MaxRequests > MaxStoreRequests:
		return fmt.Errorf("max_requests: must be between 1 and %d, got %d", MaxStoreRequests, c.MaxRequests)
	case c.MaxRequests < c.CapturesPerSignature:
		return fmt.Errorf("max_requests: must be at least captures_per_signature (%d), got %d", c.CapturesPerSignature, c.MaxRequests)
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
		if len(words(r)) == 0 {
			return fmt.Errorf("redact[%d]: %w", i, fmt.Errorf("%q has no letter or digit to match a name by; remove it", r))
		}
	}
	for i, r := range c.RedactNames {
		if strings.TrimSpace(r) == "" {
			return fmt.Errorf("redact_names[%d]: %w", i, errors.New("an empty name matches no field; remove it"))
		}
	}
	return nil
}
