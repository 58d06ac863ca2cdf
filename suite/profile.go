package suite

import (
	_ "embed"

	"github.com/wafcanary/wafcanary/ruleset"
)

// Profile is the configuration CRS's regression tests are written for,
// compiled before the ruleset under test: every rule of every paranoia
// level evaluates and logs, and nothing interrupts, so each request runs
// through all phases and its matches can be compared with the test's
// expectations. A ruleset's own changes (exclusions, removed or added
// rules, thresholds) still apply on top of it.
//
//go:embed profile.conf
var Profile string

// Compile recompiles rs under Profile. The result is a separate ruleset,
// owned by the caller.
func Compile(rs *ruleset.Ruleset) (*ruleset.Ruleset, error) {
	return rs.Recompile(Profile)
}
