package rollout

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/verdict"
)

func verdictWith(blocked bool, ids ...int) verdict.Verdict {
	v := verdict.Verdict{Blocked: blocked}
	for _, id := range ids {
		v.Rules = append(v.Rules, verdict.RuleMatch{ID: id})
	}
	return v
}

func sketchOf(t *testing.T, n int, mean time.Duration, rng *rand.Rand) *ddsketch.DDSketch {
	s, _ := ddsketch.NewDefaultDDSketch(0.01)
	for range n {
		s.Add((mean + time.Duration(rng.NormFloat64()*float64(mean)/10)).Seconds())
	}
	return s
}

func TestEvaluate(t *testing.T) {
	p := DefaultConfig.Policy
	rng := rand.New(rand.NewPCG(3, 4))
	arms := func(nb, bb, nc, bc int64) [2]evidence.ArmEvidence {
		return [2]evidence.ArmEvidence{{Requests: nb, Blocked: bb}, {Requests: nc, Blocked: bc}}
	}
	tests := []struct {
		name    string
		e       evidence.Evidence
		percent float64
		want    CheckStatus
		check   string // the outcome whose reason must mention...
		mention string
	}{
		{name: "no traffic never passes", e: evidence.Evidence{}, percent: 0, want: Inconclusive, check: "new_blocks", mention: "0 of 0"},
		{name: "clean shadow passes", e: evidence.Evidence{Pairs: 20000}, percent: 0, want: Pass, check: "new_blocks", mention: "at most"},
		// Why: one new block among three requests is not evidence.
		{name: "one new block in three requests waits", e: evidence.Evidence{Pairs: 3, NewBlocks: evidence.Disagreements{OutOfScope: 1, Rules: map[int]int64{942520: 1}}}, percent: 0, want: Inconclusive},
		{name: "clear new-block regression fails naming the rule", e: evidence.Evidence{Pairs: 3000, NewBlocks: evidence.Disagreements{OutOfScope: 30, Rules: map[int]int64{942520: 30}}}, percent: 0, want: Fail, check: "new_blocks", mention: "942520 (x30)"},
		{name: "in-scope lost blocks do not count", e: evidence.Evidence{Pairs: 20000, LostBlocks: evidence.Disagreements{InScope: 400}}, percent: 0, want: Pass, check: "lost_blocks", mention: "400 more in scope"},
		{name: "split checks skipped at 0%", e: evidence.Evidence{Pairs: 20000, Arms: arms(20000, 5000, 0, 0)}, percent: 0, want: Pass, check: "block_rate", mention: "not compared"},
		{name: "candidate arm blocking far more fails", e: evidence.Evidence{Pairs: 20000, Arms: arms(10000, 100, 10000, 500)}, percent: 50, want: Fail, check: "block_rate", mention: "candidate 5% (n=10000) vs baseline 1% (n=10000)"},
		// Why: at 5% of clients the split checks may fail but need not pass.
		{name: "low share: split inconclusive does not hold", e: evidence.Evidence{Pairs: 20000, Arms: arms(9500, 95, 500, 5)}, percent: 5, want: Pass},
		{name: "high share: split must pass", e: evidence.Evidence{Pairs: 20000, Arms: arms(9500, 95, 500, 5)}, percent: 50, want: Inconclusive, check: "block_rate", mention: "not yet conclusive"},
		// Why: with shadow pairs showing no request-phase difference and no
		// response-phase blocks, 3,000 requests per arm at a 1.5% block
		// rate settle it; compared directly the arms would need ~16,000.
		{name: "block rate passes through the pairs", e: evidence.Evidence{Pairs: 6000, Arms: arms(3000, 45, 3000, 45)}, percent: 5, want: Pass, check: "block_rate", mention: "<= limit 0.5 points (request phases +0 points over 6000 shadow pairs"},
		// Why: pairs compare request phases only; response-phase blocks
		// show in the arms.
		{name: "response-phase blocks fail the block rate", e: evidence.Evidence{Pairs: 20000, Arms: [2]evidence.ArmEvidence{{Requests: 10000, Blocked: 100}, {Requests: 10000, Blocked: 300, ResponseBlocked: 200}}}, percent: 50, want: Fail, check: "block_rate", mention: "response phases +2 points"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Evaluate(tt.e, p, tt.percent)
			if a.Status != tt.want {
				t.Errorf("verdict %s, want %s: %s", a.Status, tt.want, a.Reason())
			}
			if tt.check == "" {
				return
			}
			for _, o := range a.Outcomes {
				if o.Check == tt.check && !strings.Contains(o.Reason, tt.mention) {
					t.Errorf("%s reason %q lacks %q", o.Check, o.Reason, tt.mention)
				}
			}
		})
	}

	t.Run("latency", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			cand time.Duration
			want CheckStatus
		}{{"same speed passes", 2 * time.Millisecond, Pass}, {"twice as slow fails", 4 * time.Millisecond, Fail}} {
			// Why: 3,000 samples per arm decide p99; the band uniform over
			// all quantiles used before reached the maximum until ~300,000.
			e := evidence.Evidence{Arms: [2]evidence.ArmEvidence{
				{Requests: 3000, WAFTime: sketchOf(t, 3000, 2*time.Millisecond, rng)},
				{Requests: 3000, WAFTime: sketchOf(t, 3000, tt.cand, rng)},
			}}
			for _, o := range Evaluate(e, p, 50).Outcomes {
				if o.Check == "waf_time_p99" && o.Status != tt.want {
					t.Errorf("%s: %s: %s", tt.name, o.Status, o.Reason)
				}
			}
		}
	})
}

