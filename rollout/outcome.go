package rollout

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/wafcanary/wafcanary/evidence"
)

// CheckStatus is where a check stands against its limit: a statistical
// conclusion about a rollout's evidence, not a WAF's verdict on a request
// (verdict.Verdict). Statuses are ordered: the worst wins.
type CheckStatus int

// Check statuses, best first. JSON, the journal and the metric
// wafcanary_rollout_evidence{value="verdict"} carry them under the name
// verdict, as they always have.
const (
	Skip         CheckStatus = iota // not applicable at this step (an arm without traffic)
	Pass                            // the evidence shows the limit is kept
	Inconclusive                    // not enough evidence either way yet
	Fail                            // the evidence shows the limit is broken
)

func (v CheckStatus) String() string {
	return [...]string{"skip", "pass", "inconclusive", "fail"}[v]
}

// MarshalJSON writes the status's name.
func (v CheckStatus) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }

// UnmarshalJSON reads a status's name.
func (v *CheckStatus) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for i, name := range [...]string{"skip", "pass", "inconclusive", "fail"} {
		if s == name {
			*v = CheckStatus(i)
			return nil
		}
	}
	return fmt.Errorf("unknown check status %q", s)
}

// Window is the stretch of evidence a check judges.
type Window string

// evidence.Windows. Shadow pairs judge the same request with both rulesets, so
// what they show does not depend on the share: they count from the
// rollout's start. Split arms compare different clients at a share, so
// they count from the step's start.
const (
	RolloutWindow Window = "rollout"
	StepWindow    Window = "step"
)

// Outcome is one check's result, with the numbers behind it.
type Outcome struct {
	Check    string      `json:"check"`
	Status   CheckStatus `json:"verdict"`
	Required bool        `json:"required"` // must pass before the rollout advances
	Window   Window      `json:"window,omitempty"`
	Reason   string      `json:"reason"`
	// Observed is the point estimate; Lower and Upper its confidence
	// sequence; Limit the policy's bound on the same scale.
	Observed float64              `json:"observed"`
	Lower    float64              `json:"lower"`
	Upper    float64              `json:"upper"`
	Limit    float64              `json:"limit"`
	N        int64                `json:"n"`
	Rules    []evidence.RuleCount `json:"rules,omitempty"`
}

// MarshalJSON writes the outcome with its infinite bounds (a quantile no
// sample bounds yet) as the strings "+Inf" and "-Inf": JSON has no
// infinity, and a decision whose analysis cannot be written cannot be
// recorded.
func (o Outcome) MarshalJSON() ([]byte, error) {
	type plain Outcome
	return json.Marshal(struct {
		plain
		Observed bound `json:"observed"`
		Lower    bound `json:"lower"`
		Upper    bound `json:"upper"`
		Limit    bound `json:"limit"`
	}{plain(o), bound(o.Observed), bound(o.Lower), bound(o.Upper), bound(o.Limit)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (o *Outcome) UnmarshalJSON(b []byte) error {
	type plain Outcome
	var v struct {
		plain
		Observed bound `json:"observed"`
		Lower    bound `json:"lower"`
		Upper    bound `json:"upper"`
		Limit    bound `json:"limit"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*o = Outcome(v.plain)
	o.Observed, o.Lower, o.Upper, o.Limit = float64(v.Observed), float64(v.Lower), float64(v.Upper), float64(v.Limit)
	return nil
}

// bound is a float64 that JSON carries even when infinite.
type bound float64

func (f bound) MarshalJSON() ([]byte, error) {
	switch v := float64(f); {
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	case math.IsNaN(v):
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

func (f *bound) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"+Inf"`:
		*f = bound(math.Inf(1))
	case `"-Inf"`:
		*f = bound(math.Inf(-1))
	case "null":
		*f = bound(math.NaN())
	default:
		var v float64
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*f = bound(v)
	}
	return nil
}

// Checks that are not evidence: an analysis that could not judge the
// candidate says why in an Inconclusive outcome of one of them.
const (
	// CheckEvidence: the evidence could not be read (Prometheus down).
	CheckEvidence = "evidence"
	// CheckProbe: the live probe did not run.
	CheckProbe = "probe"
)

// Analysis is every check's outcome and the status they add up to.
type Analysis struct {
	Outcomes []Outcome `json:"outcomes"`
	// Status is Fail if any check fails, Pass if every required check
	// passes, Inconclusive otherwise.
	Status CheckStatus `json:"verdict"`
}

// Reason summarises the analysis: the failing checks, or the ones still
// waiting for evidence.
func (a Analysis) Reason() string {
	var parts []string
	for _, o := range a.Outcomes {
		if o.Status == a.Status && (o.Required || o.Status == Fail) {
			parts = append(parts, o.Reason)
		}
	}
	if len(parts) == 0 {
		return "all checks " + a.Status.String()
	}
	return strings.Join(parts, "; ")
}

// Unjudged says why the analysis could not judge the candidate (its
// CheckEvidence and CheckProbe outcomes), "" when it could.
func (a Analysis) Unjudged() string {
	var parts []string
	for _, o := range a.Outcomes {
		if (o.Check == CheckEvidence || o.Check == CheckProbe) && o.Status != Pass && o.Status != Skip {
			parts = append(parts, o.Reason)
		}
	}
	return strings.Join(parts, "; ")
}
