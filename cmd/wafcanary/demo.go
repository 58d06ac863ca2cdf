package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/node"
	"github.com/wafcanary/wafcanary/rollout"
)

type demoOptions struct {
	crsSuite              bool
	listen, adminListen   string
	baseline, candidate   string
	overBlocking          bool
	shadowPercent         float64
	rate                  float64
	stepDuration          time.Duration
	duration, reportEvery time.Duration
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a self-contained demo: app, proxy, baseline and candidate, synthetic traffic",
		Long: `Start a small demo application as the upstream, wafcanary in front of it with
the shipped baseline (embedded in the binary), and a generator of benign,
attack and false-positive traffic; then roll out a candidate through
shadow, 10%, 50% and 100%. The shipped exclusion candidate is promoted in
about a minute; --over-blocking rolls out the paranoia-level-2 candidate,
which the controller rolls back. It prints what is happening and where to
look until Ctrl-C or --duration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if o.duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.duration)
				defer cancel()
			}
			return runDemo(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8080", "proxy listen address (port 0 picks a free one)")
	f.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:9090", "admin (metrics) listen address")
	f.StringVar(&o.baseline, "baseline", "embedded:baseline.conf", "baseline ruleset file or embedded:NAME")
	f.StringVar(&o.candidate, "candidate", "embedded:candidate-exclusion.conf", "candidate ruleset file or embedded:NAME")
	f.BoolVar(&o.crsSuite, "crs-suite", true, "run the CRS regression suite gate before the rollout starts (about 30 s)")
	f.BoolVar(&o.overBlocking, "over-blocking", false, "roll out embedded:candidate-pl2.conf instead, which blocks legitimate requests and is rolled back")
	f.Float64Var(&o.shadowPercent, "shadow-percent", 100, "share of requests also judged in shadow")
	f.DurationVar(&o.stepDuration, "step-duration", 10*time.Second, "minimum time at each rollout step")
	f.Float64Var(&o.rate, "rate", 20, "synthetic requests per second")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.DurationVar(&o.reportEvery, "report-every", 5*time.Second, "how often to print a summary")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	dir, err := os.MkdirTemp("", "wafcanary-demo-")
	if err != nil {
		return err
	}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo app: %w", err)
	}
	app := &http.Server{Handler: demo.NewApp(), ReadHeaderTimeout: 5 * time.Second}
	go app.Serve(appLn)
	defer app.Close()

	cfg := node.Default()
	cfg.Listen, cfg.Admin.Listen = o.listen, o.adminListen
	cfg.Upstream = "http://" + appLn.Addr().String()
	cfg.StateDir = dir
	cfg.Rulesets = node.RulesetsConfig{Baseline: o.baseline}
	cfg.Shadow.SamplePercent = o.shadowPercent
	cfg.Gates.CRSSuite = o.crsSuite
	cfg.Rollout = demoRollout(o.stepDuration)
	// No scope is given: start reads it from the candidate (the
	// exclusion's path and rule; nothing for the paranoia raise).
	if o.overBlocking {
		o.candidate = "embedded:candidate-pl2.conf"
	}
	// Demo clients carry a stable X-Client-ID; keying on it spreads them
	// over both arms although they all come from 127.0.0.1.
	cfg.Routing.StickyKey = "header:X-Client-ID"
	if err := cfg.Validate(); err != nil {
		return errUsage{err}
	}
	logPath := filepath.Join(dir, "wafcanary.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewJSONHandler(logFile, nil))

	s, err := node.New(cfg, log, buildVersion())
	if err != nil {
		return err
	}
	proxyLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return errUsage{fmt.Errorf("proxy: %w (choose another address with --listen, e.g. --listen 127.0.0.1:0)", err)}
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		proxyLn.Close()
		return errUsage{fmt.Errorf("admin: %w (choose another address with --admin-listen, e.g. --admin-listen 127.0.0.1:0)", err)}
	}
	proxyURL := "http://" + proxyLn.Addr().String()
	// The CLI finds the demo with -c: its addresses, and its state_dir
	// (this directory, where admin.token is).
	cfgPath := filepath.Join(dir, "wafcanary.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("# Written by `wafcanary demo`, for the CLI's -c: the demo's addresses; state_dir is\n# this directory, where admin.token is.\nlisten: %s\nupstream: %s\nstate_dir: .\nadmin:\n  listen: %s\n",
		proxyLn.Addr(), cfg.Upstream, adminLn.Addr())), 0o600); err != nil {
		proxyLn.Close()
		adminLn.Close()
		return err
	}
	req := admin.StartRequest{Candidate: o.candidate, Reason: "demo rollout", Actor: "demo"}
	if name, ok := strings.CutPrefix(o.candidate, "embedded:"); ok {
		req.Cases = "embedded:" + strings.TrimSuffix(name, ".conf") + ".cases.yaml"
	}
	if cfg.Gates.CRSSuite {
		fmt.Fprintf(out, "Checking %s before it serves: guard, its cases, and CRS's regression suite through both rulesets (about 30 s)...\n", o.candidate)
	}
	began := time.Now()
	if _, err := s.Start(ctx, req); err != nil {
		proxyLn.Close()
		adminLn.Close()
		return errInvalidRuleset{fmt.Errorf("candidate %s refused: %w", o.candidate, err)}
	}
	if cfg.Gates.CRSSuite {
		fmt.Fprintf(out, "Gates passed in %.0f s.\n\n", time.Since(began).Seconds())
	}
	served := s.Status()

	fmt.Fprintf(out, `wafcanary demo
  demo app (upstream)  %s
  proxy                %s
  metrics              http://%s/metrics
  status page          http://%s/
  logs (JSON lines)    %s
  baseline             %s  version %s
  candidate            %s  version %s
  rollout              %s, at least %s and 150 requests per step, analysed every %s

Synthetic traffic, %.0f requests/s from 200 clients: benign browsing, searches,
JSON orders and forms; a few attacks (SQL injection, XSS, path traversal);
and legitimate requests the baseline blocks by mistake (false positives).

Try, in another terminal:
  curl -i '%s/search?q=1%%27%%20OR%%20%%271%%27%%3D%%271%%27--'    SQL injection: 403 from either ruleset
  grep '"shadow disagreement"' %s         where the rulesets differ, with rule IDs
  grep '"request blocked"' %s | tail -1   which rule blocked a request (grep its request_id)
  go run ./cmd/wafcanary status --watch -c %s
  go run ./cmd/wafcanary status --wait -c %s     exit 0 when promoted, 8 when rolled back
  go run ./cmd/wafcanary rollback -c %s

`, cfg.Upstream, proxyURL, adminLn.Addr(), adminLn.Addr(), logPath,
		served.Baseline.Path, served.Baseline.Version, served.Candidate.Path, served.Candidate.Version,
		stepsText(cfg.Rollout.Steps), o.stepDuration, cfg.Rollout.Interval, o.rate,
		proxyURL, logPath, logPath, cfgPath, cfgPath, cfgPath)

	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- s.Run(serveCtx, proxyLn, adminLn) }()

	var fp fpCount
	traffic := &demo.Traffic{
		Target:         proxyURL,
		Rate:           o.rate,
		FalsePositives: demo.FalsePositiveRequests(),
		OnResult:       fp.observe,
	}
	trafficDone := make(chan error, 1)
	go func() { trafficDone <- traffic.Run(ctx) }()

	start := time.Now()
	tick := time.NewTicker(o.reportEvery)
	defer tick.Stop()
	decisions := time.NewTicker(250 * time.Millisecond)
	defer decisions.Stop()
	var last *rollout.Decision
loop:
	for {
		select {
		case <-tick.C:
			fmt.Fprintln(out, summary(s.Metrics(), &fp, time.Since(start)))
		case <-decisions.C:
			// Every decision but "hold" changes something: say what and why.
			st := s.Status()
			if d := st.LastDecision; d != nil && (last == nil || d.Time != last.Time || d.Action != last.Action) {
				last = d
				if d.Action != rollout.ActionHold {
					fmt.Fprintf(out, "[%4.0fs] rollout %s -> %s, candidate on %g%% of clients: %s\n",
						time.Since(start).Seconds(), d.Action, st.State, st.CandidatePercent, d.Reason)
				}
			}
		case <-ctx.Done():
			break loop
		}
	}
	terr := <-trafficDone
	fmt.Fprintln(out, summary(s.Metrics(), &fp, time.Since(start)))
	fmt.Fprintf(out, "\nstopped; logs kept in %s\n", logPath)
	stopServe()
	return errors.Join(terr, <-done)
}

// demoRollout is a rollout short enough to watch: shadow, 10%, 50%,
// 100%, each for stepDuration and 150 requests, with limits sized for a
// few hundred requests per step rather than production traffic.
func demoRollout(stepDuration time.Duration) rollout.Config {
	c := rollout.DefaultConfig
	c.Steps = []rollout.Step{
		{Percent: 0, MinDuration: stepDuration, MinRequests: 150},
		{Percent: 10, MinDuration: stepDuration, MinRequests: 150},
		{Percent: 50, MinDuration: stepDuration, MinRequests: 150},
		{Percent: 100, MinDuration: stepDuration, MinRequests: 150},
	}
	c.Interval = 2 * time.Second
	c.MaxDuration = 10 * time.Minute
	c.Policy.MaxNewBlockRate, c.Policy.MaxLostBlockRate = 0.02, 0.02
	c.Policy.SplitChecksFromPercent = 100
	return c
}

func stepsText(steps []rollout.Step) string {
	parts := make([]string, len(steps))
	for i, st := range steps {
		parts[i] = fmt.Sprintf("%g%%", st.Percent)
		if st.Percent == 0 {
			parts[i] = "shadow"
		}
	}
	return strings.Join(parts, " -> ")
}

// fpCount tallies what clients saw of the false-positive requests.
type fpCount struct{ sent, blocked atomic.Int64 }

func (f *fpCount) observe(r demo.Result) {
	if r.Kind != demo.KindFalsePositive || r.Err != nil {
		return
	}
	f.sent.Add(1)
	if r.Status == http.StatusForbidden {
		f.blocked.Add(1)
	}
}

// summary reads the counters back from the registry: the demo shows the
// same numbers an operator would scrape.
func summary(g prometheus.Gatherer, fp *fpCount, elapsed time.Duration) string {
	c := counters(g)
	arm := func(a string) string {
		total := c["wafcanary_requests_total{action=allowed,arm="+a+"}"] + c["wafcanary_requests_total{action=blocked,arm="+a+"}"] + c["wafcanary_requests_total{action=error,arm="+a+"}"]
		return fmt.Sprintf("%s %.0f req, %.0f blocked", a, total, c["wafcanary_requests_total{action=blocked,arm="+a+"}"])
	}
	pair := func(b, k string) float64 { return c["wafcanary_shadow_verdicts_total{baseline="+b+",candidate="+k+"}"] }
	agree := pair("allowed", "allowed") + pair("blocked", "blocked")
	return fmt.Sprintf("[%4.0fs] %s | %s | shadow: %.0f agree, %.0f new blocks, %.0f lost blocks, %.0f dropped | false positives blocked for users: %d of %d",
		elapsed.Seconds(), arm("baseline"), arm("candidate"), agree,
		pair("allowed", "blocked"), pair("blocked", "allowed"), c["wafcanary_shadow_dropped_total"],
		fp.blocked.Load(), fp.sent.Load())
}

// counters flattens counter families to "name{k=v,...}" keys.
func counters(g prometheus.Gatherer) map[string]float64 {
	out := map[string]float64{}
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}
