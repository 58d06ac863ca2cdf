package rollout

import "math"

// The controller looks at its evidence every interval, so its tests must
// stay valid however often, and whenever, they are looked at. Both bounds
// here are confidence sequences: with probability at least 1-alpha they
// contain the true value at every sample size at once (docs/STATISTICS.md).

// RateBounds is a confidence sequence for the rate of a Bernoulli event
// after x events in n trials: Robbins' beta-binomial mixture, inverted.
// With prior Beta(a, b) the mixture likelihood ratio against a rate p,
//
//	M_n(p) = B(a+x, b+n-x) / B(a, b) / (p^x (1-p)^(n-x)),
//
// is a nonnegative martingale under p, so by Ville's inequality the set
// {p : M_n(p) < 1/alpha} misses the true rate at any n with probability at
// most alpha. priorMean centres the mixture on the scale that matters (a
// policy limit), which makes the bounds tightest there. With n = 0 the
// bounds are [0, 1]: no evidence, no conclusion.
func RateBounds(x, n int64, alpha, priorMean float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	priorMean = math.Min(math.Max(priorMean, 1e-6), 0.5)
	a := 1.0
	b := a * (1 - priorMean) / priorMean
	fx, fn := float64(x), float64(n)
	logMix := lbeta(a+fx, b+fn-fx) - lbeta(a, b)
	threshold := math.Log(1 / alpha)
	// log M_n(p) = logMix - x log p - (n-x) log(1-p): convex in p with its
	// minimum at x/n, so the set is an interval found by bisection.
	logM := func(p float64) float64 {
		v := logMix
		if x > 0 {
			v -= fx * math.Log(p)
		}
		if n > x {
			v -= (fn - fx) * math.Log1p(-p)
		}
		return v
	}
	phat := fx / fn
	lo, hi = 0, 1
	if x > 0 {
		lo = bisect(logM, threshold, 0, phat, true)
	}
	if n > x {
		hi = bisect(logM, threshold, phat, 1, false)
	}
	return lo, hi
}

// bisect finds where logM crosses threshold between from and to: for the
// lower end (lower true) logM falls from `from` (0) towards `to` (the
// estimate), for the upper end it rises from `from` (the estimate) towards
// `to` (1). The result is rounded outwards, so the interval returned always
// contains the true set.
func bisect(logM func(float64) float64, threshold, from, to float64, lower bool) float64 {
	inside, outside := to, from // lower end: phat is inside, 0 is outside
	if !lower {
		inside, outside = from, to
	}
	if logM(inside) >= threshold {
		return inside // the set is empty around phat: cannot happen for alpha < 1
	}
	if v := logM(outside); !math.IsInf(v, 1) && v < threshold {
		return outside
	}
	for range 100 {
		mid := (inside + outside) / 2
		if logM(mid) < threshold {
			inside = mid
		} else {
			outside = mid
		}
	}
	return outside
}

func lbeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// QuantileSlack is how far, in quantile level, an empirical quantile from n
// samples may be from the true one, uniformly over all quantiles and all n
// with probability 1-alpha: the time-uniform DKW bound of Howard and Ramdas
// (2022), "Sequential estimation of quantiles with applications to A/B
// testing and best-arm identification", Bernoulli 28(3), Theorem 2:
//
//	0.85 * sqrt((log log(e n) + 0.8 log(1612/alpha)) / n)
//
// The true q-quantile then lies between the empirical (q-s) and (q+s)
// quantiles.
func QuantileSlack(n int64, alpha float64) float64 {
	if n <= 0 {
		return 1
	}
	fn := float64(n)
	return math.Min(1, 0.85*math.Sqrt((math.Log(math.Log(math.E*fn))+0.8*math.Log(1612/alpha))/fn))
}
