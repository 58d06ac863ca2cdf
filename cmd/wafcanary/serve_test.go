package main

import (
	"context"
	"testing"
	"time"
)

// The serve command maps start-up failures to the documented exit codes
// before it opens any listener.
func TestServeCmdExitCodes(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{name: "bad config file", args: []string{"--config", "testdata/fail-mode.bad.yml"}, want: exitUsage},
		{name: "missing config file", args: []string{"--config", "testdata/missing.yml"}, want: exitUsage},
		{name: "unknown environment variable", env: map[string]string{"WAFCANARY_CANDIDATE": "x.conf"}, want: exitUsage},
		// Flags are validated like the file: 0.001 is below the 0.01 resolution.
		{name: "bad flag value", args: []string{"--candidate", "embedded:candidate-pl2.conf", "--candidate-percent", "0.001"}, want: exitUsage},
		{name: "unknown flag", args: []string{"--candidate-pct", "5"}, want: exitUsage},
		{name: "broken baseline", args: []string{"--baseline", "testdata/rulesets/broken.conf"}, want: exitInvalidRuleset},
		// Why: cobra's own argument checks must map to the usage exit code too.
		{name: "stray argument", args: []string{"extra"}, want: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append([]string{"serve", "--state-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, tt.args...)
			// Every row fails before serving; the timeout only bounds a regression.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := runRoot(t, ctx, args...)
			if got := exitCode(err); got != tt.want {
				t.Errorf("serve %v: error %v, exitCode %d, want %d", tt.args, err, got, tt.want)
			}
		})
	}
}
