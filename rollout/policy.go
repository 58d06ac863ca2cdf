package rollout

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/router"
)

// Verdict is a check's outcome. Verdicts are ordered: the worst wins.
type Verdict int

// Verdicts, best first.
const (
	Skip         Verdict = iota // not applicable at this step (an arm without traffic)
	Pass                        // the evidence shows the limit is kept
	Inconclusive                // not enough evidence either way yet
	Fail                        // the evidence shows the limit is broken
)

func (v Verdict) String() string {
	return [...]string{"skip", "pass", "inconclusive", "fail"}[v]
}

// MarshalJSON writes the verdict's name.
func (v Verdict) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }

// UnmarshalJSON reads a verdict's name.
func (v *Verdict) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for i, name := range [...]string{"skip", "pass", "inconclusive", "fail"} {
		if s == name {
			*v = Verdict(i)
			return nil
		}
	}
	return fmt.Errorf("unknown verdict %q", s)
}

// Outcome is one check's result, with the numbers behind it.
type Outcome struct {
	Check    string  `json:"check"`
	Verdict  Verdict `json:"verdict"`
	Required bool    `json:"required"` // must pass before the rollout advances
	Reason   string  `json:"reason"`
	// Observed is the point estimate; Lower and Upper its confidence
	// sequence; Limit the policy's bound on the same scale.
	Observed float64     `json:"observed"`
	Lower    float64     `json:"lower"`
	Upper    float64     `json:"upper"`
	Limit    float64     `json:"limit"`
	N        int64       `json:"n"`
	Rules    []RuleCount `json:"rules,omitempty"`
}

// Analysis is every check's outcome and the verdict they add up to.
type Analysis struct {
	Outcomes []Outcome `json:"outcomes"`
	// Verdict is Fail if any check fails, Pass if every required check
	// passes, Inconclusive otherwise.
	Verdict Verdict `json:"verdict"`
}

// Reason summarises the analysis: the failing checks, or the ones still
// waiting for evidence.
func (a Analysis) Reason() string {
	var parts []string
	for _, o := range a.Outcomes {
		if o.Verdict == a.Verdict && (o.Required || o.Verdict == Fail) {
			parts = append(parts, o.Reason)
		}
	}
	if len(parts) == 0 {
		return "all checks " + a.Verdict.String()
	}
	return strings.Join(parts, "; ")
}

// Evaluate judges evidence gathered at a step with the candidate on
// percent of clients.
func Evaluate(e Evidence, p Policy, percent float64) Analysis {
	split := percent > 0 && percent < 100
	splitRequired := split && percent >= p.SplitChecksFromPercent
	a := Analysis{Outcomes: []Outcome{
		disagreementCheck("new_blocks", "new blocks", e.NewBlocks, e.Pairs, p.MaxNewBlockRate, p.Alpha),
		disagreementCheck("lost_blocks", "lost blocks", e.LostBlocks, e.Pairs, p.MaxLostBlockRate, p.Alpha),
		armRateCheck("block_rate", "block rate", e, func(a ArmEvidence) int64 { return a.Blocked }, p.MaxBlockRateIncrease, p.Alpha, split, splitRequired),
		armRateCheck("upstream_errors", "upstream error rate", e, func(a ArmEvidence) int64 { return a.UpstreamErrors }, p.MaxUpstreamErrorIncrease, p.Alpha, split, splitRequired),
		latencyCheck("waf_time_p50", 0.5, e, p, split, splitRequired),
		latencyCheck("waf_time_p99", 0.99, e, p, split, splitRequired),
	}}
	a.Verdict = Pass
	for _, o := range a.Outcomes {
		switch {
		case o.Verdict == Fail:
			a.Verdict = Fail
		case o.Required && o.Verdict != Pass && a.Verdict != Fail:
			a.Verdict = Inconclusive
		}
	}
	return a
}

func disagreementCheck(check, name string, d Disagreements, pairs int64, limit, alpha float64) Outcome {
	lo, hi := RateBounds(d.OutOfScope, pairs, alpha, limit)
	o := Outcome{Check: check, Required: true, Lower: lo, Upper: hi, Limit: limit, N: pairs, Rules: d.TopRules(5)}
	if pairs > 0 {
		o.Observed = float64(d.OutOfScope) / float64(pairs)
	}
	head := fmt.Sprintf("%s outside scope: %d of %d paired requests (%s)", name, d.OutOfScope, pairs, pct(o.Observed))
	if d.InScope > 0 {
		head += fmt.Sprintf(", %d more in scope", d.InScope)
	}
	if len(o.Rules) > 0 {
		head += ", rules " + ruleList(o.Rules)
	}
	switch {
	case lo > limit:
		o.Verdict = Fail
		o.Reason = fmt.Sprintf("%s: rate at least %s > limit %s (alpha %g)", head, pct(lo), pct(limit), alpha)
	case hi <= limit:
		o.Verdict = Pass
		o.Reason = fmt.Sprintf("%s: rate at most %s <= limit %s", head, pct(hi), pct(limit))
	default:
		o.Verdict = Inconclusive
		o.Reason = fmt.Sprintf("%s: rate between %s and %s, not yet conclusive against limit %s", head, pct(lo), pct(hi), pct(limit))
	}
	return o
}

