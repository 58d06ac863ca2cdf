package rollout

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestRateBoundsShape(t *testing.T) {
	tests := []struct {
		name   string
		x, n   int64
		prior  float64
		check  func(lo, hi float64) bool
		expect string
	}{
		{"no data gives no conclusion", 0, 0, 0.001, func(lo, hi float64) bool { return lo == 0 && hi == 1 }, "[0,1]"},
		{"no events: lower bound zero, upper shrinks", 0, 20000, 0.001, func(lo, hi float64) bool { return lo == 0 && hi < 0.001 && hi > 0 }, "lo=0, 0<hi<0.1%"},
		// Why: one block among three requests is not evidence of a rate above 0.1%.
		{"one event in three stays inconclusive", 1, 3, 0.001, func(lo, hi float64) bool { return lo < 0.001 && hi > 0.5 }, "lo<0.1%<hi"},
		{"many events: interval around the estimate", 500, 10000, 0.05, func(lo, hi float64) bool { return lo < 0.05 && hi > 0.05 && lo > 0.04 && hi < 0.06 }, "4%<lo<5%<hi<6%"},
		{"all events", 50, 50, 0.5, func(lo, hi float64) bool { return hi == 1 && lo > 0.5 }, "hi=1, lo>50%"},
		// Why: a prior far from the data costs power, never validity.
		{"prior far from the data is only wider", 500, 10000, 0.001, func(lo, hi float64) bool { return lo < 0.05 && hi > 0.05 && lo > 0.02 }, "2%<lo<5%<hi"},
	}
	for _, tt := range tests {
		lo, hi := RateBounds(tt.x, tt.n, 0.05, tt.prior)
		if !tt.check(lo, hi) {
			t.Errorf("%s: [%g, %g], want %s", tt.name, lo, hi, tt.expect)
		}
	}
}

// TestRateBoundsCoverageUnderContinuousMonitoring is the property that
// matters: looking after every 10th observation, the true rate leaves the
// bounds at some point in at most alpha of runs (plus Monte Carlo noise:
// 3 standard deviations over 400 runs). The same check on a fixed-sample
// (Wald) interval shows what repeated looks do to a test that ignores them.
func TestRateBoundsCoverageUnderContinuousMonitoring(t *testing.T) {
	const runs, steps, alpha = 400, 3000, 0.05
	tolerance := alpha + 3*math.Sqrt(alpha*(1-alpha)/runs)
	wald := func(x, n int64) (float64, float64) {
		p := float64(x) / float64(n)
		r := 1.96 * math.Sqrt(p*(1-p)/float64(n))
		return p - r, p + r
	}
	missRate := func(p float64, bounds func(x, n int64) (float64, float64)) float64 {
		rng := rand.New(rand.NewPCG(1, uint64(p*1e6)))
		misses := 0
		for range runs {
			var x int64
			for n := int64(1); n <= steps; n++ {
				if rng.Float64() < p {
					x++
				}
				if n%10 != 0 {
					continue
				}
				if lo, hi := bounds(x, n); p < lo || p > hi {
					misses++
					break
				}
			}
		}
		return float64(misses) / runs
	}
	for _, p := range []float64{0.001, 0.02, 0.3} {
		if rate := missRate(p, func(x, n int64) (float64, float64) { return RateBounds(x, n, alpha, 0.001) }); rate > tolerance {
			t.Errorf("p=%g: true rate left the bounds in %.1f%% of runs, more than alpha=%.0f%% allows", p, 100*rate, 100*alpha)
		}
	}
	if rate := missRate(0.02, wald); rate < 2*tolerance {
		t.Errorf("a fixed-sample interval under repeated looks missed in only %.1f%% of runs: the check cannot tell valid from invalid", 100*rate)
	} else {
		t.Logf("fixed-sample (Wald) interval under the same looks: %.1f%% of runs miss", 100*rate)
	}
}

func TestQuantileSlack(t *testing.T) {
	if QuantileSlack(0, 0.05) != 1 {
		t.Error("no samples must bound nothing")
	}
	prev := 1.0
	for _, n := range []int64{10, 100, 1000, 10000, 100000} {
		s := QuantileSlack(n, 0.05)
		if s >= prev {
			t.Errorf("slack does not shrink: n=%d %g", n, s)
		}
		prev = s
	}
	if s := QuantileSlack(10000, 0.05); math.Abs(s-0.0264) > 0.003 {
		t.Errorf("slack at 10,000 samples %g, want about 0.026", s)
	}
}
