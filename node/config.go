package node

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/certificate"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/gc"
	"github.com/wafcanary/wafcanary/notification"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/spoa"
)

// Config is the whole configuration of one wafcanary process, the file's
// shape. Each section is the owning package's own type; the command binds
// it to the file, environment and flags (viper), this package never does.
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
	// SPOA runs an HAProxy SPOE agent on the same Engine, beside the HTTP
	// proxy or, with listen "", instead of it.
	SPOA    spoa.Config    `mapstructure:"spoa"`
	Rollout rollout.Config `mapstructure:"rollout"`
	Gates   gates.Config   `mapstructure:"gates"`
	Capture capture.Config `mapstructure:"capture"`
	// Exceptions measures what each exception of the baseline still lets
	// through, on a sample of its traffic.
	Exceptions exception.Config `mapstructure:"exceptions"`
	// TLS serves the proxy listener over HTTPS (HTTP/2 and HTTP/1.1).
	TLS certificate.Config `mapstructure:"tls"`
	// Notifications are webhooks told of each rollout event.
	Notifications notification.Config `mapstructure:"notifications"`
	Log           LogConfig           `mapstructure:"log"`
	// GC sets the Go garbage collector (GOGC, GOMEMLIMIT); applied once
	// at start by the serving command, not by New.
	GC gc.Config `mapstructure:"gc"`
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

// Default is the configuration with every key at its default: the
// shipped baseline alone, on loopback, state in ./state.
func Default() Config {
	return Config{
		Listen:        "127.0.0.1:8080",
		Upstream:      "http://127.0.0.1:8081",
		StateDir:      "state",
		State:         StateConfig{Backend: "file", Etcd: fleet.DefaultConfig},
		Admin:         admin.DefaultConfig,
		Rulesets:      RulesetsConfig{Baseline: "embedded:baseline.conf"},
		Routing:       router.DefaultRoutingConfig,
		Shadow:        router.DefaultShadowConfig,
		Proxy:         router.DefaultProxyConfig,
		SPOA:          spoa.DefaultConfig,
		Rollout:       rollout.DefaultConfig,
		Gates:         gates.DefaultConfig,
		Capture:       capture.DefaultConfig,
		Exceptions:    exception.DefaultConfig,
		Notifications: notification.DefaultConfig,
		Log:           LogConfig{Level: "info"},
		GC:            gc.DefaultConfig,
	}
}

// Validate checks the top-level keys, then each section, naming the key.
func (c Config) Validate() error {
	switch _, _, err := net.SplitHostPort(c.Listen); {
	case c.Listen == "" && c.SPOA.Listen == "":
		return errors.New("listen: must be set unless spoa.listen is (a node serves the HTTP proxy, the SPOE agent, or both)")
	case c.Listen != "" && err != nil:
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
	}{{"admin", c.Admin}, {"routing", c.Routing}, {"shadow", c.Shadow}, {"proxy", c.Proxy}, {"spoa", c.SPOA}, {"rollout", c.Rollout}, {"gates", c.Gates}, {"capture", c.Capture}, {"exceptions", c.Exceptions}, {"notifications", c.Notifications}, {"tls", c.TLS}, {"gc", c.GC}}
	for _, s := range sections {
		if err := s.v.Validate(); err != nil {
			return fmt.Errorf("%s.%w", s.name, err)
		}
	}
	return nil
}
