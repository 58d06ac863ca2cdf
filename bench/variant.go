package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// A variant is the wafcanary split target again, with another binary or
// other environment: one lever (PGO, the garbage collector, a patched
// engine) measured in the same interleaved rounds as the target it
// changes, so that the machine's drift hits both alike and the ratio is
// side by side rather than across runs.
type variant struct {
	name string
	bin  string   // another wafcanary binary; "" for the one under -bin
	env  []string // KEY=VALUE added to the process's environment
}

var variantName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)

// parseVariant reads NAME=SETTING[,SETTING...], where a SETTING is
// bin:PATH (a wafcanary binary) or env:KEY=VALUE:
//
//	-variant nopgo=bin:/tmp/w/wafcanary-nopgo
//	-variant gogc400=env:GOGC=400,env:GOMEMLIMIT=256MiB
func parseVariant(s string) (variant, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || !variantName.MatchString(name) {
		return variant{}, fmt.Errorf("-variant %q: want NAME=SETTING[,SETTING...], NAME of lower-case letters, digits, '.' and '-'", s)
	}
	v := variant{name: name}
	for _, set := range strings.Split(rest, ",") {
		kind, val, _ := strings.Cut(set, ":")
		switch {
		case kind == "bin" && val != "":
			if v.bin != "" {
				return variant{}, fmt.Errorf("-variant %s: two binaries", name)
			}
			abs, err := filepath.Abs(val)
			if err != nil {
				return variant{}, err
			}
			if _, err := os.Stat(abs); err != nil {
				return variant{}, fmt.Errorf("-variant %s: %w", name, err)
			}
			v.bin = abs
		case kind == "env" && strings.Contains(val, "=") && !strings.HasPrefix(val, "="):
			v.env = append(v.env, val)
		default:
			return variant{}, fmt.Errorf("-variant %s: setting %q: want bin:PATH or env:KEY=VALUE", name, set)
		}
	}
	return v, nil
}

// variants is the repeatable -variant flag.
type variants []variant

func (vs *variants) String() string {
	var names []string
	for _, v := range *vs {
		names = append(names, v.name)
	}
	return strings.Join(names, ",")
}

func (vs *variants) Set(s string) error {
	v, err := parseVariant(s)
	if err != nil {
		return err
	}
	for _, o := range *vs {
		if o.name == v.name {
			return fmt.Errorf("-variant %s given twice", v.name)
		}
	}
	*vs = append(*vs, v)
	return nil
}

// desc says what the variant changes, for the report's legend.
func (v variant) desc() string {
	var parts []string
	if v.bin != "" {
		parts = append(parts, "binary "+filepath.Base(v.bin))
	}
	parts = append(parts, v.env...)
	return "the wafcanary target with " + strings.Join(parts, ", ")
}

// variantTarget is the split target (shadow 0%) under the variant's
// binary and environment, with its own ports and state directory.
func variantTarget(v variant, wafcanary, upstream string, o runOptions) (*target, error) {
	name := "wafcanary-" + v.name
	listen, admin := freeAddr(), freeAddr()
	conf := filepath.Join(o.workdir, name+".yaml")
	if err := os.WriteFile(conf, []byte(wafcanaryConfig(listen, admin, upstream, filepath.Join(o.workdir, name), 0, false)), 0o644); err != nil {
		return nil, err
	}
	bin := wafcanary
	if v.bin != "" {
		bin = v.bin
	}
	cmd := exec.Command(bin, "serve", "-c", conf)
	cmd.Env = append(os.Environ(), v.env...)
	return &target{name: name, desc: v.desc(), url: "http://" + listen, metricsURL: "http://" + admin + "/metrics",
		cmd: cmd, variantOf: "wafcanary"}, nil
}
