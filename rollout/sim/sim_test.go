package sim

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/rollout"
)

// The decision table's short version: every candidate at ordinary
// traffic under the shipped steps and policy. Good candidates are
// promoted and bad ones rolled back in nearly every run, and no run ends
// the wrong way. (`go run ./cmd/wafsim` prints the full table.)
func TestDecisionsAtOrdinaryTraffic(t *testing.T) {
	runs := 8
	if testing.Short() {
		runs = 3
	}
	rows, err := Table(context.Background(), Options{Config: rollout.DefaultConfig, Rates: []float64{10, 100}, Runs: runs, Seed: 42,
		Scenarios: Scenarios(), Traffic: DefaultTraffic})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	Print(&b, rows)
	t.Log("\n" + b.String())
	for _, r := range rows {
		want := RolledBack
		if r.Scenario.Good {
			want = Promoted
		}
		if w := r.Wrong(); w > 0 {
			t.Errorf("%s at %g req/s: %d of %d runs ended the wrong way", r.Scenario.Name, r.Rate, w, runs)
		}
		if got := r.Count(want); got < runs-runs/8 {
			t.Errorf("%s at %g req/s: %s in %d of %d runs", r.Scenario.Name, r.Rate, want, got, runs)
		}
		if r.Scenario.Good && r.Count(Promoted) > 0 {
			if ratio := r.MedianElapsed(Promoted).Seconds() / r.Minimum.Seconds(); ratio > 1.25 {
				t.Errorf("%s at %g req/s: median promotion after %.2fx the steps' own minimum time", r.Scenario.Name, r.Rate, ratio)
			}
		}
	}
}

// At 1 request/s the shipped steps need more traffic than max_duration
// brings: nothing may be promoted, nothing good rolled back; a
// regression that shows in shadow pairs is still caught.
func TestDecisionsAtOneRequestPerSecond(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 6 hours of rollout per run")
	}
	for _, s := range Scenarios() {
		s.Traffic = DefaultTraffic
		s.Traffic.Rate = 1
		if s.Tweak != nil {
			s.Tweak(&s.Traffic)
		}
		o, err := Run(context.Background(), s, rollout.DefaultConfig, 7)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case o.Result == Promoted:
			t.Errorf("%s: promoted at 1 req/s after %s", s.Name, o.Elapsed)
		case s.Good && o.Result == RolledBack:
			t.Errorf("%s: rolled back at 1 req/s (%v)", s.Name, o.Checks)
		case s.Name == "0.5% new blocks" && o.Result != RolledBack:
			t.Errorf("%s: %s at 1 req/s, want rolled back", s.Name, o.Result)
		}
	}
}

func TestMinimumTime(t *testing.T) {
	cfg := rollout.DefaultConfig
	// At 10 req/s every step waits for its requests but the 1% step
	// (10 minutes for 5,000 requests): 500+600+1000+2000+2000+1000 s.
	if got, want := MinimumTime(cfg, 10), 7100*time.Second; got != want {
		t.Errorf("minimum at 10 req/s %s, want %s", got, want)
	}
	if got, want := MinimumTime(cfg, 1000), 65*time.Minute; got != want {
		t.Errorf("minimum at 1000 req/s %s, want %s (the durations)", got, want)
	}
}

// The traffic's truth: the generator gives the shares the scenarios say.
func TestGeneratorShares(t *testing.T) {
	s := Scenario{Effect: Effect{NewBlocks: 0.005, LostBlocks: 0.002, LatencyFactor: 1.3}, Traffic: DefaultTraffic}
	g := newGenerator(s, newRand(3))
	const n = 400000
	var attacks, fps, newBlocks, lost int
	var slower int
	for range n {
		r := g.next()
		switch {
		case r.baseline.Blocked && r.path == scopePath:
			fps++
		case r.baseline.Blocked:
			attacks++
			if !r.candidate.Blocked {
				lost++
			}
		case r.candidate.Blocked:
			newBlocks++
		}
		if r.candTime > r.baseTime {
			slower++
		}
	}
	near := func(got int, share float64) bool {
		want := share * n
		return float64(got) > 0.9*want && float64(got) < 1.1*want
	}
	if !near(attacks, 0.01) || !near(fps, 0.005) || !near(newBlocks, 0.005) || !near(lost, 0.002) || slower != n {
		t.Errorf("attacks %d, false positives %d, new blocks %d, lost %d, slower %d of %d", attacks, fps, newBlocks, lost, slower, n)
	}
}
