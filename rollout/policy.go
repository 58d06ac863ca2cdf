package rollout

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/verdict"
)

// Policy holds the limits the evidence is held against: the data Evaluate
// reads. Its defaults are DefaultConfig.Policy.
type Policy struct {
	// Alpha bounds the probability that a confidence sequence ever
	// excludes the truth; each check uses it, split across its bounds.
	Alpha float64 `mapstructure:"alpha"`
	// MaxNewBlockRate: requests the candidate blocks and the baseline
	// allows (possible new false positives), as a fraction of paired
	// requests, outside the rollout's scope.
	MaxNewBlockRate float64 `mapstructure:"max_new_block_rate"`
	// MaxLostBlockRate: requests the baseline blocks and the candidate
	// allows (lost protection), as a fraction of paired requests, outside
	// the rollout's scope.
	MaxLostBlockRate float64 `mapstructure:"max_lost_block_rate"`
	// MaxBlockRateIncrease and MaxUpstreamErrorIncrease: candidate arm
	// minus baseline arm, in absolute fraction (0.005 = 0.5 points).
	MaxBlockRateIncrease     float64 `mapstructure:"max_block_rate_increase"`
	MaxUpstreamErrorIncrease float64 `mapstructure:"max_upstream_error_increase"`
	// MaxLatencyRatio, LatencySlackP50 and LatencySlack: the candidate's
	// WAF time at p50 may be at most ratio x the baseline's + the p50
	// slack, at p99 ratio x the baseline's + LatencySlack.
	MaxLatencyRatio float64       `mapstructure:"max_latency_ratio"`
	LatencySlackP50 time.Duration `mapstructure:"latency_slack_p50"`
	LatencySlack    time.Duration `mapstructure:"latency_slack"`
	// LatencyTailMargin is the p99 check's indifference zone, in quantile
	// level: it passes when the candidate's p(99 - 100 x margin) is within
	// the limit, and fails when its p99 is beyond it.
	LatencyTailMargin float64 `mapstructure:"latency_tail_margin"`
	// MinLatencySamples per arm before latency is judged at all.
	MinLatencySamples int64 `mapstructure:"min_latency_samples"`
	// SplitChecksFromPercent: from this share on, the split-arm and
	// latency checks must pass to advance; below it they can only fail
	// (a 1% arm takes too long to prove anything).
	SplitChecksFromPercent float64 `mapstructure:"split_checks_from_percent"`
	// OnMaxDuration is what happens when a rollout outlives MaxDuration
	// without conclusive evidence.
	OnMaxDuration OnMaxDuration `mapstructure:"on_max_duration"`
}

// OnMaxDuration is a policy's word for what a rollout that outlives
// max_duration without a conclusion does.
type OnMaxDuration string

// The words policy.on_max_duration takes.
const (
	RollbackAtMaxDuration OnMaxDuration = "rollback"
	PauseAtMaxDuration    OnMaxDuration = "pause"
)

// Validate refuses a word that names no action.
func (w OnMaxDuration) Validate() error {
	if _, ok := w.action(); !ok {
		return fmt.Errorf("must be %q or %q, got %q", RollbackAtMaxDuration, PauseAtMaxDuration, string(w))
	}
	return nil
}

// Action is the decision the word stands for; a word Validate refuses
// rolls back, the safe way out.
func (w OnMaxDuration) Action() Action {
	a, _ := w.action()
	return a
}

func (w OnMaxDuration) action() (Action, bool) {
	switch w {
	case RollbackAtMaxDuration:
		return ActionRollback, true
	case PauseAtMaxDuration:
		return ActionPause, true
	}
	return ActionRollback, false
}

