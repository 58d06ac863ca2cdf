package rollout

import "math"

// The controller looks at its evidence every interval, so its tests must
// stay valid however often, and whenever, they are looked at. Every bound
// here is a confidence sequence: with probability at least 1-alpha it
// contains the true value at every sample size at once
// (docs/STATISTICS.md).
//
// All of them rest on one martingale, Robbins' beta-binomial mixture. For
// x events in n Bernoulli trials and a hypothesised rate p, mixing the
// likelihood ratio over rates r drawn from a prior,
//
//	M_n(p) = E_r[ r^x (1-r)^(n-x) ] / (p^x (1-p)^(n-x)),
//
// is a nonnegative martingale with mean 1 when p is the true rate,
// whatever the prior, so by Ville's inequality it ever reaches 1/alpha
// with probability at most alpha. The prior may depend on the hypothesis
// but not on the data: centring it on p itself (as Howard and Ramdas 2022
// do for their fixed-quantile confidence sequences) makes the bound's
// width scale like sqrt(p(1-p)/n) at every rate, instead of being tight
// near one chosen rate only.

// Mixture is the prior of a beta-binomial mixture, centred on the
// hypothesised rate p: with weight 0.9, Beta(m p, m (1-p)) with the
// concentration m that makes the bound tightest near nOpt observations
// (the normal-mixture optimum of Howard et al. 2021, eq. 14, carried
// over: m = nOpt / (2 log(1/alpha) + log(1 + 2 log(1/alpha)))), and with
// weight 0.1 the broad Beta(2p, 2(1-p)), which keeps power against large
// deviations in small samples: a candidate blocking 5% of requests is
// caught after about a hundred pairs, not the several hundred the
// concentrated prior alone needs. The broad part costs about 1% of width
// near nOpt. Away from nOpt the bound is only wider, slowly; it is valid
// at every n.
type Mixture struct {
	m float64
}

// NewMixture returns the mixture tuned for nOpt observations at alpha.
func NewMixture(nOpt, alpha float64) Mixture {
	l := math.Log(1 / alpha)
	return Mixture{m: math.Max(nOpt/(2*l+math.Log1p(2*l)), broadM)}
}

// Tuning of the mixtures, in observations: about where decisions are
// taken with the shipped steps (several thousand shadow pairs over a
// rollout, a few thousand requests per arm at a step). Wrong by ten
// times either way, they cost a little width and never validity.
const (
	pairedNOpt = 10000
	armNOpt    = 5000
)

const (
	logWeightNarrow = -0.10536051565782628 // log 0.9
	logWeightBroad  = -2.302585092994046   // log 0.1
	broadM          = 2
)

// logM returns p -> log M_n(p) for x events in n trials (x may be
// fractional: QuantileRanks searches counts as reals).
func (mx Mixture) logM(x, n float64) func(p float64) float64 {
	narrow, broad := betaBinomial(x, n, mx.m), betaBinomial(x, n, broadM)
	return func(p float64) float64 {
		v1 := logWeightNarrow + narrow(p)
		v2 := logWeightBroad + broad(p)
		hi, lo := math.Max(v1, v2), math.Min(v1, v2)
		v := hi + math.Log1p(math.Exp(lo-hi))
		if x > 0 {
			v -= x * math.Log(p)
		}
		if n > x {
			v -= (n - x) * math.Log1p(-p)
		}
		return v
	}
}

// betaBinomial returns p -> log E[r^x (1-r)^(n-x)] for r ~ Beta(m p,
// m (1-p)), that is log B(m p + x, m (1-p) + n - x) - log B(m p, m (1-p)),
// with the terms that do not depend on p computed once.
func betaBinomial(x, n, m float64) func(p float64) float64 {
	lmn, _ := math.Lgamma(m + n)
	lm, _ := math.Lgamma(m)
	constant := lm - lmn
	return func(p float64) float64 {
		a, b := m*p, m*(1-p)
		l1, _ := math.Lgamma(a + x)
		l2, _ := math.Lgamma(b + n - x)
		l3, _ := math.Lgamma(a)
		l4, _ := math.Lgamma(b)
		return constant + l1 + l2 - l3 - l4
	}
}

// rateEpsilon keeps hypothesised rates off 0 and 1, where a prior centred
// on them degenerates.
const rateEpsilon = 1e-12

