package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
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

// A default of a named string type reaches the hooks as itself, not as a
// string (viper hands defaults over as they were set): it decodes, and
// does not panic on a type assertion.
func TestStrictTakesNamedStrings(t *testing.T) {
	type word string
	type section struct {
		Word  word     `mapstructure:"word"`
		Words []string `mapstructure:"words"`
	}
	var s section
	c := &mapstructure.DecoderConfig{Result: &s}
	Strict(c)
	dec, err := mapstructure.NewDecoder(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(map[string]any{"word": word(" pause "), "words": word("a, b")}); err != nil || s.Word != " pause " || len(s.Words) != 2 {
		t.Errorf("decoded %+v, %v", s, err)
	}
}
