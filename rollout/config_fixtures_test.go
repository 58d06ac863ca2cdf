package rollout

import (
	"testing"

	"github.com/wafcanary/wafcanary/config"
)

// The section's own fixtures, beside its Validate, read as the command
// reads them. Every branch of Validate (the steps, the section, the
// policy) has a file here or a row in TestConfigValidate.
func TestConfigFixtures(t *testing.T) { config.TestSection(t, "testdata/config", DefaultConfig) }
