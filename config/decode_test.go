package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecodeYAMLIsStrict(t *testing.T) {
	type section struct {
		Percent float64       `mapstructure:"percent"`
		Workers int           `mapstructure:"workers"`
		Wait    time.Duration `mapstructure:"wait"`
		Hosts   []string      `mapstructure:"hosts"`
	}
	for _, tc := range []struct{ yaml, want string }{
		{"percent: 12.5\nworkers: 4\nwait: 2s\nhosts: [a, b]\n", ""},
		{"percent: true\n", "'percent' expected a number, got true"},
		{"workers: 4.5\n", "'workers' expected a whole number, got 4.5"},
		{"workers: \"4\"\n", ""}, // a string parses, as from the environment
		{"wait: 5\n", ""},        // a bare number is nanoseconds; Validate refuses it by range
		{"wiat: 2s\n", "invalid keys: wiat"},
	} {
		var s section
		err := DecodeYAML([]byte(tc.yaml), &s)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// A bad fixture that does not say what it must fail with checks nothing.
func TestFixturesNeedTheirWant(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.bad.yml"), []byte("workers: 0\n"), 0o644)
	if _, err := Fixtures(dir); err == nil || !strings.Contains(err.Error(), "# want:") {
		t.Errorf("a bad fixture without its want: %v", err)
	}
}
