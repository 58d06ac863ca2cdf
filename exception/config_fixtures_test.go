package exception

import (
	"testing"

	"github.com/wafcanary/wafcanary/config"
)

// The section's fixtures, beside its Validate, read as the command reads
// them.
func TestConfigFixtures(t *testing.T) {
	config.TestSection(t, "testdata/config", DefaultConfig)
}
