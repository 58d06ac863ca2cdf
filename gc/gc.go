// Package gc sets the Go garbage collector of a wafcanary process from
// its configuration: the heap growth between collections (GOGC) and a
// soft memory limit (GOMEMLIMIT) that bounds what a higher growth costs.
//
// Coraza allocates some 4,500 objects per request under CRS, so the
// collector's share of CPU follows from these two settings rather than
// from the code (docs/PERFORMANCE.md has the measurements behind the
// defaults). The standard environment variables still work: a process
// started with GOGC or GOMEMLIMIT set keeps what the variable says, as
// Go operators expect, and the log says which won.
package gc

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Config is the gc section.
type Config struct {
	// Percent is GOGC: a collection starts when the heap has grown by
	// this percentage over the heap live after the last one. Higher
	// means fewer collections and a larger heap; -1 turns collection off
	// until the memory limit is reached (only with a limit).
	Percent int `mapstructure:"percent"`
	// MemoryLimit is GOMEMLIMIT, a soft limit on the memory the Go
	// runtime holds: near it the collector runs as often as it must,
	// whatever Percent says. "auto" is 90% of the memory limit of the
	// process's cgroup (a container's limit) and no limit outside one;
	// "off" is no limit; otherwise a size: 512MiB, 1GiB, 400MB, or bytes.
	MemoryLimit string `mapstructure:"memory_limit"`
}

// DefaultConfig is Go's own collector setting, GOGC 100, with the
// container's memory limit as a guard when there is one. 200 was measured
// side by side (docs/PERFORMANCE.md, "Issue 34"): in process a median of
// 6% less CPU per request (rounds -12% to +14%), end to end -6% in one
// run and +8% in another, always some 40 MB more peak RSS. A gain the
// machine cannot resolve does not pay for memory that is certain.
var DefaultConfig = Config{Percent: 100, MemoryLimit: "auto"}

// Bounds of Percent: past 1000 the heap is ten times the live one, which
// no measurement here asked for.
const (
	MinPercent = -1
	MaxPercent = 1000
	// minLimit is the smallest memory limit accepted: below it a
	// process holding two compiled CRS rulesets (about 60 MB live)
	// would collect without pause.
	minLimit = 128 << 20
)

// Validate names the key at fault.
func (c Config) Validate() error {
	if c.Percent < MinPercent || c.Percent > MaxPercent || c.Percent == 0 {
		return fmt.Errorf("percent: must be -1 (off until the memory limit) or between 1 and %d, got %d", MaxPercent, c.Percent)
	}
	limit, auto, err := parseLimit(c.MemoryLimit)
	if err != nil {
		return fmt.Errorf("memory_limit: %w", err)
	}
	if c.Percent == -1 && limit == 0 && !auto {
		return errors.New("percent: -1 turns collection off until the memory limit, and memory_limit is off: the heap would grow without bound")
	}
	return nil
}

// parseLimit reads memory_limit: a size in bytes, auto, or off (0).
func parseLimit(s string) (bytes int64, auto bool, err error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "auto":
		return 0, true, nil
	case "off", "0", "":
		return 0, false, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return 0, false, err
	}
	if n < minLimit {
		return 0, false, fmt.Errorf("%q is under %dMiB, too little for two compiled rulesets", s, minLimit>>20)
	}
	return n, false, nil
}

// ParseSize reads a size as GOMEMLIMIT writes one: a number of bytes
// with an optional unit B, KiB, MiB, GiB, TiB (powers of 1024) or KB,
// MB, GB, TB (powers of 1000).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult, ok := map[string]float64{"": 1, "B": 1,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || v < 0 || math.IsInf(v*mult, 0) || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("want auto, off or a size such as 512MiB or 1GiB, got %q", s)
	}
	return int64(v * mult), nil
}

// Applied is what the process runs with, for the start-up log.
type Applied struct {
	Percent int
	// Limit is the soft memory limit in bytes; 0 is none.
	Limit int64
	// PercentFrom and LimitFrom say where each came from: "config",
	// "environment" (GOGC or GOMEMLIMIT set) or, for auto outside a
	// cgroup limit, "auto: no cgroup memory limit".
	PercentFrom, LimitFrom string
}

// Env is how Apply reads the environment and the cgroup's limit; tests
// give their own.
type Env struct {
	Getenv func(string) string
	// CgroupLimit is the process's cgroup memory limit in bytes, 0 when
	// there is none.
	CgroupLimit func() int64
}

// ProcessEnv is the process's own environment and cgroup.
var ProcessEnv = Env{Getenv: os.Getenv, CgroupLimit: cgroupLimit}

// Resolve works out the settings c gives in env, without applying them.
func (c Config) Resolve(env Env) (a Applied, err error) {
	if err := c.Validate(); err != nil {
		return Applied{}, err
	}
	a = Applied{Percent: c.Percent, PercentFrom: "config", LimitFrom: "config"}
	// The runtime read these variables at start and keeps them; they are
	// read here only to say what it runs with.
	if v := env.Getenv("GOGC"); v != "" {
		a.PercentFrom = "environment"
		switch n, err := strconv.ParseInt(v, 10, 32); { // as runtime.readGOGC
		case v == "off":
			a.Percent = -1
		case err == nil:
			a.Percent = int(n)
		default:
			a.Percent = 100 // the runtime's reading of anything else
		}
	}
	if v := strings.TrimSpace(env.Getenv("GOMEMLIMIT")); v != "" {
		a.LimitFrom = "environment"
		if a.Limit, err = ParseSize(v); err != nil {
			a.Limit = 0 // "off"
		}
		return a, nil
	}
	limit, auto, _ := parseLimit(c.MemoryLimit)
	a.Limit = limit
	if auto {
		a.LimitFrom = "auto: no cgroup memory limit"
		if cg := env.CgroupLimit(); cg > 0 {
			a.Limit, a.LimitFrom = cg/10*9, "auto: 90% of the cgroup's memory limit"
		}
	}
	return a, nil
}

// Apply sets the collector as c says, unless the environment set it, and
// returns what the process now runs with.
func (c Config) Apply(env Env) (Applied, error) {
	a, err := c.Resolve(env)
	if err != nil {
		return Applied{}, err
	}
	if a.PercentFrom == "config" {
		debug.SetGCPercent(a.Percent)
	}
	if a.LimitFrom != "environment" {
		limit := a.Limit
		if limit == 0 {
			limit = math.MaxInt64 // the runtime's "no limit"
		}
		debug.SetMemoryLimit(limit)
	}
	return a, nil
}

// cgroupLimit reads the memory limit of the process's cgroup: v2's
// memory.max, else v1's memory.limit_in_bytes; 0 when there is none or
// it cannot be read (not in a container, not Linux).
func cgroupLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		return parseCgroupLimit(string(b))
	}
	return 0
}

// parseCgroupLimit reads one limit file's content. "max" (v2) and v1's
// page-rounded maximum mean no limit.
func parseCgroupLimit(s string) int64 {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	if s == "max" || err != nil || n <= 0 || n >= 1<<62 {
		return 0
	}
	return n
}
