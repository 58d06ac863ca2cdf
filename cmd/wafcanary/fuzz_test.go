package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadConfig: any config file is refused with an error that says
// where (the file, a key, the environment) or gives a configuration that
// validates; it never panics.
func FuzzLoadConfig(f *testing.F) {
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "WAFCANARY_") {
				t.Skip("WAFCANARY_ variables are set; they would be part of every input")
			}
		}
		file := filepath.Join(dir, "wafcanary.yaml")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(file, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config") {
				t.Fatalf("error without its source: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded a configuration that does not validate: %v", err)
		}
	})
}