func armRateCheck(check, name string, e Evidence, count func(ArmEvidence) int64, limit, alpha float64, split, required bool) Outcome {
	o := Outcome{Check: check, Required: required, Limit: limit}
	if !split {
		o.Verdict, o.Reason = Skip, name+": not compared, one arm has all the traffic"
		return o
	}
	b, c := e.Arms[router.Baseline], e.Arms[router.Candidate]
	// Two bounds, each at alpha/2: together they hold with 1-alpha.
	bLo, bHi := RateBounds(count(b), b.Requests, alpha/2, limit)
	cLo, cHi := RateBounds(count(c), c.Requests, alpha/2, limit)
	rate := func(a ArmEvidence) float64 {
		if a.Requests == 0 {
			return 0
		}
		return float64(count(a)) / float64(a.Requests)
	}
	o.Observed, o.Lower, o.Upper, o.N = rate(c)-rate(b), cLo-bHi, cHi-bLo, c.Requests
	head := fmt.Sprintf("%s: candidate %s (n=%d) vs baseline %s (n=%d)", name, pct(rate(c)), c.Requests, pct(rate(b)), b.Requests)
	switch {
	case o.Lower > limit:
		o.Verdict = Fail
		o.Reason = fmt.Sprintf("%s: increase at least %s > limit %s (alpha %g)", head, points(o.Lower), points(limit), alpha)
	case o.Upper <= limit:
		o.Verdict = Pass
		o.Reason = fmt.Sprintf("%s: increase at most %s <= limit %s", head, points(o.Upper), points(limit))
	default:
		o.Verdict = Inconclusive
		o.Reason = fmt.Sprintf("%s: increase between %s and %s, not yet conclusive against limit %s", head, points(o.Lower), points(o.Upper), points(limit))
	}
	return o
}

func latencyCheck(check string, q float64, e Evidence, p Policy, split, required bool) Outcome {
	name := fmt.Sprintf("WAF time p%g", q*100)
	o := Outcome{Check: check, Required: required}
	if !split {
		o.Verdict, o.Reason = Skip, name+": not compared, one arm has all the traffic"
		return o
	}
	b, c := e.Arms[router.Baseline].WAFTime, e.Arms[router.Candidate].WAFTime
	if b == nil || c == nil || int64(b.GetCount()) < p.MinLatencySamples || int64(c.GetCount()) < p.MinLatencySamples {
		o.Verdict = Inconclusive
		o.Reason = fmt.Sprintf("%s: fewer than %d samples on an arm", name, p.MinLatencySamples)
		return o
	}
	// Alpha is shared by the two arms' bands.
	at := func(s interface {
		GetValueAtQuantile(float64) (float64, error)
		GetCount() float64
	}, shift float64) time.Duration {
		level := q + shift*QuantileSlack(int64(s.GetCount()), p.Alpha/2)
		level = min(max(level, 0), 1)
		v, _ := s.GetValueAtQuantile(level)
		return time.Duration(v * float64(time.Second))
	}
	cMid, cLo, cHi := at(c, 0), at(c, -1), at(c, 1)
	bMid, bLo, bHi := at(b, 0), at(b, -1), at(b, 1)
	limitOf := func(base time.Duration) time.Duration {
		return time.Duration(float64(base)*p.MaxLatencyRatio) + p.LatencySlack
	}
	o.Observed, o.Lower, o.Upper, o.Limit, o.N = cMid.Seconds(), cLo.Seconds(), cHi.Seconds(), limitOf(bMid).Seconds(), int64(c.GetCount())
	head := fmt.Sprintf("%s: candidate %s vs baseline %s", name, round(cMid), round(bMid))
	switch {
	case cLo > limitOf(bHi):
		o.Verdict = Fail
		o.Reason = fmt.Sprintf("%s: candidate at least %s > %g x %s + %s", head, round(cLo), p.MaxLatencyRatio, round(bHi), p.LatencySlack)
	case cHi <= limitOf(bLo):
		o.Verdict = Pass
		o.Reason = fmt.Sprintf("%s: candidate at most %s <= %g x %s + %s", head, round(cHi), p.MaxLatencyRatio, round(bLo), p.LatencySlack)
	default:
		o.Verdict = Inconclusive
		o.Reason = fmt.Sprintf("%s: not yet conclusive against %g x baseline + %s", head, p.MaxLatencyRatio, p.LatencySlack)
	}
	return o
}

func pct(f float64) string    { return fmt.Sprintf("%.3g%%", 100*f) }
func points(f float64) string { return fmt.Sprintf("%.3g points", 100*f) }
func round(d time.Duration) time.Duration {
	return d.Round(10 * time.Microsecond)
}

func ruleList(rules []RuleCount) string {
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = fmt.Sprintf("%d (x%d)", r.ID, r.Count)
	}
	return strings.Join(parts, ", ")
}
