package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
)

// Config is the whole configuration file. Each section is the owning
// package's own type; only this file knows about viper.
type Config struct {
	Listen   string               `mapstructure:"listen"`
	Upstream string               `mapstructure:"upstream"`
	StateDir string               `mapstructure:"state_dir"`
	State    StateConfig          `mapstructure:"state"`
	Admin    admin.Config         `mapstructure:"admin"`
	Rulesets RulesetsConfig       `mapstructure:"rulesets"`
	Routing  router.RoutingConfig `mapstructure:"routing"`
	Shadow   router.ShadowConfig  `mapstructure:"shadow"`
	Proxy    router.ProxyConfig   `mapstructure:"proxy"`
	Rollout  rollout.Config       `mapstructure:"rollout"`
	Gates    gates.Config         `mapstructure:"gates"`
	Log      LogConfig            `mapstructure:"log"`
}

// RulesetsConfig names the ruleset files. "embedded:NAME" refers to a
// ruleset shipped inside the binary (configs/rulesets/NAME).
type RulesetsConfig struct {
	Baseline  string `mapstructure:"baseline"`
	Candidate string `mapstructure:"candidate"`
}

// StateConfig says where the rollout state lives: in state_dir (one
// node) or in etcd, shared by a fleet of replicas.
type StateConfig struct {
	Backend string `mapstructure:"backend"`
	// ReplicaID names this replica in the fleet; default host:listen-port.
	ReplicaID string       `mapstructure:"replica_id"`
	Etcd      fleet.Config `mapstructure:"etcd"`
}

// LogConfig controls wafcanary's own log.
type LogConfig struct {
	Level string `mapstructure:"level"`
}

func defaultConfig() Config {
	return Config{
		Listen:   "127.0.0.1:8080",
		Upstream: "http://127.0.0.1:8081",
		StateDir: "state",
		State:    StateConfig{Backend: "file", Etcd: fleet.DefaultConfig},
		Admin:    admin.DefaultConfig,
		Rulesets: RulesetsConfig{Baseline: "embedded:baseline.conf"},
		Routing:  router.DefaultRoutingConfig,
		Shadow:   router.DefaultShadowConfig,
		Proxy:    router.DefaultProxyConfig,
		Rollout:  rollout.DefaultConfig,
		Gates:    gates.DefaultConfig,
		Log:      LogConfig{Level: "info"},
	}
}

// Validate checks the top-level keys, then each section, naming the key.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: want host:port, got %q", c.Listen)
	}
	u, err := url.Parse(c.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("upstream: want an http:// or https:// URL, got %q", c.Upstream)
	}
	if c.StateDir == "" {
		return errors.New("state_dir: must not be empty")
	}
	if c.Rulesets.Baseline == "" {
		return errors.New("rulesets.baseline: must name a ruleset file")
	}
	if c.Routing.CandidatePercent > 0 && c.Rulesets.Candidate == "" {
		return fmt.Errorf("routing.candidate_percent: is %v but rulesets.candidate is not set", c.Routing.CandidatePercent)
	}
	switch c.State.Backend {
	case "file":
	case "etcd":
		if err := c.State.Etcd.Validate(); err != nil {
			return fmt.Errorf("state.etcd.%w", err)
		}
		if c.Rulesets.Candidate != "" {
			return errors.New("rulesets.candidate: with state.backend etcd the fleet's candidate comes from `wafcanary start`; leave it empty so every replica serves the same rulesets")
		}
	default:
		return fmt.Errorf("state.backend: want file or etcd, got %q", c.State.Backend)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: want debug, info, warn or error, got %q", c.Log.Level)
	}
	sections := []struct {
		name string
		v    interface{ Validate() error }
	}{{"admin", c.Admin}, {"routing", c.Routing}, {"shadow", c.Shadow}, {"proxy", c.Proxy}, {"rollout", c.Rollout}, {"gates", c.Gates}}
	for _, s := range sections {
		if err := s.v.Validate(); err != nil {
			return fmt.Errorf("%s.%w", s.name, err)
		}
	}
	return nil
}

// flagKeys binds command-line flags to config keys.
var flagKeys = map[string]string{
	"listen":            "listen",
	"upstream":          "upstream",
	"state-dir":         "state_dir",
	"admin-listen":      "admin.listen",
	"baseline":          "rulesets.baseline",
	"candidate":         "rulesets.candidate",
	"candidate-percent": "routing.candidate_percent",
	"shadow-percent":    "shadow.sample_percent",
	"log-level":         "log.level",
}

// loadConfig merges defaults, the file (if any), WAFCANARY_* environment
// variables and flags, in rising precedence, and refuses unknown keys and
// bad values by name.
func loadConfig(file string, flags *pflag.FlagSet) (Config, error) {
	v := viper.New()
	known := map[string]any{}
	flatten("", reflect.ValueOf(defaultConfig()), known)
	for k, d := range known {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("WAFCANARY")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if err := unknownEnv(known); err != nil {
		return Config{}, err
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", file, err)
		}
		var unknown []string
		for _, k := range v.AllKeys() {
			if _, ok := known[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return Config{}, fmt.Errorf("config %s: unknown key %s%s", file, strings.Join(unknown, ", "), suggest(unknown[0], known))
		}
	}
	if flags != nil {
		for name, key := range flagKeys {
			if f := flags.Lookup(name); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return Config{}, err
				}
			}
		}
	}
	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// flatten lists every leaf key of a config struct with its default.
func flatten(prefix string, v reflect.Value, out map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		if f := v.Field(i); f.Kind() == reflect.Struct {
			flatten(key, f, out)
		} else {
			out[key] = f.Interface()
		}
	}
}

// unknownEnv refuses WAFCANARY_* variables that match no key: a misspelt
// variable would otherwise be silently ignored.
func unknownEnv(known map[string]any) error {
	names := map[string]bool{}
	for k := range known {
		names["WAFCANARY_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "WAFCANARY_") && !names[name] {
			return fmt.Errorf("environment: unknown variable %s", name)
		}
	}
	return nil
}

// suggest names the known key closest to a misspelt one.
func suggest(bad string, known map[string]any) string {
	best, bestD := "", 4
	for k := range known {
		if d := distance(bad, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
