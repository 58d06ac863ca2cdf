// Command wafsim prints the rollout controller's decision table: for each
// kind of candidate and traffic level, how often the shipped steps and
// policy promote it, roll it back or leave it inconclusive, and how long
// that takes (rollout/sim; docs/STATISTICS.md shows a run).
//
//	go run ./cmd/wafsim                     # the table in docs/STATISTICS.md
//	go run ./cmd/wafsim -runs 20 -rates 10  # a quick look
//	go run ./cmd/wafsim -widths             # how wide the bounds are
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/rollout/sim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wafsim:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("wafsim", flag.ContinueOnError)
	runs := fs.Int("runs", 100, "rollouts per candidate and traffic level")
	rates := fs.String("rates", "1,10,100,1000", "traffic levels, requests per second, comma-separated")
	seed := fs.Uint64("seed", 1, "seed of the random streams (the same seed gives the same table)")
	only := fs.String("only", "", "simulate only the candidates whose name contains this")
	workers := fs.Int("workers", 0, "rollouts simulated in parallel (0: one per CPU)")
	widths := fs.Bool("widths", false, "print the confidence sequences' widths at a few sample sizes instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *widths {
		sim.PrintWidths(os.Stdout, rollout.DefaultConfig.Policy.Alpha)
		return nil
	}
	var levels []float64
	for _, f := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			return fmt.Errorf("-rates: %q is not a positive number", f)
		}
		levels = append(levels, r)
	}
	var scenarios []sim.Scenario
	for _, s := range sim.Scenarios() {
		if strings.Contains(s.Name, *only) {
			scenarios = append(scenarios, s)
		}
	}
	if len(scenarios) == 0 {
		return errors.New("-only matches no candidate")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := rollout.DefaultConfig
	start := time.Now()
	rows, err := sim.Table(ctx, sim.Options{Config: cfg, Rates: levels, Runs: *runs, Seed: *seed, Scenarios: scenarios, Traffic: sim.DefaultTraffic, Workers: *workers})
	if err != nil {
		return err
	}
	fmt.Printf("wafsim -runs %d -rates %s -seed %d: the shipped steps and policy (rollout.DefaultConfig), shadow on every request, %s\n\n",
		*runs, *rates, *seed, time.Since(start).Round(time.Second))
	sim.Print(os.Stdout, rows)
	return nil
}
