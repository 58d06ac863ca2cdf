package admin

import (
	"testing"

	"github.com/wafcanary/wafcanary/config"
)

// The section's own fixtures, beside its Validate, read as the command
// reads them.
func TestConfigFixtures(t *testing.T) { config.TestSection(t, "testdata/config", DefaultConfig) }
