// Package configs embeds the shipped example configuration and rulesets,
// so the demo and a first run need nothing but the binary.
package configs

import (
	"embed"
	"io/fs"
)

//go:embed wafcanary.yaml rulesets/*.conf rulesets/*.cases.yaml
var files embed.FS

// Rulesets holds the shipped rulesets: baseline.conf, candidate-exclusion.conf
// and candidate-pl2.conf.
var Rulesets, _ = fs.Sub(files, "rulesets")

// ExampleConfig is configs/wafcanary.yaml, every key documented.
func ExampleConfig() []byte {
	b, _ := files.ReadFile("wafcanary.yaml")
	return b
}
