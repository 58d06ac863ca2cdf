package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/wafcanary/wafcanary/config"
	"github.com/wafcanary/wafcanary/node"
)

// flagKeys binds command-line flags to config keys.
var flagKeys = map[string]string{
	"listen":            "listen",
	"upstream":          "upstream",
	"state-dir":         "state_dir",
	"admin-listen":      "admin.listen",
	"spoa-listen":       "spoa.listen",
	"baseline":          "rulesets.baseline",
	"candidate":         "rulesets.candidate",
	"candidate-percent": "routing.candidate_percent",
	"shadow-percent":    "shadow.sample_percent",
	"log-level":         "log.level",
}

// loadConfig merges defaults, the file (if any), WAFCANARY_* environment
// variables and flags, in rising precedence, and refuses unknown keys and
// bad values by name.
func loadConfig(file string, flags *pflag.FlagSet) (node.Config, error) {
	v := viper.New()
	known := map[string]any{}
	flatten("", reflect.ValueOf(node.Default()), known)
	for k, d := range known {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("WAFCANARY")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	// Leaf keys only: with AutomaticEnv, the clients' WAFCANARY_ADMIN
	// would be read as the whole admin section.
	for k := range known {
		if err := v.BindEnv(k); err != nil {
			return node.Config{}, err
		}
	}
	if err := unknownEnv(known); err != nil {
		return node.Config{}, err
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return node.Config{}, fmt.Errorf("config %s: %w", file, err)
		}
		var unknown []string
		for _, k := range v.AllKeys() {
			if _, ok := known[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return node.Config{}, fmt.Errorf("config %s: unknown key %s%s", file, strings.Join(unknown, ", "), suggest(unknown[0], known))
		}
	}
	if flags != nil {
		for name, key := range flagKeys {
			if f := flags.Lookup(name); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return node.Config{}, err
				}
			}
		}
	}
	var cfg node.Config
	if err := v.UnmarshalExact(&cfg, config.Strict); err != nil {
		return node.Config{}, fmt.Errorf("config: %w", err)
	}
	if file != "" {
		if err := relativeToFile(file, &cfg); err != nil {
			return node.Config{}, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return node.Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// relativeToFile resolves the relative paths the configuration file
// gives against the file's directory, as an Include is resolved against
// the including file: `serve -c /etc/wafcanary.yaml` and a client's `-c`
// then find the same state_dir wherever they run. A path that came from
// the environment or a flag stays relative to the working directory.
func relativeToFile(file string, cfg *node.Config) error {
	raw := viper.New()
	raw.SetConfigFile(file)
	raw.SetConfigType("yaml")
	if err := raw.ReadInConfig(); err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	dir := filepath.Dir(file)
	tls := &cfg.State.Etcd.TLS
	for key, p := range map[string]*string{
		"state_dir": &cfg.StateDir, "rulesets.baseline": &cfg.Rulesets.Baseline, "rulesets.candidate": &cfg.Rulesets.Candidate,
		"state.etcd.tls.ca_file": &tls.CAFile, "state.etcd.tls.cert_file": &tls.CertFile, "state.etcd.tls.key_file": &tls.KeyFile,
		"tls.cert_file": &cfg.TLS.CertFile, "tls.key_file": &cfg.TLS.KeyFile, "tls.client_ca_file": &cfg.TLS.ClientCAFile,
		"admin.tls.cert_file": &cfg.Admin.TLS.CertFile, "admin.tls.key_file": &cfg.Admin.TLS.KeyFile, "admin.tls.client_ca_file": &cfg.Admin.TLS.ClientCAFile,
	} {
		if *p == "" || filepath.IsAbs(*p) || strings.HasPrefix(*p, "embedded:") || !raw.IsSet(key) || raw.GetString(key) != *p {
			continue
		}
		*p = filepath.Join(dir, *p)
	}
	return nil
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
	names := map[string]bool{"WAFCANARY_ADMIN": true} // the clients' admin URL, no server key
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
		if d := config.Distance(bad, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}
