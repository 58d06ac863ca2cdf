package router

import (
	"testing"

	"github.com/wafcanary/wafcanary/config"
)

// The sections' own fixtures, beside their Validate, read as the command
// reads them: one directory per section the router owns.
func TestConfigFixtures(t *testing.T) {
	t.Run("routing", func(t *testing.T) { config.TestSection(t, "testdata/config/routing", DefaultRoutingConfig) })
	t.Run("shadow", func(t *testing.T) { config.TestSection(t, "testdata/config/shadow", DefaultShadowConfig) })
	t.Run("proxy", func(t *testing.T) { config.TestSection(t, "testdata/config/proxy", DefaultProxyConfig) })
}