func (p Policy) validate() error {
	fractions := []struct {
		key string
		v   float64
	}{
		{"max_new_block_rate", p.MaxNewBlockRate}, {"max_lost_block_rate", p.MaxLostBlockRate},
		{"max_block_rate_increase", p.MaxBlockRateIncrease}, {"max_upstream_error_increase", p.MaxUpstreamErrorIncrease},
	}
	switch {
	// Comparisons are written so that NaN fails them: NaN compares false
	// with everything, and a NaN alpha collapsed every bound to its point
	// estimate.
	case !(p.Alpha > 0 && p.Alpha < 0.5):
		return fmt.Errorf("policy.alpha: must be between 0 and 0.5, got %v", p.Alpha)
	case !(p.MaxLatencyRatio >= 1) || math.IsInf(p.MaxLatencyRatio, 1):
		return fmt.Errorf("policy.max_latency_ratio: must be a finite number, at least 1, got %v", p.MaxLatencyRatio)
	case p.LatencySlackP50 < 0:
		return fmt.Errorf("policy.latency_slack_p50: must not be negative, got %s", p.LatencySlackP50)
	case p.LatencySlack < 0:
		return fmt.Errorf("policy.latency_slack: must not be negative, got %s", p.LatencySlack)
	case !(p.LatencyTailMargin >= 0 && p.LatencyTailMargin < 0.5):
		return fmt.Errorf("policy.latency_tail_margin: must be a fraction from 0 to below 0.5 (0.005 = half a percentile), got %v", p.LatencyTailMargin)
	case p.MinLatencySamples < 1:
		return fmt.Errorf("policy.min_latency_samples: must be at least 1, got %d", p.MinLatencySamples)
	case !(p.SplitChecksFromPercent >= 0 && p.SplitChecksFromPercent <= 100):
		return fmt.Errorf("policy.split_checks_from_percent: must be between 0 and 100, got %v", p.SplitChecksFromPercent)
	}
	if err := p.OnMaxDuration.Validate(); err != nil {
		return fmt.Errorf("policy.on_max_duration: %w", err)
	}
	for _, f := range fractions {
		if !(f.v > 0 && f.v < 1) {
			return fmt.Errorf("policy.%s: must be a fraction between 0 and 1 (0.001 = 0.1%%), got %v", f.key, f.v)
		}
	}
	return nil
}

// Evaluate holds the policy's limits against the evidence gathered with
// the candidate on percent of clients: shadow pairs since the rollout
// started, split arms since the step started.
func Evaluate(e evidence.Evidence, p Policy, percent float64) Analysis {
	return evaluate(e, p, percent, nil)
}

// RuleChange says what an upgrade did to a rule the candidate loads:
// "new", "changed", or "" for a rule it left alone (ruleset.RuleChanges).
type RuleChange func(id int) string

// evaluate is Evaluate; with changed set (the candidate reads another
// CRS than the baseline), the rules behind new and lost blocks are named
// with what the upgrade did to them.
func evaluate(e evidence.Evidence, p Policy, percent float64, changed RuleChange) Analysis {
	split := percent > 0 && percent < 100
	splitRequired := split && percent >= p.SplitChecksFromPercent
	a := Analysis{Outcomes: []Outcome{
		disagreementCheck("new_blocks", "new blocks", e.NewBlocks, e.Pairs, p.MaxNewBlockRate, p.Alpha, changed),
		disagreementCheck("lost_blocks", "lost blocks", e.LostBlocks, e.Pairs, p.MaxLostBlockRate, p.Alpha, changed),
		blockRateCheck(e, p.MaxBlockRateIncrease, p.Alpha, split, splitRequired),
		upstreamErrorCheck(e, p.MaxUpstreamErrorIncrease, p.Alpha, split, splitRequired),
		latencyCheck("waf_time_p50", 0.5, 0, p.LatencySlackP50, e, p, split, splitRequired),
		latencyCheck("waf_time_p99", 0.99, p.LatencyTailMargin, p.LatencySlack, e, p, split, splitRequired),
	}}
	a.Status = Pass
	for _, o := range a.Outcomes {
		switch {
		case o.Status == Fail:
			a.Status = Fail
		case o.Required && o.Status != Pass && a.Status != Fail:
			a.Status = Inconclusive
		}
	}
	return a
}

// compare is the one three-way comparison of a confidence sequence
// [lo, hi] with a limit it must not exceed. (Judging is what a WAF does
// to a request; this only places an interval against a number.)
func compare(lo, hi, limit float64) CheckStatus {
	switch {
	case lo > limit:
		return Fail
	case hi <= limit:
		return Pass
	}
	return Inconclusive
}