// RateBounds is a confidence sequence for the rate of a Bernoulli event
// after x events in n trials: {p : M_n(p) < 1/alpha}, an interval found by
// bisection. With n = 0 the bounds are [0, 1]: no evidence, no
// conclusion.
func RateBounds(x, n int64, alpha float64, mx Mixture) (lo, hi float64) {
	return rateBoundsAt(float64(x), float64(n), math.Log(1/alpha), mx)
}

func rateBoundsAt(x, n, threshold float64, mx Mixture) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	f := mx.logM(x, n)
	phat := x / n
	lo, hi = 0, 1
	if x > 0 {
		lo = crossing(f, threshold, clampRate(phat), rateEpsilon)
	}
	if n > x {
		hi = crossing(f, threshold, clampRate(phat), 1-rateEpsilon)
	}
	return lo, hi
}

// QuantileRanks is a confidence sequence for the q-quantile of a
// continuous distribution from n samples, as ranks in the sorted sample:
// with probability 1-alpha, at every n at once, the true quantile lies
// between the lo-th and the hi-th smallest sample (1-based). lo is 0 when
// no sample bounds it from below (the bound is then 0), hi is n+1 when
// none bounds it from above (the bound is then infinite).
//
// It is the fixed-quantile confidence sequence of Howard and Ramdas
// (2022, "Sequential estimation of quantiles with applications to
// A/B-testing and best-arm identification", Bernoulli 28(3), Theorem 1,
// with the beta-binomial boundary): the number of samples at or below
// the true q-quantile is a Binomial(n, q) count, so with probability
// 1-alpha it stays, at every n, among the counts k the mixture accepts
// at rate q (M_n(q) < 1/alpha with k events). If at most k2 samples lie
// at or below the quantile, the (k2+1)-th exceeds it; if at least k1 do,
// the k1-th does not. Unlike a band uniform over all quantiles (the
// time-uniform DKW bound), the width in quantile level scales like
// sqrt(q(1-q)/n): at p99 and 5,000 samples it is [p98.5, p99.4], where
// the uniform band reaches from p95 to the maximum.
func QuantileRanks(q float64, n int64, alpha float64, mx Mixture) (lo, hi int64) {
	if n <= 0 {
		return 0, 1
	}
	fn := float64(n)
	threshold := math.Log(1 / alpha)
	f := func(k float64) float64 { return mx.logM(k, fn)(q) }
	center := q * fn
	// The accepted counts form an interval around nq (log M is convex in
	// k). crossing ends just outside its real-valued ends, so rounding
	// inwards from there keeps every accepted integer count.
	k1 := math.Ceil(crossing(f, threshold, center, 0))
	k2 := math.Floor(crossing(f, threshold, center, fn))
	return int64(k1), int64(k2) + 1
}

// DiffBounds is a confidence sequence for the difference of two rates,
// pc - pb, after xc events in nc trials on one arm and xb in nb on the
// other, however the arms' observations interleave. The product of the
// arms' mixtures, Mc(pc) Mb(pb), is a nonnegative martingale with mean 1
// under the true pair of rates (each observation moves one factor), so
// {(pc, pb) : Mc Mb < 1/alpha} is a confidence sequence for the pair at
// level alpha, and its projection on pc - pb is the interval returned.
// Against bounding each arm at alpha/2 and subtracting, the joint region
// spends alpha once and lets the arms' errors offset: at equal arms it is
// about a quarter narrower (docs/STATISTICS.md).
func DiffBounds(xc, nc, xb, nb int64, alpha float64, mx Mixture) (lo, hi float64) {
	if nc <= 0 || nb <= 0 {
		return -1, 1
	}
	threshold := math.Log(1 / alpha)
	fxc, fnc, fxb, fnb := float64(xc), float64(nc), float64(xb), float64(nb)
	fc, fb := mx.logM(fxc, fnc), mx.logM(fxb, fnb)
	// No pair outside {fc < threshold - min fb} x {fb < threshold - min fc}
	// is in the joint region (log M dips below zero near the estimate, so
	// each arm's part is wider than its own region at alpha). The minima
	// sit near the estimates; a little is taken off them for safety.
	minC := math.Min(fc(clampRate(fxc/fnc)), 0) - 0.5
	minB := math.Min(fb(clampRate(fxb/fnb)), 0) - 0.5
	cLo, cHi := rateBoundsAt(fxc, fnc, threshold-minB, mx)
	bLo, bHi := rateBoundsAt(fxb, fnb, threshold-minC, mx)
	// profile is the smallest log Mc Mb over pairs with pc - pb = d.
	profile := func(d float64) float64 {
		from := max(bLo, cLo-d, rateEpsilon, rateEpsilon-d)
		to := min(bHi, cHi-d, 1-rateEpsilon, 1-rateEpsilon-d)
		if from > to {
			return math.Inf(1)
		}
		// Golden-section search ends a little above the minimum; the
		// margin keeps the projection from being narrower than it is.
		return brentMin(func(pb float64) float64 { return fc(pb+d) + fb(pb) }, from, to) - 1e-6
	}
	// The estimate, kept where both rates can be hypothesised.
	dhat := min(max(fxc/fnc-fxb/fnb, -1+3*rateEpsilon), 1-3*rateEpsilon)
	// The projection lies within [cLo - bHi, cHi - bLo].
	lo = crossing(profile, threshold, dhat, math.Max(cLo-bHi, -1))
	hi = crossing(profile, threshold, dhat, math.Min(cHi-bLo, 1))
	return lo, hi
}

