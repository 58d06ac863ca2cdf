package rollout

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/router"
)

// Step is one stage of a rollout: the candidate's share, and how long and
// how much traffic it must see before the controller may move on.
type Step struct {
	Percent     float64       `mapstructure:"percent" json:"percent"`
	MinDuration time.Duration `mapstructure:"min_duration" json:"min_duration"`
	MinRequests int64         `mapstructure:"min_requests" json:"min_requests"`
	// Approval holds the rollout before this step, however good the
	// evidence, until an operator promotes it (Argo Rollouts' pause: {}).
	Approval bool `mapstructure:"approval" json:"approval,omitempty"`
}

// Preset is steps and a max_duration a rollout takes instead of the
// configured ones (start --preset NAME): a change as large as a CRS
// upgrade wants a shadow-only first step measured in days, as the
// vendors stage new rules, while an exclusion wants the usual hours.
// The rollout keeps them in its state, so a restart, a reload or another
// replica goes on with the steps it began with.
type Preset struct {
	Steps       []Step        `mapstructure:"steps" json:"steps"`
	MaxDuration time.Duration `mapstructure:"max_duration" json:"max_duration"`
}

// Preset names.
const (
	// PresetDefault is the configured rollout.steps and max_duration.
	PresetDefault = "default"
	// PresetCRSUpgrade is what start takes for a candidate that changes
	// the CRS version, unless --preset says otherwise: CRSUpgradePreset,
	// or rollout.presets.crs-upgrade when configured.
	PresetCRSUpgrade = "crs-upgrade"
)

// CRSUpgradePreset stages a CRS upgrade as the vendors stage new rules:
// a week in shadow (Cloudflare and F5 run new rules in log mode for about
// seven days; Akamai evaluates an upgraded ruleset for four), where every
// new block on real traffic is counted, captured and can be tuned with no
// client served by the candidate; then a day at each share.
var CRSUpgradePreset = Preset{
	Steps: []Step{
		{Percent: 0, MinDuration: 7 * 24 * time.Hour, MinRequests: 20000},
		{Percent: 1, MinDuration: 24 * time.Hour, MinRequests: 5000},
		{Percent: 5, MinDuration: 24 * time.Hour, MinRequests: 10000},
		{Percent: 25, MinDuration: 24 * time.Hour, MinRequests: 20000},
		{Percent: 100, MinDuration: 24 * time.Hour, MinRequests: 10000},
	},
	MaxDuration: 14 * 24 * time.Hour,
}