func disagreementCheck(check, name string, d evidence.Disagreements, pairs int64, limit, alpha float64, changed RuleChange) Outcome {
	lo, hi := RateBounds(d.OutOfScope, pairs, alpha, NewMixture(pairedNOpt, alpha))
	o := Outcome{Check: check, Required: true, Window: RolloutWindow, Lower: lo, Upper: hi, Limit: limit, N: pairs, Rules: d.TopRules(5)}
	if pairs > 0 {
		o.Observed = float64(d.OutOfScope) / float64(pairs)
	}
	head := fmt.Sprintf("%s outside scope since the rollout started: %d of %d paired requests (%s)", name, d.OutOfScope, pairs, pct(o.Observed))
	if d.InScope > 0 {
		head += fmt.Sprintf(", %d more in scope", d.InScope)
	}
	if len(o.Rules) > 0 {
		if changed != nil {
			for i := range o.Rules {
				if o.Rules[i].Upgrade = changed(o.Rules[i].ID); o.Rules[i].Upgrade == "" {
					o.Rules[i].Upgrade = "unchanged"
				}
			}
		}
		head += ", rules " + ruleList(o.Rules)
	}
	switch o.Status = compare(lo, hi, limit); o.Status {
	case Fail:
		o.Reason = fmt.Sprintf("%s: rate at least %s > limit %s (alpha %g)", head, pct(lo), pct(limit), alpha)
	case Pass:
		o.Reason = fmt.Sprintf("%s: rate at most %s <= limit %s", head, pct(hi), pct(limit))
	default:
		o.Reason = fmt.Sprintf("%s: rate between %s and %s, not yet conclusive against limit %s", head, pct(lo), pct(hi), pct(limit))
	}
	return o
}

func rate(x, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(x) / float64(n)
}

// blockRateCheck bounds how much more the candidate's arm blocks than the
// baseline's. Two confidence sequences, each at alpha/2, bound the same
// difference and the check uses where they overlap:
//   - the arms' block rates compared directly (DiffBounds); noisy, since
//     attacks land on one arm or the other by chance;
//   - the same difference split by phase: in the request phases it is
//     what shadow pairs measure on identical requests (new blocks minus
//     lost blocks, in scope or not, since the rollout started), in the
//     response phases, which pairs cannot see, the arms' rates of
//     response-phase blocks (rare, so tightly bounded). With clients
//     assigned to arms by a hash they cannot choose, an arm's request-
//     phase block rate differs from the other's only by what the pairs
//     measure.
//
// With shadow on every request the second is far narrower (an A/A
// candidate passes in a few thousand requests where the direct
// comparison needs tens of thousands); with little or no shadow the first
// still decides.
func blockRateCheck(e evidence.Evidence, limit, alpha float64, split, required bool) Outcome {
	const name = "block rate"
	o := Outcome{Check: "block_rate", Required: required, Window: StepWindow, Limit: limit}
	if !split {
		o.Status, o.Reason = Skip, name+": not compared, one arm has all the traffic"
		return o
	}
	b, c := e.Arms[verdict.Baseline], e.Arms[verdict.Candidate]
	arm, paired := NewMixture(armNOpt, alpha), NewMixture(pairedNOpt, alpha)
	directLo, directHi := DiffBounds(c.Blocked, c.Requests, b.Blocked, b.Requests, alpha/2, arm)
	// Split by phase: alpha/4 for the request phases (alpha/8 for each of
	// new and lost blocks) and alpha/4 for the response phases.
	newBlocks, lostBlocks := e.NewBlocks.InScope+e.NewBlocks.OutOfScope, e.LostBlocks.InScope+e.LostBlocks.OutOfScope
	newLo, newHi := RateBounds(newBlocks, e.Pairs, alpha/8, paired)
	lostLo, lostHi := RateBounds(lostBlocks, e.Pairs, alpha/8, paired)
	respLo, respHi := DiffBounds(c.ResponseBlocked, c.Requests, b.ResponseBlocked, b.Requests, alpha/4, arm)
	lo := max(directLo, newLo-lostHi+respLo)
	hi := min(directHi, newHi-lostLo+respHi)
	o.Observed, o.Lower, o.Upper, o.N = rate(c.Blocked, c.Requests)-rate(b.Blocked, b.Requests), lo, hi, c.Requests
	head := fmt.Sprintf("%s at this step: candidate %s (n=%d) vs baseline %s (n=%d)", name, pct(rate(c.Blocked, c.Requests)), c.Requests, pct(rate(b.Blocked, b.Requests)), b.Requests)
	parts := fmt.Sprintf("request phases %+.3g points over %d shadow pairs since the rollout started, response phases %+.3g points",
		100*(rate(newBlocks, e.Pairs)-rate(lostBlocks, e.Pairs)), e.Pairs, 100*(rate(c.ResponseBlocked, c.Requests)-rate(b.ResponseBlocked, b.Requests)))
	o.Status = compare(lo, hi, limit)
	o.Reason = increaseReason(o.Status, head, lo, hi, limit, alpha) + " (" + parts + ")"
	return o
}