func clampRate(p float64) float64 { return math.Min(math.Max(p, rateEpsilon), 1-rateEpsilon) }

// crossing finds where a smooth f that is below threshold at inside
// crosses it on the way to outside, to 1e-8, by the Illinois variant of
// regula falsi (a handful of evaluations where bisection takes dozens),
// halving instead while f is infinite. It returns the end of the last
// bracket on the outside, so the interval it ends contains the true set;
// outside itself if f stays below threshold up to it, and inside if f is
// not below threshold there (for alpha < 1, the estimate always is).
func crossing(f func(float64) float64, threshold, inside, outside float64) float64 {
	gIn := f(inside) - threshold
	if gIn >= 0 {
		return inside
	}
	gOut := f(outside) - threshold
	if gOut < 0 {
		return outside
	}
	side := 0
	for range 100 {
		if math.Abs(outside-inside) < 1e-8 {
			break
		}
		var mid float64
		if math.IsInf(gOut, 1) {
			mid = (inside + outside) / 2
		} else {
			mid = inside + (outside-inside)*gIn/(gIn-gOut)
			// Stay strictly inside the bracket, and move at least a little.
			tiny := 1e-3 * math.Abs(outside-inside)
			mid = math.Min(math.Max(mid, math.Min(inside, outside)+tiny), math.Max(inside, outside)-tiny)
		}
		g := f(mid) - threshold
		if g < 0 {
			inside, gIn = mid, g
			if side == -1 && !math.IsInf(gOut, 1) {
				gOut /= 2
			}
			side = -1
		} else {
			outside, gOut = mid, g
			if side == 1 {
				gIn /= 2
			}
			side = 1
		}
	}
	return outside
}

// brentMin is the minimum of a unimodal f on [a, b], by Brent's method
// (golden-section steps with parabolic interpolation) to about 1e-6 of
// the interval: near its minimum the profile is flat, so its value is
// then exact to far better than the bounds need.
func brentMin(f func(float64) float64, a, b float64) float64 {
	const cgold = 0.3819660112501051
	tol := 1e-6 * (b - a)
	x := a + cgold*(b-a)
	w, v := x, x
	fx := f(x)
	fw, fv := fx, fx
	var d, e float64
	for range 100 {
		m := (a + b) / 2
		if math.Abs(x-m) <= 2*tol-(b-a)/2 {
			break
		}
		golden := true
		if math.Abs(e) > tol {
			r := (x - w) * (fx - fv)
			q := (x - v) * (fx - fw)
			p := (x-v)*q - (x-w)*r
			q = 2 * (q - r)
			if q > 0 {
				p = -p
			}
			q = math.Abs(q)
			if math.Abs(p) < math.Abs(q*e/2) && p > q*(a-x) && p < q*(b-x) {
				e, d = d, p/q
				golden = false
				if u := x + d; u-a < 2*tol || b-u < 2*tol {
					d = math.Copysign(tol, m-x)
				}
			}
		}
		if golden {
			if x < m {
				e = b - x
			} else {
				e = a - x
			}
			d = cgold * e
		}
		u := x + d
		if math.Abs(d) < tol {
			u = x + math.Copysign(tol, d)
		}
		fu := f(u)
		if fu <= fx {
			if u < x {
				b = x
			} else {
				a = x
			}
			v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
		} else {
			if u < x {
				a = u
			} else {
				b = u
			}
			if fu <= fw || w == x {
				v, fv, w, fw = w, fw, u, fu
			} else if fu <= fv || v == x || v == w {
				v, fv = u, fu
			}
		}
	}
	return fx
}
