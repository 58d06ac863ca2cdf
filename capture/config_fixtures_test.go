package capture

import (
	"testing"

	"github.com/wafcanary/wafcanary/config"
)

// The section's own fixtures, beside its Validate, read as the command
// reads them.
func TestConfigFixtures(t *testing.T) {
	config.TestFixtures(t, "testdata/config", func(body []byte) error {
		c := DefaultConfig
		if err := config.DecodeYAML(body, &c); err != nil {
			return err
		}
		return c.Validate()
	})
}