// increaseReason says how a difference of two arms' rates stands against
// its limit, in points.
func increaseReason(s CheckStatus, head string, lo, hi, limit, alpha float64) string {
	switch s {
	case Fail:
		return fmt.Sprintf("%s: increase at least %s > limit %s (alpha %g)", head, points(lo), points(limit), alpha)
	case Pass:
		return fmt.Sprintf("%s: increase at most %s <= limit %s", head, points(hi), points(limit))
	}
	return fmt.Sprintf("%s: increase between %s and %s, not yet conclusive against limit %s", head, points(lo), points(hi), points(limit))
}

// upstreamErrorCheck bounds how much more often the upstream fails on the
// candidate's arm: the arms' rates compared directly.
func upstreamErrorCheck(e evidence.Evidence, limit, alpha float64, split, required bool) Outcome {
	const name = "upstream error rate"
	o := Outcome{Check: "upstream_errors", Required: required, Window: StepWindow, Limit: limit}
	if !split {
		o.Status, o.Reason = Skip, name+": not compared, one arm has all the traffic"
		return o
	}
	b, c := e.Arms[verdict.Baseline], e.Arms[verdict.Candidate]
	lo, hi := DiffBounds(c.UpstreamErrors, c.Requests, b.UpstreamErrors, b.Requests, alpha, NewMixture(armNOpt, alpha))
	o.Observed, o.Lower, o.Upper, o.N = rate(c.UpstreamErrors, c.Requests)-rate(b.UpstreamErrors, b.Requests), lo, hi, c.Requests
	head := fmt.Sprintf("%s at this step: candidate %s (n=%d) vs baseline %s (n=%d)", name, pct(rate(c.UpstreamErrors, c.Requests)), c.Requests, pct(rate(b.UpstreamErrors, b.Requests)), b.Requests)
	o.Status = compare(lo, hi, limit)
	o.Reason = increaseReason(o.Status, head, lo, hi, limit, alpha)
	return o
}

// Quantiles is what a latency check reads of an arm's WAF times: a
// sketch (DDSketch in process, histogram buckets from Prometheus).
type Quantiles interface {
	GetValueAtQuantile(float64) (float64, error)
	GetCount() float64
}

// quantileBounds is a confidence sequence at alpha for the q-quantile of
// s, in seconds: QuantileRanks read from the sketch, widened by its
// relative accuracy. The lower bound is 0 and the upper infinite where
// no sample bounds them yet.
func quantileBounds(s Quantiles, q, alpha, accuracy float64) (mid, lo, hi float64) {
	n := int64(s.GetCount())
	at := func(rank int64) float64 { // 1-based rank among n samples
		if n == 1 {
			v, _ := s.GetValueAtQuantile(0)
			return v
		}
		v, _ := s.GetValueAtQuantile(float64(rank-1) / float64(n-1))
		return v
	}
	mid, _ = s.GetValueAtQuantile(q)
	kLo, kHi := QuantileRanks(q, n, alpha, NewMixture(armNOpt, alpha))
	lo, hi = 0, math.Inf(1)
	if kLo >= 1 {
		lo = at(kLo) / (1 + accuracy)
	}
	if kHi <= n {
		hi = at(kHi) / (1 - accuracy)
	}
	return mid, lo, hi
}

