package rollout

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestRateBoundsShape(t *testing.T) {
	mx := NewMixture(pairedNOpt, 0.05)
	tests := []struct {
		name   string
		x, n   int64
		check  func(lo, hi float64) bool
		expect string
	}{
		{"no data gives no conclusion", 0, 0, func(lo, hi float64) bool { return lo == 0 && hi == 1 }, "[0,1]"},
		{"no events: lower bound zero, upper shrinks", 0, 20000, func(lo, hi float64) bool { return lo == 0 && hi < 0.001 && hi > 0 }, "lo=0, 0<hi<0.1%"},
		// Why: one block among three requests is not evidence of a rate above 0.1%.
		{"one event in three stays inconclusive", 1, 3, func(lo, hi float64) bool { return lo < 0.001 && hi > 0.5 }, "lo<0.1%<hi"},
		{"many events: interval around the estimate", 500, 10000, func(lo, hi float64) bool { return lo < 0.05 && hi > 0.05 && lo > 0.04 && hi < 0.06 }, "4%<lo<5%<hi<6%"},
		// Why: the broad part of the prior keeps power against a large
		// deviation in a small sample.
		{"all events", 50, 50, func(lo, hi float64) bool { return hi == 1 && lo > 0.8 }, "hi=1, lo>80%"},
		{"a 5% rate is told from 0.1% within 200 trials", 10, 200, func(lo, hi float64) bool { return lo > 0.001 }, "lo>0.1%"},
		// Why: centred on the hypothesis, the width follows sqrt(p(1-p)/n)
		// at every rate, not only near one chosen rate.
		{"width scales with the rate's own variance", 3000, 10000, func(lo, hi float64) bool { return hi-lo < 0.032 }, "width<3.2 points at 30%"},
	}
	for _, tt := range tests {
		lo, hi := RateBounds(tt.x, tt.n, 0.05, mx)
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
	runs, steps, alpha := 400, 3000, 0.05
	if testing.Short() {
		runs = 100
	}
	tolerance := alpha + 3*math.Sqrt(alpha*(1-alpha)/float64(runs))
	wald := func(x, n int64) (float64, float64) {
		p := float64(x) / float64(n)
		r := 1.96 * math.Sqrt(p*(1-p)/float64(n))
		return p - r, p + r
	}
	// The bounds depend on (x, n) only; runs share most of them.
	mx := NewMixture(pairedNOpt, alpha)
	cache := map[[2]int64][2]float64{}
	sequence := func(x, n int64) (float64, float64) {
		b, ok := cache[[2]int64{x, n}]
		if !ok {
			b[0], b[1] = RateBounds(x, n, alpha, mx)
			cache[[2]int64{x, n}] = b
		}
		return b[0], b[1]
	}
	missRate := func(p float64, bounds func(x, n int64) (float64, float64)) float64 {
		rng := rand.New(rand.NewPCG(1, uint64(p*1e6)))
		misses := 0
		for range runs {
			var x int64
			for n := int64(1); n <= int64(steps); n++ {
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
		return float64(misses) / float64(runs)
	}
	for _, p := range []float64{0.001, 0.02, 0.3} {
		if rate := missRate(p, sequence); rate > tolerance {
			t.Errorf("p=%g: true rate left the bounds in %.1f%% of runs, more than alpha=%.0f%% allows", p, 100*rate, 100*alpha)
		}
	}
	if rate := missRate(0.02, wald); rate < 2*tolerance {
		t.Errorf("a fixed-sample interval under repeated looks missed in only %.1f%% of runs: the check cannot tell valid from invalid", 100*rate)
	} else {
		t.Logf("fixed-sample (Wald) interval under the same looks: %.1f%% of runs miss", 100*rate)
	}
}

// The quantile sequence covers the true quantile exactly when the count
// of samples at or below it stays among the accepted counts, so its
// coverage is checked on that count: a Binomial(n, q) walk, looked at
// after every 10th sample, must leave [lo, hi-1] in at most alpha of runs.
func TestQuantileRanksCoverageUnderContinuousMonitoring(t *testing.T) {
	const runs, steps, alpha = 400, 5000, 0.05
	tolerance := alpha + 3*math.Sqrt(alpha*(1-alpha)/runs)
	mx := NewMixture(armNOpt, alpha)
	for _, q := range []float64{0.5, 0.99} {
		// The ranks depend on n only: computed once per look.
		ranks := make([][2]int64, steps/10+1)
		for i := range ranks {
			ranks[i][0], ranks[i][1] = QuantileRanks(q, int64(10*i), alpha, mx)
		}
		rng := rand.New(rand.NewPCG(7, uint64(q*1000)))
		misses := 0
		for range runs {
			var below int64
			for n := 1; n <= steps; n++ {
				if rng.Float64() < q {
					below++
				}
				if n%10 != 0 {
					continue
				}
				if r := ranks[n/10]; below < r[0] || below > r[1]-1 {
					misses++
					break
				}
			}
		}
		if rate := float64(misses) / runs; rate > tolerance {
			t.Errorf("q=%g: the true quantile left the bounds in %.1f%% of runs, more than alpha=%.0f%% allows", q, 100*rate, 100*alpha)
		} else {
			t.Logf("q=%g: missed in %.1f%% of runs (alpha %.0f%%)", q, 100*rate, 100*alpha)
		}
	}
}

// timeUniformDKW is the band the latency checks used before: uniform over
// every quantile level (Howard and Ramdas 2022, Theorem 2). Kept here as
// the yardstick the fixed-quantile sequence must beat.
func timeUniformDKW(n int64, alpha float64) float64 {
	fn := float64(n)
	return math.Min(1, 0.85*math.Sqrt((math.Log(math.Log(math.E*fn))+0.8*math.Log(1612/alpha))/fn))
}

func TestQuantileRanksWidth(t *testing.T) {
	mx := NewMixture(armNOpt, 0.025)
	for _, tt := range []struct {
		q          float64
		n          int64
		maxLo, top float64 // the band must reach above maxLo and stay below top
	}{
		// Why: at p99, the uniform band's top is the sample maximum until
		// about 300,000 samples; this one is finite from about 1,000.
		{0.99, 2000, 0.98, 0.9975},
		{0.99, 5000, 0.984, 0.995},
		{0.99, 20000, 0.987, 0.993},
		{0.5, 5000, 0.47, 0.53},
	} {
		lo, hi := QuantileRanks(tt.q, tt.n, 0.025, mx)
		loLevel, hiLevel := float64(lo)/float64(tt.n), float64(hi)/float64(tt.n)
		if loLevel < tt.maxLo || hiLevel > tt.top {
			t.Errorf("p%g at n=%d: levels [%.4f, %.4f], want within [%g, %g]", 100*tt.q, tt.n, loLevel, hiLevel, tt.maxLo, tt.top)
		}
		if s := timeUniformDKW(tt.n, 0.025); tt.q == 0.99 && tt.q+s < 1 {
			t.Errorf("yardstick: the uniform band at n=%d no longer reaches the maximum (%g)", tt.n, s)
		}
	}
	if lo, hi := QuantileRanks(0.99, 300, 0.025, mx); hi != 301 || lo < 1 {
		t.Errorf("p99 from 300 samples: ranks [%d, %d], want an upper bound no sample gives (301) and a finite lower one", lo, hi)
	}
}

// The difference of two arms' rates, with the arms' observations
// interleaved at random (a 25% arm), looked at every 250 observations:
// the true difference leaves the bounds in at most alpha of runs.
func TestDiffBoundsCoverageUnderContinuousMonitoring(t *testing.T) {
	runs, steps := 200, 5000
	if testing.Short() {
		runs, steps = 40, 2000
	}
	const alpha = 0.05
	tolerance := alpha + 3*math.Sqrt(alpha*(1-alpha)/float64(runs))
	mx := NewMixture(armNOpt, alpha)
	for _, tt := range []struct{ pc, pb float64 }{{0.01, 0.01}, {0.03, 0.01}, {0.2, 0.25}} {
		rng := rand.New(rand.NewPCG(9, uint64(tt.pc*1e4+tt.pb*1e2)))
		misses := 0
		for range runs {
			var xc, nc, xb, nb int64
			for i := 1; i <= steps; i++ {
				if rng.Float64() < 0.25 {
					nc++
					if rng.Float64() < tt.pc {
						xc++
					}
				} else {
					nb++
					if rng.Float64() < tt.pb {
						xb++
					}
				}
				if i%250 != 0 {
					continue
				}
				if lo, hi := DiffBounds(xc, nc, xb, nb, alpha, mx); tt.pc-tt.pb < lo || tt.pc-tt.pb > hi {
					misses++
					break
				}
			}
		}
		if rate := float64(misses) / float64(runs); rate > tolerance {
			t.Errorf("pc=%g pb=%g: the true difference left the bounds in %.1f%% of runs, more than alpha=%.0f%% allows", tt.pc, tt.pb, 100*rate, 100*alpha)
		}
	}
}

// The joint region must be narrower than the two arms bounded apart at
// alpha/2 each (the method it replaced), and contain the estimate.
func TestDiffBoundsNarrowerThanTwoSeparateBounds(t *testing.T) {
	mx := NewMixture(armNOpt, 0.05)
	half := NewMixture(armNOpt, 0.025)
	for _, tt := range []struct{ xc, nc, xb, nb int64 }{
		{100, 10000, 100, 10000}, {55, 5000, 160, 15000}, {500, 10000, 470, 9400}, {0, 10000, 3, 10000},
	} {
		lo, hi := DiffBounds(tt.xc, tt.nc, tt.xb, tt.nb, 0.05, mx)
		cLo, cHi := RateBounds(tt.xc, tt.nc, 0.025, half)
		bLo, bHi := RateBounds(tt.xb, tt.nb, 0.025, half)
		est := float64(tt.xc)/float64(tt.nc) - float64(tt.xb)/float64(tt.nb)
		if lo > est || hi < est || math.IsNaN(lo) || math.IsNaN(hi) {
			t.Errorf("%+v: [%g, %g] does not contain the estimate %g", tt, lo, hi, est)
		}
		if joint, apart := hi-lo, (cHi-bLo)-(cLo-bHi); joint >= apart {
			t.Errorf("%+v: joint width %.4f not narrower than %.4f apart", tt, joint, apart)
		}
	}
	if lo, hi := DiffBounds(0, 0, 5, 100, 0.05, mx); lo != -1 || hi != 1 {
		t.Errorf("an arm without traffic bounds nothing: [%g, %g]", lo, hi)
	}
}
