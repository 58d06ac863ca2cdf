package gc

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/wafcanary/wafcanary/config"
)

func TestConfigFixtures(t *testing.T) { config.TestSection(t, "testdata/config", DefaultConfig) }

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"134217728": 128 << 20, "512MiB": 512 << 20, "1GiB": 1 << 30, "1.5GiB": 3 << 29,
		"400MB": 400e6, "64KiB": 64 << 10, "2TB": 2e12, " 300 MiB ": 300 << 20, "10B": 10,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "512M", "1gib", "-1GiB", "1e400", "9999999TiB", "12 apples"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseCgroupLimit(t *testing.T) {
	for in, want := range map[string]int64{
		"max\n": 0, "536870912\n": 512 << 20, "9223372036854771712\n": 0, "": 0, "garbage": 0,
	} {
		if got := parseCgroupLimit(in); got != want {
			t.Errorf("parseCgroupLimit(%q) = %d, want %d", in, got, want)
		}
	}
}

func env(vars map[string]string, cgroup int64) Env {
	return Env{Getenv: func(k string) string { return vars[k] }, CgroupLimit: func() int64 { return cgroup }}
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		env  Env
		want Applied
	}{
		{"defaults outside a container", DefaultConfig, env(nil, 0),
			Applied{Percent: 100, PercentFrom: "config", LimitFrom: "auto: no cgroup memory limit"}},
		{"defaults in a 1 GiB container", DefaultConfig, env(nil, 1<<30),
			Applied{Percent: 100, Limit: (1 << 30) / 10 * 9, PercentFrom: "config", LimitFrom: "auto: 90% of the cgroup's memory limit"}},
		{"configured", Config{Percent: 300, MemoryLimit: "768MiB"}, env(nil, 1<<30),
			Applied{Percent: 300, Limit: 768 << 20, PercentFrom: "config", LimitFrom: "config"}},
		{"limit off", Config{Percent: 300, MemoryLimit: "off"}, env(nil, 1<<30),
			Applied{Percent: 300, PercentFrom: "config", LimitFrom: "config"}},
		// The standard variables keep working: what an operator set for
		// every Go program is not silently overridden by a default.
		{"environment wins", Config{Percent: 300, MemoryLimit: "768MiB"}, env(map[string]string{"GOGC": "150", "GOMEMLIMIT": "2GiB"}, 0),
			Applied{Percent: 150, Limit: 2 << 30, PercentFrom: "environment", LimitFrom: "environment"}},
		// An unreadable GOGC is 100 to the runtime, and so here.
		{"GOGC=lots", Config{Percent: 300, MemoryLimit: "off"}, env(map[string]string{"GOGC": "lots"}, 0),
			Applied{Percent: 100, PercentFrom: "environment", LimitFrom: "config"}},
		{"GOGC=off", DefaultConfig, env(map[string]string{"GOGC": "off"}, 1<<30),
			Applied{Percent: -1, Limit: (1 << 30) / 10 * 9, PercentFrom: "environment", LimitFrom: "auto: 90% of the cgroup's memory limit"}},
	} {
		got, err := c.cfg.Resolve(c.env)
		if err != nil || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := (Config{Percent: 0, MemoryLimit: "auto"}).Resolve(env(nil, 0)); err == nil {
		t.Error("an invalid config resolved")
	}
}

// Apply changes the process's collector; the test puts it back.
func TestApplySetsTheRuntime(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })

	if _, err := (Config{Percent: 250, MemoryLimit: "300MiB"}).Apply(env(nil, 0)); err != nil {
		t.Fatal(err)
	}
	if p := debug.SetGCPercent(100); p != 250 {
		t.Errorf("GC percent %d, want 250", p)
	}
	if l := debug.SetMemoryLimit(-1); l != 300<<20 {
		t.Errorf("memory limit %d, want %d", l, 300<<20)
	}
	// The environment's setting is left as the runtime read it.
	debug.SetGCPercent(180)
	if a, err := (Config{Percent: 250, MemoryLimit: "off"}).Apply(env(map[string]string{"GOGC": "180"}, 0)); err != nil || a.PercentFrom != "environment" {
		t.Fatalf("got %+v, %v", a, err)
	}
	if p := debug.SetGCPercent(100); p != 180 {
		t.Errorf("GC percent %d, want the environment's 180 kept", p)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("memory limit %d, want none (off)", l)
	}
}