// latencyCheck compares the arms' q-quantiles of WAF time: the candidate's
// may be at most ratio x the baseline's + slack. It fails when even the
// fastest the candidate's q-quantile can be exceeds the highest the limit
// can be. It passes when the candidate's (q - margin)-quantile is at most
// the lowest the limit can be: at most 1 - q + margin of its requests are
// slower than the limit. The margin is an indifference zone for tails,
// where the quantile function is steep (GC pauses, noisy neighbours) and
// telling p99 from p99 x 1.2 takes far more samples than telling p98.5
// from p99. Each kind of wrong decision has probability at most alpha: the
// baseline's sequence and each of the candidate's take alpha/2.
func latencyCheck(check string, q, margin float64, slack time.Duration, e evidence.Evidence, p Policy, split, required bool) Outcome {
	name := fmt.Sprintf("WAF time p%g at this step", q*100)
	o := Outcome{Check: check, Required: required, Window: StepWindow}
	if !split {
		o.Status, o.Reason = Skip, name+": not compared, one arm has all the traffic"
		return o
	}
	b, c := e.Arms[verdict.Baseline], e.Arms[verdict.Candidate]
	if b.WAFTime == nil || c.WAFTime == nil || int64(b.WAFTime.GetCount()) < p.MinLatencySamples || int64(c.WAFTime.GetCount()) < p.MinLatencySamples {
		o.Status = Inconclusive
		o.Reason = fmt.Sprintf("%s: fewer than %d samples on an arm", name, p.MinLatencySamples)
		return o
	}
	cMid, cLo, cHi := quantileBounds(c.WAFTime, q, p.Alpha/2, c.Accuracy())
	passQ, passHi := q, cHi
	if margin > 0 {
		passQ = q - margin
		_, _, passHi = quantileBounds(c.WAFTime, passQ, p.Alpha/2, c.Accuracy())
	}
	bMid, bLo, bHi := quantileBounds(b.WAFTime, q, p.Alpha/2, b.Accuracy())
	limitOf := func(base float64) float64 { return base*p.MaxLatencyRatio + slack.Seconds() }
	o.Observed, o.Lower, o.Upper, o.Limit, o.N = cMid, cLo, passHi, limitOf(bMid), int64(c.WAFTime.GetCount())
	head := fmt.Sprintf("%s: candidate %s vs baseline %s (n=%d, %d)", name, seconds(cMid), seconds(bMid), int64(c.WAFTime.GetCount()), int64(b.WAFTime.GetCount()))
	of := ""
	if margin > 0 {
		of = fmt.Sprintf(" (its p%g)", 100*passQ)
	}
	switch {
	case cLo > limitOf(bHi):
		o.Status = Fail
		o.Reason = fmt.Sprintf("%s: candidate at least %s > %g x %s + %s", head, seconds(cLo), p.MaxLatencyRatio, seconds(bHi), slack)
	case passHi <= limitOf(bLo):
		o.Status = Pass
		o.Reason = fmt.Sprintf("%s: candidate%s at most %s <= %g x %s + %s", head, of, seconds(passHi), p.MaxLatencyRatio, seconds(bLo), slack)
	default:
		o.Status = Inconclusive
		o.Reason = fmt.Sprintf("%s: candidate from %s, up to %s%s; baseline between %s and %s: not yet conclusive against %g x baseline + %s",
			head, seconds(cLo), seconds(passHi), of, seconds(bLo), seconds(bHi), p.MaxLatencyRatio, slack)
	}
	return o
}

func pct(f float64) string    { return fmt.Sprintf("%.3g%%", 100*f) }
func points(f float64) string { return fmt.Sprintf("%.3g points", 100*f) }

// seconds prints a duration given in seconds, to 10 µs; "unbounded" for
// an upper bound no sample gives yet.
func seconds(s float64) string {
	if math.IsInf(s, 1) {
		return "unbounded"
	}
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond).String()
}

func ruleList(rules []evidence.RuleCount) string {
	parts := make([]string, len(rules))
	for i, r := range rules {
		if r.Upgrade != "" {
			// In an upgrade, what it did to the rule: the release's
			// change the operator's traffic hit, or a rule it left alone.
			parts[i] = fmt.Sprintf("%d (x%d, %s in the upgrade)", r.ID, r.Count, r.Upgrade)
			continue
		}
		parts[i] = fmt.Sprintf("%d (x%d)", r.ID, r.Count)
	}
	return strings.Join(parts, ", ")
}
