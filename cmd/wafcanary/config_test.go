package main

import (
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"github.com/wafcanary/wafcanary/node"
)

// shippedConfig is the documented example configuration.
const shippedConfig = "../../configs/wafcanary.yaml"

func TestLoadConfigGoodFiles(t *testing.T) {
	clearEnv(t)
	files, err := filepath.Glob("testdata/*.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d testdata/*.good.yml, want at least 3", len(files))
	}
	for _, file := range append(files, shippedConfig) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if _, err := loadConfig(file, nil); err != nil {
				t.Fatalf("loadConfig(%s): %v", file, err)
			}
		})
	}
}

// The shipped file says "Every key is shown with its default": it must
// name every key, and loading it must give exactly the built-in defaults.
func TestShippedConfigShowsEveryDefault(t *testing.T) {
	clearEnv(t)
	got, err := loadConfig(shippedConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := node.Default()
	// state_dir is relative to the file that gives it.
	want.StateDir = filepath.Join(filepath.Dir(shippedConfig), want.StateDir)
	// "trusted_proxies: []" decodes as an empty slice, the default is nil.
	if len(got.Routing.TrustedProxies) == 0 && len(want.Routing.TrustedProxies) == 0 {
		got.Routing.TrustedProxies, want.Routing.TrustedProxies = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shipped config differs from node.Default():\n got %+v\nwant %+v", got, want)
	}

	v := viper.New()
	v.SetConfigFile(shippedConfig)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	known := map[string]any{}
	flatten("", reflect.ValueOf(node.Default()), known)
	for key := range known {
		if !v.InConfig(key) {
			t.Errorf("key %s is not documented in %s", key, shippedConfig)
		}
	}
}

// Every field of a populated file must reach the Config: durations in
// units, IPv6 CIDRs, fractional percentages, nested sections.
func TestLoadConfigDecodesEveryField(t *testing.T) {
	clearEnv(t)
	got, err := loadConfig("testdata/canary.good.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := node.Default()
	want.Listen = "0.0.0.0:8080"
	want.Upstream = "https://app.internal:8443"
	want.StateDir = "/var/lib/wafcanary"
	want.Rulesets.Candidate = "/etc/wafcanary/candidate.conf"
	want.Routing.CandidatePercent = 12.5
	want.Routing.StickyKey = "header:X-Client-ID"
	want.Routing.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.7", "2001:db8::/32"}
	want.Routing.HashSecret = "0123456789abcdef0123"
	want.Shadow.SamplePercent = 25.25
	want.Shadow.QueueSize = 64
	want.Shadow.Workers = 2
	want.Proxy.FailMode = "open"
	want.Proxy.DialTimeout = 1500 * time.Millisecond
	want.Proxy.ResponseHeaderTimeout = 30 * time.Second
	want.Log.Level = "debug"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loadConfig(canary.good.yml):\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadConfigBadFiles(t *testing.T) {
	clearEnv(t)
	// Each file holds exactly one mistake; the error must name its key.
	tests := map[string]string{
		"unknown-top-level.bad.yml": "unknown key upstreem (did you mean upstream?)",
		// Nested keys are checked too, and suggested with their section.
		"unknown-nested.bad.yml": "unknown key routing.stickykey (did you mean routing.sticky_key?)",
		"wrong-type.bad.yml":     "'routing.candidate_percent' cannot parse value as 'float64'",
		// Weak typing is off: a boolean is not a number, a fraction not a count.
		"percent-bool.bad.yml":            "'routing.candidate_percent' expected a number, got true",
		"shadow-workers-fraction.bad.yml": "'shadow.workers' expected a whole number, got 4.5",
		// The file has a candidate, so the range check (not the missing-candidate one) fires.
		"percent-range.bad.yml":             "routing.candidate_percent: must be between 0 and 100, got 120",
		"percent-without-candidate.bad.yml": "routing.candidate_percent: is 5 but rulesets.candidate is not set",
		// Sections keep their own fixtures, one per validation branch
		// (router/, admin/, rollout/, gates/, fleet/ testdata/config); these
		// check each section is named in front of its key.
		"shadow-sample.bad.yml":     "shadow.sample_percent: must be between 0 and 100, got -1",
		"fail-mode.bad.yml":         `proxy.fail_mode: must be "closed" or "open", got "maybe"`,
		"rollout-alpha-nan.bad.yml": "rollout.policy.alpha: must be between 0 and 0.5, got NaN",
		"admin-public.bad.yml":      `admin.token: required when listen is not a loopback address ("0.0.0.0:9090")`,
		// "config: " anchors the top-level key, which "admin.listen" also ends with.
		"listen.bad.yml":           `config: listen: want host:port, got "8080"`,
		"listen-none.bad.yml":      `config: listen: must be set unless spoa.listen is`,
		"upstream-scheme.bad.yml":  `upstream: want an http:// or https:// URL, got "ftp://127.0.0.1:21"`,
		"upstream-no-host.bad.yml": `upstream: want an http:// or https:// URL, got "http:///app"`,
		"log-level.bad.yml":        `log.level: want debug, info, warn or error, got "verbose"`,
		// An explicit empty string in the file must override the default "state".
		"state-dir.bad.yml": "state_dir: must not be empty",
		"baseline.bad.yml":  "rulesets.baseline: must name a ruleset file",
		// A syntax error names the file and the YAML line, there being no key to name.
		"yaml-syntax.bad.yml": "config testdata/yaml-syntax.bad.yml: While parsing config: yaml: line 2",
	}

	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	var inTable []string
	for name := range tests {
		inTable = append(inTable, name)
	}
	sort.Strings(inTable)
	if !reflect.DeepEqual(names, inTable) {
		t.Errorf("testdata/*.bad.yml and the table differ:\n files %v\n table %v", names, inTable)
	}

	for _, name := range names {
		want, ok := tests[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(filepath.Join("testdata", name), nil)
			if err == nil {
				t.Fatalf("loadConfig accepted %s, want an error containing %q", name, want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("loadConfig(%s) error:\n %v\nwant it to contain:\n %s", name, err, want)
			}
		})
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	// precedence.good.yml sets routing.candidate_percent to 10.
	const file = "testdata/precedence.good.yml"
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want float64
	}{
		{name: "default", want: 0},
		{name: "file over default", args: []string{"--config", file}, want: 10},
		{name: "env over default", want: 20, env: map[string]string{
			"WAFCANARY_ROUTING_CANDIDATE_PERCENT": "20",
			"WAFCANARY_RULESETS_CANDIDATE":        "embedded:candidate-pl2.conf",
		}},
		{name: "env over file", env: map[string]string{"WAFCANARY_ROUTING_CANDIDATE_PERCENT": "20"},
			args: []string{"-c", file}, want: 20},
		{name: "flag over file", args: []string{"-c", file, "--candidate-percent", "30"}, want: 30},
		{name: "flag over env", env: map[string]string{"WAFCANARY_ROUTING_CANDIDATE_PERCENT": "20"},
			args: []string{"-c", file, "--candidate-percent", "30"}, want: 30},
		// Rolling back from the command line: an explicit 0 is a value, not "unset".
		{name: "explicit zero flag over env", env: map[string]string{"WAFCANARY_ROUTING_CANDIDATE_PERCENT": "20"},
			args: []string{"-c", file, "--candidate-percent=0"}, want: 0},
		// A flag that was not given must not override the file with its zero default.
		{name: "unset flag keeps file", args: []string{"-c", file, "--listen", "127.0.0.1:1"}, want: 10},
		{name: "flag over default", args: []string{"--candidate", "embedded:candidate-pl2.conf", "--candidate-percent", "0.5"}, want: 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var file string
			cmd := &cobra.Command{Use: "serve"}
			addConfigFlags(cmd, &file)
			if err := cmd.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(file, cmd.Flags())
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if got := cfg.Routing.CandidatePercent; got != tt.want {
				t.Errorf("routing.candidate_percent = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadConfigEnvironment(t *testing.T) {
	tests := []struct {
		name, variable, value string
		wantErr               string
	}{
		// A misspelt variable would otherwise be silently ignored.
		{name: "misspelt key", variable: "WAFCANARY_ROUTING_CANDIDATE_PERCENTAGE", value: "5",
			wantErr: "environment: unknown variable WAFCANARY_ROUTING_CANDIDATE_PERCENTAGE"},
		// A section is not a key.
		{name: "section", variable: "WAFCANARY_ROUTING", value: "x",
			wantErr: "environment: unknown variable WAFCANARY_ROUTING"},
		// Even empty, an unknown variable is a mistake worth reporting.
		{name: "unknown and empty", variable: "WAFCANARY_LISTEN_ADDR", value: "",
			wantErr: "environment: unknown variable WAFCANARY_LISTEN_ADDR"},
		{name: "known key, bad value", variable: "WAFCANARY_SHADOW_WORKERS", value: "0",
			wantErr: "shadow.workers: must be between 1 and 256, got 0"},
		{name: "known key, wrong type", variable: "WAFCANARY_ROUTING_CANDIDATE_PERCENT", value: "abc",
			wantErr: "'routing.candidate_percent' cannot parse value"},
		{name: "known key, good value", variable: "WAFCANARY_PROXY_DIAL_TIMEOUT", value: "2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(tt.variable, tt.value)
			_, err := loadConfig("testdata/minimal.good.yml", nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("loadConfig: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("loadConfig accepted %s=%q, want an error containing %q", tt.variable, tt.value, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("loadConfig error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// Environment variables are strings: with weak typing off they must
// still reach booleans, counts, durations and lists.
func TestLoadConfigEnvironmentTypes(t *testing.T) {
	clearEnv(t)
	t.Setenv("WAFCANARY_GATES_CRS_SUITE", "false")
	t.Setenv("WAFCANARY_SHADOW_WORKERS", "3")
	t.Setenv("WAFCANARY_PROXY_DIAL_TIMEOUT", "2s")
	t.Setenv("WAFCANARY_ROUTING_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7")
	cfg, err := loadConfig("testdata/minimal.good.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gates.CRSSuite || cfg.Shadow.Workers != 3 || cfg.Proxy.DialTimeout != 2*time.Second ||
		!reflect.DeepEqual(cfg.Routing.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.7"}) {
		t.Errorf("got crs_suite %v, workers %d, dial %v, proxies %q", cfg.Gates.CRSSuite, cfg.Shadow.Workers, cfg.Proxy.DialTimeout, cfg.Routing.TrustedProxies)
	}
	t.Setenv("WAFCANARY_GATES_CRS_SUITE", "sometimes")
	if _, err := loadConfig("testdata/minimal.good.yml", nil); err == nil || !strings.Contains(err.Error(), "'gates.crs_suite' cannot parse value") {
		t.Errorf("crs_suite=sometimes: %v", err)
	}
}
