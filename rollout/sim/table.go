package sim

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wafcanary/wafcanary/rollout"
)

// Row is a scenario's outcomes at one traffic level.
type Row struct {
	Scenario Scenario
	Rate     float64
	Outcomes []Outcome
	// Minimum is how long the steps' own minimums take at this rate.
	Minimum time.Duration
}

// Count returns how many runs ended with r.
func (row Row) Count(r Result) int {
	n := 0
	for _, o := range row.Outcomes {
		if o.Result == r {
			n++
		}
	}
	return n
}

// Wrong counts the runs that ended the wrong way: a good candidate rolled
// back by evidence, a bad one promoted.
func (row Row) Wrong() int {
	if row.Scenario.Good {
		return row.Count(RolledBack)
	}
	return row.Count(Promoted)
}

// MedianElapsed is the median time of the runs that ended with r.
func (row Row) MedianElapsed(r Result) time.Duration {
	var ds []time.Duration
	for _, o := range row.Outcomes {
		if o.Result == r {
			ds = append(ds, o.Elapsed)
		}
	}
	return median(ds)
}

// MedianRequests is the median number of requests until an outcome r.
func (row Row) MedianRequests(r Result) int64 {
	var ns []int64
	for _, o := range row.Outcomes {
		if o.Result == r {
			ns = append(ns, o.Requests)
		}
	}
	if len(ns) == 0 {
		return 0
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	return ns[len(ns)/2]
}

// FailedChecks counts the checks behind the rollbacks.
func (row Row) FailedChecks() map[string]int {
	out := map[string]int{}
	for _, o := range row.Outcomes {
		for _, c := range o.Checks {
			out[c]++
		}
	}
	return out
}

// Options say what a table simulates.
type Options struct {
	Config    rollout.Config
	Rates     []float64
	Runs      int
	Seed      uint64
	Scenarios []Scenario
	Traffic   Traffic
	// Workers run rollouts in parallel; 0 means one per CPU.
	Workers int
}

// Table simulates every scenario at every rate, Runs times each, and
// returns the rows in scenario order, rates ascending. Runs are seeded
// from Seed, the scenario and the run, so a table is reproducible.
func Table(ctx context.Context, o Options) ([]Row, error) {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type job struct{ row, run int }
	var rows []Row
	for _, s := range o.Scenarios {
		for _, rate := range o.Rates {
			s := s
			s.Traffic = o.Traffic
			s.Traffic.Rate = rate
			if s.Tweak != nil {
				s.Tweak(&s.Traffic)
			}
			rows = append(rows, Row{Scenario: s, Rate: rate, Outcomes: make([]Outcome, o.Runs), Minimum: MinimumTime(o.Config, rate)})
		}
	}
	jobs := make(chan job)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				seed := o.Seed*1_000_003 + uint64(j.row)*10_007 + uint64(j.run)
				out, err := Run(ctx, rows[j.row].Scenario, o.Config, seed)
				if err != nil {
					errs <- err
					return
				}
				rows[j.row].Outcomes[j.run] = out
			}
		}()
	}
	// Longest rows first (the highest rates), so the pool ends together.
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rows[order[a]].Rate > rows[order[b]].Rate })
	var err error
feed:
	for _, i := range order {
		for run := range o.Runs {
			select {
			case jobs <- job{i, run}:
			case err = <-errs:
				break feed
			case <-ctx.Done():
				err = ctx.Err()
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return rows, err
}

// Print writes the rows as a Markdown table.
func Print(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| candidate | req/s | runs | promoted | rolled back | inconclusive | wrong | median to promotion (x steps' minimum) | median to rollback (requests) | checks that failed |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---|---|")
	for _, r := range rows {
		n := len(r.Outcomes)
		pct := func(k int) string { return fmt.Sprintf("%d (%.0f%%)", k, 100*float64(k)/float64(n)) }
		promo := "-"
		if r.Count(Promoted) > 0 {
			m := r.MedianElapsed(Promoted)
			promo = fmt.Sprintf("%s (%.2fx of %s)", m.Round(time.Second), m.Seconds()/r.Minimum.Seconds(), r.Minimum.Round(time.Second))
		}
		back := "-"
		if r.Count(RolledBack) > 0 {
			back = fmt.Sprintf("%s (%d)", r.MedianElapsed(RolledBack).Round(time.Second), r.MedianRequests(RolledBack))
		}
		var checks []string
		for c, k := range r.FailedChecks() {
			checks = append(checks, fmt.Sprintf("%s %d", c, k))
		}
		sort.Strings(checks)
		fmt.Fprintf(w, "| %s | %g | %d | %s | %s | %s | %d | %s | %s | %s |\n", r.Scenario.Name, r.Rate, n,
			pct(r.Count(Promoted)), pct(r.Count(RolledBack)), pct(r.Count(Inconclusive)), r.Wrong(), promo, back, strings.Join(checks, ", "))
	}
}
