package suite

import (
	_ "embed"
	"fmt"

	"go.yaml.in/yaml/v3"
)

//go:embed ignore.yaml
var ignoreYAML []byte

// Ignored returns the cases left out of the pass rate, with their reasons:
// cases whose expectation cannot hold through a Go HTTP server, or needs
// matched values that wafcanary never keeps.
func Ignored() map[string]string {
	m := map[string]string{}
	if err := yaml.Unmarshal(ignoreYAML, &m); err != nil {
		panic(fmt.Sprintf("suite: embedded ignore.yaml: %v", err)) // caught by the package's tests
	}
	return m
}