// presetName is what a preset may be called: a name in a command line.
var presetName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// PresetOf returns the steps and max_duration of preset name: "" and
// PresetDefault are the configured ones, PresetCRSUpgrade the built-in
// one unless rollout.presets holds that name.
func (c Config) PresetOf(name string) (Preset, error) {
	if p, ok := c.Presets[name]; ok {
		return p, nil
	}
	switch name {
	case "", PresetDefault:
		return Preset{Steps: c.Steps, MaxDuration: c.MaxDuration}, nil
	case PresetCRSUpgrade:
		return CRSUpgradePreset, nil
	}
	names := []string{PresetDefault, PresetCRSUpgrade}
	for n := range c.Presets {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return Preset{}, fmt.Errorf("no preset %q: the presets are %s (rollout.presets)", name, strings.Join(names, ", "))
}

// Config is the rollout section.
type Config struct {
	Steps       []Step        `mapstructure:"steps"`
	Interval    time.Duration `mapstructure:"interval"`
	MaxDuration time.Duration `mapstructure:"max_duration"`
	// Presets are other steps and max_durations a rollout may take by
	// name (start --preset); "crs-upgrade" here replaces the built-in one.
	Presets map[string]Preset `mapstructure:"presets"`
	Policy  Policy            `mapstructure:"policy"`
	// MetricsSource is where the evidence comes from: "process" (this
	// replica's own traffic) or "prometheus" (a fleet's, summed).
	MetricsSource string                    `mapstructure:"metrics_source"`
	Prometheus    evidence.PrometheusConfig `mapstructure:"prometheus"`
	// KeepBaselines is how many baselines that have served are kept, with
	// their files, for undo; the one serving is always among them.
	KeepBaselines int `mapstructure:"keep_baselines"`
	// ConsecutiveErrorLimit is how many analyses in a row may fail to
	// judge the candidate (its evidence unreadable, the live probe not
	// run) before the rollout rolls back: a candidate that cannot be
	// judged must not keep serving until max_duration (Argo Rollouts'
	// consecutiveErrorLimit).
	ConsecutiveErrorLimit int `mapstructure:"consecutive_error_limit"`
	// Approvals are the change-control rules of the operators' actions.
	Approvals Approvals `mapstructure:"approvals"`
}

// Approvals say who may approve a rollout and what every change must
// carry. They bind only named identities (admin.users): a shared
// admin.token cannot tell one person from another.
type Approvals struct {
	// Distinct refuses an approval (any promote) from the identity that
	// started the rollout: four-eyes. False only for a team of one; each
	// approval by the starter then says so in the journal.
	Distinct bool `mapstructure:"distinct"`
	// RequireTicket refuses a start, promote or undo without a change
	// ticket (--ticket). A rollback is never refused for want of one: it
	// is the emergency action, and is journalled without.
	RequireTicket bool `mapstructure:"require_ticket"`
}

// DefaultConfig is the rollout section's default: shadow only, then 1%,
// 5%, 25%, 50% and 100% of clients.
var DefaultConfig = Config{
	Steps: []Step{
		{Percent: 0, MinDuration: 5 * time.Minute, MinRequests: 5000},
		{Percent: 1, MinDuration: 10 * time.Minute, MinRequests: 5000},
		{Percent: 5, MinDuration: 10 * time.Minute, MinRequests: 10000},
		{Percent: 25, MinDuration: 15 * time.Minute, MinRequests: 20000},
		{Percent: 50, MinDuration: 15 * time.Minute, MinRequests: 20000},
		{Percent: 100, MinDuration: 10 * time.Minute, MinRequests: 10000},
	},
	Interval:    15 * time.Second,
	MaxDuration: 6 * time.Hour,
	Policy: Policy{
		Alpha:                    0.05,
		MaxNewBlockRate:          0.001,
		MaxLostBlockRate:         0.001,
		MaxBlockRateIncrease:     0.005,
		MaxUpstreamErrorIncrease: 0.005,
		MaxLatencyRatio:          1.2,
		LatencySlackP50:          100 * time.Microsecond,
		LatencySlack:             time.Millisecond,
		LatencyTailMargin:        0.005,
		MinLatencySamples:        200,
		SplitChecksFromPercent:   25,
		OnMaxDuration:            RollbackAtMaxDuration,
	},
	Presets:               map[string]Preset{PresetCRSUpgrade: CRSUpgradePreset},
	MetricsSource:         "process",
	Prometheus:            evidence.PrometheusConfig{Timeout: 5 * time.Second},
	KeepBaselines:         10,
	ConsecutiveErrorLimit: 5,
	Approvals:             Approvals{Distinct: true},
}

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	if err := validateSteps("steps", c.Steps); err != nil {
		return err
	}
	if c.Interval < time.Second {
		return fmt.Errorf("interval: must be at least 1s, got %s", c.Interval)
	}
	if c.KeepBaselines < 2 {
		return fmt.Errorf("keep_baselines: must be at least 2 (the one serving and one to undo to), got %d", c.KeepBaselines)
	}
	if c.ConsecutiveErrorLimit < 1 {
		return fmt.Errorf("consecutive_error_limit: must be at least 1 (analyses in a row that cannot judge the candidate before it is rolled back), got %d", c.ConsecutiveErrorLimit)
	}
	if c.MaxDuration < c.Interval {
		return fmt.Errorf("max_duration: must be at least the interval (%s), got %s", c.Interval, c.MaxDuration)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Presets)) {
		p := c.Presets[name]
		switch {
		case name == PresetDefault:
			return fmt.Errorf("presets.%s: the name is the configured steps'; choose another", name)
		case !presetName.MatchString(name):
			return fmt.Errorf("presets.%s: a preset's name is lower-case letters, digits and dashes, starting with a letter", name)
		}
		if err := validateSteps("presets."+name+".steps", p.Steps); err != nil {
			return err
		}
		if p.MaxDuration < c.Interval {
			return fmt.Errorf("presets.%s.max_duration: must be at least the interval (%s), got %s", name, c.Interval, p.MaxDuration)
		}
	}
	switch c.MetricsSource {
	case "process":
	case "prometheus":
		u, err := url.Parse(c.Prometheus.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("prometheus.url: metrics_source is prometheus, want an http:// or https:// URL, got %q", c.Prometheus.URL)
		}
		if c.Prometheus.Timeout <= 0 || c.Prometheus.Timeout >= c.Interval {
			return fmt.Errorf("prometheus.timeout: must be positive and below the interval (%s), got %s", c.Interval, c.Prometheus.Timeout)
		}
	default:
		return fmt.Errorf("metrics_source: want process or prometheus, got %q", c.MetricsSource)
	}
	return c.Policy.validate()
}

// validateSteps checks the steps of key (steps, presets.NAME.steps).
func validateSteps(key string, steps []Step) error {
	if len(steps) == 0 {
		return fmt.Errorf("%s: at least one step is required", key)
	}
	prev := -1.0
	for i, s := range steps {
		// A step's percent becomes the router's share: one it cannot
		// serve exactly (0.001 would run at 0%) is refused as the
		// routing section refuses it.
		if _, err := router.ParseShare(s.Percent); err != nil {
			return fmt.Errorf("%s[%d].percent: %w", key, i, err)
		}
		switch {
		case s.Percent <= prev:
			return fmt.Errorf("%s[%d].percent: must rise from step to step, got %v after %v", key, i, s.Percent, prev)
		case s.MinDuration < 0:
			return fmt.Errorf("%s[%d].min_duration: must not be negative, got %s", key, i, s.MinDuration)
		case s.MinRequests < 0:
			return fmt.Errorf("%s[%d].min_requests: must not be negative, got %d", key, i, s.MinRequests)
		}
		prev = s.Percent
	}
	if steps[0].Approval {
		return fmt.Errorf("%s[0].approval: the first step begins with `wafcanary start`, which is the approval; put approval on a later step", key)
	}
	if last := len(steps) - 1; steps[last].Percent != 100 {
		return fmt.Errorf("%s[%d].percent: the last step must be 100, got %v", key, last, steps[last].Percent)
	}
	return nil
}
