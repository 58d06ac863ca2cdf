package gates

import (
	"fmt"
	"math"
)

// Config is the gates section.
type Config struct {
	// MaxInboundThreshold is the highest inbound anomaly score threshold a
	// candidate may set (CRS default 5: one critical match blocks).
	MaxInboundThreshold int `mapstructure:"max_inbound_threshold"`
	// CRSSuite runs CRS's regression suite through both rulesets when a
	// rollout starts, refusing a candidate that fails a case the baseline
	// passes. It takes about 20 s on two cores.
	CRSSuite bool `mapstructure:"crs_suite"`
	// MaxCostRatio is the highest ratio of the candidate's median time
	// inside the WAF to the baseline's, over the suite's requests, that a
	// candidate may have. It needs CRSSuite.
	MaxCostRatio float64 `mapstructure:"max_cost_ratio"`
	// Replay lists recorded traffic (audit logs, HAR files, captures: files
	// or directories on the server, as `wafcanary replay` reads them)
	// replayed through both rulesets at every start, with the paths a
	// start adds (start --replay). A candidate whose replay fails the
	// controller's paired checks is refused like at any other gate. The
	// node runs it: replay judges with the engine, above this package.
	Replay []string `mapstructure:"replay"`
	// StrictExceptions refuses a candidate with an exception (package
	// exception) that names a rule or tag it does not load, or that has
	// no owner or no expiry date; off, those are warnings. An expired
	// exception is a warning either way: a date passing must not refuse
	// a deploy on its own.
	StrictExceptions bool `mapstructure:"strict_exceptions"`
}

// DefaultConfig is the gates section's default.
var DefaultConfig = Config{MaxInboundThreshold: 10, CRSSuite: true, MaxCostRatio: 1.5, Replay: []string{}}

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	if c.MaxInboundThreshold < 1 {
		return fmt.Errorf("max_inbound_threshold: must be at least 1, got %d", c.MaxInboundThreshold)
	}
	if !(c.MaxCostRatio >= 1) || math.IsInf(c.MaxCostRatio, 1) {
		return fmt.Errorf("max_cost_ratio: must be a finite number, at least 1 (the candidate as fast as the baseline), got %v", c.MaxCostRatio)
	}
	for i, f := range c.Replay {
		if f == "" {
			return fmt.Errorf("replay[%d]: must name a file or directory", i)
		}
	}
	return nil
}
