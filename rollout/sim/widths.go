package sim

import (
	"fmt"
	"io"
	"math"

	"github.com/wafcanary/wafcanary/rollout"
)

// PrintWidths writes how wide the controller's confidence sequences are
// at a few sample sizes, next to what they replaced and to a fixed-sample
// interval (valid at one look only), for docs/STATISTICS.md.
func PrintWidths(w io.Writer, alpha float64) {
	pairedMx, armMx := rollout.NewMixture(10000, alpha), rollout.NewMixture(5000, alpha)
	halfMx := rollout.NewMixture(5000, alpha/2)
	fmt.Fprintf(w, "Quantile level bounds of p99 per arm (each arm at alpha/2 = %g):\n\n", alpha/2)
	fmt.Fprintln(w, "| samples | fixed-quantile sequence (now) | uniform DKW band (before) |")
	fmt.Fprintln(w, "|---:|---|---|")
	for _, n := range []int64{500, 1000, 2000, 5000, 20000, 100000} {
		lo, hi := rollout.QuantileRanks(0.99, n, alpha/2, rollout.NewMixture(5000, alpha/2))
		level := func(k int64) string {
			switch {
			case k < 1:
				return "0"
			case k > n:
				return "unbounded"
			}
			return fmt.Sprintf("p%.2f", 100*float64(k)/float64(n))
		}
		s := dkw(n, alpha/2)
		top := "sample maximum"
		if 0.99+s < 1 {
			top = fmt.Sprintf("p%.2f", 100*(0.99+s))
		}
		fmt.Fprintf(w, "| %d | %s .. %s | p%.2f .. %s |\n", n, level(lo), level(hi), 100*(0.99-s), top)
	}
	fmt.Fprintf(w, "\nA/A block rate 1%% on both arms, equal arms: half-width of the difference, in points (alpha %g):\n\n", alpha)
	fmt.Fprintln(w, "| requests per arm | by phase: pairs agree, 0.05% response-phase blocks (now, with shadow) | arms compared directly (now) | arms apart at alpha/2, prior at the limit (before) | fixed-sample 95% interval (one look only) |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	for _, n := range []int64{1000, 2500, 5000, 10000, 40000} {
		x := n / 100
		_, hi := rollout.DiffBounds(x, n, x, n, alpha, armMx)
		bLo, bHi := beforeRateBounds(x, n, alpha/2, 0.005)
		fixed := 1.96 * math.Sqrt(2*0.01*0.99/float64(n))
		// As the block-rate check splits it: new and lost blocks at
		// alpha/8 each over 2n pairs, response-phase blocks at alpha/4.
		_, newHi := rollout.RateBounds(0, 2*n, alpha/8, pairedMx)
		r := n / 2000
		_, respHi := rollout.DiffBounds(r, n, r, n, alpha/4, armMx)
		fmt.Fprintf(w, "| %d | %.2f | %.2f | %.2f | %.2f |\n", n, 100*(newHi+respHi), 100*hi, 100*(bHi-bLo), 100*fixed)
	}
	fmt.Fprintf(w, "\nShadow pairs with no disagreement: pairs until the rate is shown at most 0.1%%:\n\n")
	for _, m := range []struct {
		name string
		mx   rollout.Mixture
	}{{"now", pairedMx}, {"arm tuning", halfMx}} {
		fmt.Fprintf(w, "- %s: %d pairs\n", m.name, cleanPairs(0.001, alpha, m.mx))
	}
	// A small site's bar: rollout.policy.max_new_block_rate raised to 1%.
	fmt.Fprintf(w, "- now, at most 1%% (max_new_block_rate 0.01): %d pairs\n", cleanPairs(0.01, alpha, pairedMx))
	n := int64(100)
	for ; n < 1e6; n += 50 {
		if _, hi := beforeRateBounds(0, n, alpha, 0.001); hi <= 0.001 {
			break
		}
	}
	fmt.Fprintf(w, "- before (prior Beta(1, 999) at the limit): %d pairs\n", n)
}

// cleanPairs is how many pairs without a disagreement show the rate at
// most limit, to the nearest 10.
func cleanPairs(limit, alpha float64, mx rollout.Mixture) int64 {
	n := int64(10)
	for ; n < 1e6; n += 10 {
		if _, hi := rollout.RateBounds(0, n, alpha, mx); hi <= limit {
			break
		}
	}
	return n
}

// dkw is the time-uniform DKW slack the latency checks used before.
func dkw(n int64, alpha float64) float64 {
	fn := float64(n)
	return math.Min(1, 0.85*math.Sqrt((math.Log(math.Log(math.E*fn))+0.8*math.Log(1612/alpha))/fn))
}

// beforeRateBounds is the rate sequence used before: Robbins' mixture
// with the fixed prior Beta(1, (1-p0)/p0) centred on p0 (a policy limit).
func beforeRateBounds(x, n int64, alpha, p0 float64) (lo, hi float64) {
	a, b := 1.0, (1-p0)/p0
	fx, fn := float64(x), float64(n)
	logMix := lbeta(a+fx, b+fn-fx) - lbeta(a, b)
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
	threshold := math.Log(1 / alpha)
	search := func(in, out float64) float64 {
		for range 100 {
			mid := (in + out) / 2
			if logM(mid) < threshold {
				in = mid
			} else {
				out = mid
			}
		}
		return out
	}
	phat := fx / fn
	lo, hi = 0, 1
	if x > 0 {
		lo = search(phat, 0)
	}
	if n > x {
		hi = search(phat, 1)
	}
	return lo, hi
}

func lbeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}