// simulate feeds a stream of requests to the collector at 50% share with
// shadow on every request, evaluating every `every` requests, and returns
// the request count at the first Fail (0 if none within n).
func simulate(rng *rand.Rand, n, every int, baseBlock, candBlock, newBlock float64, p Policy) (failedAt int) {
	c := evidence.NewCollector(nil)
	for i := 1; i <= n; i++ {
		arm := verdict.Baseline
		if rng.IntN(2) == 1 {
			arm = verdict.Candidate
		}
		rate := baseBlock
		if arm == verdict.Candidate {
			rate = candBlock
		}
		c.ObserveRequest(verdict.RequestRecord{Arm: arm, Action: map[bool]verdict.Action{true: verdict.Blocked, false: verdict.Allowed}[rng.Float64() < rate]})
		pair := verdict.ShadowRecord{Path: "/", Enforcing: arm}
		if rng.Float64() < newBlock {
			pair.Candidate = verdictWith(true, 942520, 949110)
		}
		c.ObserveShadow(pair)
		if i%every == 0 && Evaluate(c.Snapshot(), p, 50).Status == Fail {
			return i
		}
	}
	return 0
}

func TestSimulationErrorRatesAndDetectionDelay(t *testing.T) {
	p := DefaultConfig.Policy
	runs := 100
	if testing.Short() {
		runs = 25
	}
	// A/A: the candidate blocks exactly like the baseline (2% of requests).
	// Evaluated every 250 requests up to 20,000: any rollback is wrong.
	// (rollout/sim drives the whole controller; this is the policy alone.)
	wrong := 0
	for seed := range runs {
		if simulate(rand.New(rand.NewPCG(uint64(seed), 11)), 20000, 250, 0.02, 0.02, 0, p) > 0 {
			wrong++
		}
	}
	if rate := float64(wrong) / float64(runs); rate > p.Alpha {
		t.Errorf("A/A rolled back in %.1f%% of runs, more than alpha %.0f%%", 100*rate, 100*p.Alpha)
	} else {
		t.Logf("A/A: wrongly rolled back in %d of %d runs (%.1f%%; alpha %.0f%%)", wrong, runs, 100*rate, 100*p.Alpha)
	}

	// A candidate adding 0.5% new blocks (five times the 0.1% limit) must
	// be rolled back; report how many requests it took.
	var delays []int
	for seed := range runs {
		at := simulate(rand.New(rand.NewPCG(uint64(seed), 22)), 50000, 250, 0.02, 0.025, 0.005, p)
		if at == 0 {
			t.Fatalf("seed %d: a 0.5%% new-block candidate was not rolled back within 50,000 requests", seed)
		}
		delays = append(delays, at)
	}
	sort.Ints(delays)
	t.Logf("0.5%% new blocks: rolled back after a median of %d requests (p90 %d, max %d)", delays[len(delays)/2], delays[len(delays)*9/10], delays[len(delays)-1])
	if delays[len(delays)/2] > 10000 {
		t.Errorf("median detection after %d requests: too slow", delays[len(delays)/2])
	}
}

// A latency bound no sample gives yet is infinite; the decision carrying
// it must still be recorded (JSON has no infinity), and read back.
func TestOutcomeWithInfiniteBoundRoundTrips(t *testing.T) {
	d := Decision{Action: "advance", Analysis: &Analysis{Outcomes: []Outcome{{Check: "waf_time_p99", Status: Inconclusive, Window: StepWindow,
		Observed: 0.003, Lower: 0.002, Upper: math.Inf(1), Limit: 0.0046, N: 250}}}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("an analysis with an unbounded quantile cannot be written: %v", err)
	}
	if !strings.Contains(string(b), `"upper":"+Inf"`) || !strings.Contains(string(b), `"window":"step"`) || !strings.Contains(string(b), `"check":"waf_time_p99"`) {
		t.Errorf("JSON %s", b)
	}
	var back Decision
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if o := back.Analysis.Outcomes[0]; !math.IsInf(o.Upper, 1) || o.Lower != 0.002 || o.N != 250 || o.Status != Inconclusive || o.Window != StepWindow {
		t.Errorf("read back %+v", o)
	}
}
