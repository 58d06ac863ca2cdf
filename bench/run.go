package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/spoa/haproxytest"
)

//go:embed mix.lua
var mixLua []byte

// target is one system under test: a process (nginx: a master and its
// workers) listening on url in front of the shared upstream.
type target struct {
	name, desc string
	url        string
	metricsURL string // wafcanary's admin /metrics, for the shadow counts
	cmd        *exec.Cmd
	nginx      bool
	// agent is a process the target needs, started before it and counted
	// with it (haproxy-wafcanary: the SPOE agent); agentReady its URL
	// that answers once it serves.
	agent      *exec.Cmd
	agentReady string
	// variantOf names the target a -variant changes one lever of.
	variantOf string

	idleRSSKB int64
	peakKB    int64
	heavy     []wrkResult // throughput runs, one per round
	light     []wrkResult // moderate-load runs, one per round
	cpu       time.Duration
	shadow    shadowCounts
}

func (t *target) pids() []int {
	if t.cmd == nil || t.cmd.Process == nil {
		return nil
	}
	pid := t.cmd.Process.Pid
	pids := []int{pid}
	if t.nginx {
		pids = append(pids, children(pid)...)
	}
	if t.agent != nil && t.agent.Process != nil {
		pids = append(pids, t.agent.Process.Pid)
	}
	return pids
}

type runOptions struct {
	bin, workdir                      string
	rounds                            int
	duration, moderate, warmup, think time.Duration
	threads, connections              int
	only                              string
	keep                              bool
	nginxWorkers                      int
	variants                          variants
}

func runCmd(ctx context.Context, args []string) error {
	var o runOptions
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&o.bin, "bin", "", "directory holding the wafcanary binary (required)")
	fs.StringVar(&o.workdir, "workdir", "", "scratch directory (default: a new temporary directory)")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; every target runs once per round")
	fs.DurationVar(&o.duration, "duration", 7*time.Second, "length of each throughput run (whole seconds)")
	fs.DurationVar(&o.moderate, "moderate", 4*time.Second, "length of each moderate-load run: one connection, paced by -think (whole seconds)")
	fs.DurationVar(&o.think, "think", 20*time.Millisecond, "pause before each request in moderate-load runs; 0: one connection flat out")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up run per target before the rounds (whole seconds)")
	fs.IntVar(&o.threads, "threads", 1, "wrk threads for throughput runs")
	fs.IntVar(&o.connections, "connections", 8, "wrk connections for throughput runs")
	fs.StringVar(&o.only, "only", "", "comma-separated target names to run (default: all)")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch directory (logs, generated configuration)")
	fs.IntVar(&o.nginxWorkers, "nginx-workers", runtime.NumCPU(), "nginx worker processes")
	fs.Var(&o.variants, "variant", "NAME=bin:PATH|env:KEY=VALUE[,...]: the wafcanary target again with another binary or environment, in the same rounds (repeatable)")
	fs.Parse(args)
	if o.bin == "" {
		return errors.New("-bin is required")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found: run `make bench`, which installs it, or apt-get install wrk")
	}
	if o.workdir == "" {
		d, err := os.MkdirTemp("", "wafbench-")
		if err != nil {
			return err
		}
		o.workdir = d
		if o.keep {
			fmt.Fprintf(os.Stderr, "scratch directory (kept): %s\n", d)
		} else {
			defer os.RemoveAll(d)
		}
	}
	// nginx workers drop to nobody and must reach their temp directories.
	if err := os.Chmod(o.workdir, 0o755); err != nil {
		return err
	}
	script := filepath.Join(o.workdir, "mix.lua")
	if err := os.WriteFile(script, mixScript(), 0o644); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	var started []*target
	defer func() {
		for _, t := range started {
			stopProcess(t.cmd)
		}
	}()
	up := &target{name: "upstream"}
	upAddr := freeAddr()
	up.cmd = exec.Command(self, "upstream", "-listen", upAddr)
	if err := startProcess(up.cmd, o.workdir, "upstream"); err != nil {
		return err
	}
	started = append(started, up)
	upstream := "http://" + upAddr
	if err := waitReady(ctx, upstream+"/", up.cmd, o.workdir, "upstream"); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}

	targets, err := allTargets(self, filepath.Join(o.bin, "wafcanary"), upstream, o)
	if err != nil {
		return err
	}
	if o.only != "" {
		names := strings.Split(o.only, ",")
		for _, v := range o.variants { // asked for by name already
			names = append(names, "wafcanary-"+v.name)
		}
		if targets, err = selectTargets(targets, names); err != nil {
			return err
		}
	}
	for _, t := range targets {
		if t.nginx {
			if err := nginxReady(t.cmd); err != nil {
				return err
			}
		}
	}
	for _, t := range targets {
		if t.agent == nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "starting %s's agent\n", t.name)
		if err := startProcess(t.agent, o.workdir, t.name+"-agent"); err != nil {
			return fmt.Errorf("%s's agent: %w", t.name, err)
		}
		started = append(started, &target{cmd: t.agent})
		if err := waitReady(ctx, t.agentReady, t.agent, o.workdir, t.name+"-agent"); err != nil {
			return fmt.Errorf("%s's agent: %w", t.name, err)
		}
	}
	for _, t := range targets {
		fmt.Fprintf(os.Stderr, "starting %s (%s)\n", t.name, t.url)
		if err := startProcess(t.cmd, o.workdir, t.name); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		started = append(started, t)
		if err := waitReady(ctx, t.url+"/", t.cmd, o.workdir, t.name); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	// Idle RSS: every ruleset compiled, no request served yet.
	time.Sleep(time.Second)
	for _, t := range targets {
		// A target that exited after answering once (or whose answer came
		// from another process) would measure something else.
		if exited(t.cmd.Process.Pid) {
			return fmt.Errorf("%s exited after it started; its log ends:\n%s", t.name, logTail(o.workdir, t.name))
		}
		t.idleRSSKB = sumMemKB(t.pids(), "VmRSS")
	}

	heavy := load{threads: o.threads, connections: o.connections, duration: o.duration}
	light := load{threads: 1, connections: 1, duration: o.moderate, think: o.think}
	for _, t := range targets {
		fmt.Fprintf(os.Stderr, "warming up %s\n", t.name)
		if _, err := runWrk(ctx, script, t.url, load{threads: o.threads, connections: o.connections, duration: o.warmup}); err != nil {
			return err
		}
	}
	for round := range o.rounds {
		// Rotate the order so that no target always runs first or last.
		order := append(append([]*target(nil), targets[round%len(targets):]...), targets[:round%len(targets)]...)
		for _, t := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			settle(t)
			cpu0 := sumCPU(t.pids())
			r, err := runWrk(ctx, script, t.url, heavy)
			if err != nil {
				return err
			}
			settle(t) // shadow samples still queued are part of the cost
			t.cpu += sumCPU(t.pids()) - cpu0
			t.heavy = append(t.heavy, r)
			fmt.Fprintf(os.Stderr, "round %d/%d  %-18s %8.0f req/s  p50 %6.2f ms  p99 %7.2f ms\n",
				round+1, o.rounds, t.name, r.rps(), ms(r.P50US), ms(r.P99US))
		}
		for _, t := range order {
			settle(t)
			r, err := runWrk(ctx, script, t.url, light)
			if err != nil {
				return err
			}
			t.light = append(t.light, r)
			fmt.Fprintf(os.Stderr, "round %d/%d  %-18s moderate load: p50 %6.2f ms\n",
				round+1, o.rounds, t.name, ms(r.P50US))
		}
	}
	for _, t := range targets {
		t.peakKB = sumMemKB(t.pids(), "VmHWM")
		if t.metricsURL != "" {
			var err error
			if t.shadow, err = scrapeShadow(ctx, t.metricsURL); err != nil {
				fmt.Fprintf(os.Stderr, "%s: shadow counts unknown: %v\n", t.name, err)
			}
		}
	}
	report(os.Stdout, targets, o)
	return nil
}

func allTargets(self, wafcanary, upstream string, o runOptions) ([]*target, error) {
	var ts []*target
	add := func(t *target) { ts = append(ts, t) }

	plain := freeAddr()
	add(&target{name: "go-proxy", desc: "Go httputil.ReverseProxy, no WAF", url: "http://" + plain,
		cmd: exec.Command(self, "proxy", "-mode", "plain", "-listen", plain, "-upstream", upstream)})

	bare := freeAddr()
	add(&target{name: "coraza", desc: "bare Coraza v3.8.1 http.WrapHandler + CRS 4.25", url: "http://" + bare,
		cmd: exec.Command(self, "proxy", "-mode", "coraza", "-listen", bare, "-upstream", upstream)})

	tuned := freeAddr()
	add(&target{name: "coraza-tuned", desc: "the same bare Coraza proxy with wafcanary's @rx and @pm (packages rx, pm)", url: "http://" + tuned,
		cmd: exec.Command(self, "proxy", "-mode", "coraza-tuned", "-listen", tuned, "-upstream", upstream)})

	for _, w := range []struct {
		name   string
		shadow int
		full   bool
	}{{"wafcanary", 0, false}, {"wafcanary-shadow", 100, false}, {"wafcanary-shadow-full", 100, true}} {
		listen, admin := freeAddr(), freeAddr()
		dir := filepath.Join(o.workdir, w.name)
		conf := filepath.Join(o.workdir, w.name+".yaml")
		if err := os.WriteFile(conf, []byte(wafcanaryConfig(listen, admin, upstream, dir, w.shadow, w.full)), 0o644); err != nil {
			return nil, err
		}
		desc := fmt.Sprintf("wafcanary split 50/50, shadow %d%%", w.shadow)
		if w.full {
			desc += ", every pair evaluated (shadow.full_evaluation)"
		}
		add(&target{name: w.name, desc: desc, url: "http://" + listen,
			metricsURL: "http://" + admin + "/metrics",
			cmd:        exec.Command(wafcanary, "serve", "-c", conf)})
		if w.name != "wafcanary" {
			continue
		}
		for _, v := range o.variants {
			t, err := variantTarget(v, wafcanary, upstream, o)
			if err != nil {
				return nil, err
			}
			add(t)
		}
	}

	// Behind HAProxy: HAProxy alone, and HAProxy with the shipped
	// configuration asking wafcanary's SPOE agent, which runs the same
	// split as the wafcanary target.
	if _, err := exec.LookPath("haproxy"); err == nil {
		ha := freeAddr()
		conf := filepath.Join(o.workdir, "haproxy.cfg")
		if err := os.WriteFile(conf, []byte(haproxyConf(ha, upstream)), 0o644); err != nil {
			return nil, err
		}
		add(&target{name: "haproxy", desc: "HAProxy 2.6, no WAF", url: "http://" + ha, cmd: exec.Command("haproxy", "-db", "-f", conf)})

		fe, agent, admin := freeAddr(), freeAddr(), freeAddr()
		dir := filepath.Join(o.workdir, "haproxy-wafcanary")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		agentConf := filepath.Join(o.workdir, "haproxy-wafcanary-agent.yaml")
		if err := os.WriteFile(agentConf, []byte(wafcanaryConfig(`""`, admin, upstream, filepath.Join(dir, "state"), 0, false)+
			fmt.Sprintf("spoa:\n  listen: %s\n", agent)), 0o644); err != nil {
			return nil, err
		}
		haConf, err := haproxytest.Render(dir, fe, strings.TrimPrefix(upstream, "http://"), agent, time.Second)
		if err != nil {
			return nil, err
		}
		if err := quietHAProxy(haConf); err != nil {
			return nil, err
		}
		add(&target{name: "haproxy-wafcanary", desc: "HAProxy 2.6, deploy/haproxy's configuration (request log off), wafcanary's SPOE agent split 50/50, shadow 0%",
			url: "http://" + fe, metricsURL: "http://" + admin + "/metrics", cmd: exec.Command("haproxy", "-db", "-f", haConf),
			agent: exec.Command(wafcanary, "serve", "-c", agentConf), agentReady: "http://" + admin + "/healthz"})
	} else {
		fmt.Fprintln(os.Stderr, "haproxy not installed: no HAProxy rows (apt-get install haproxy)")
	}

	for _, n := range []struct {
		name, desc string
		crs        crsSet
	}{
		{"nginx-modsec", "nginx 1.22 + ModSecurity v3.0.9 + CRS 4.25 (the files wafcanary embeds)", crs425},
		{"nginx-modsec-crs3", "nginx 1.22 + ModSecurity v3.0.9 + Debian's CRS 3.3.4 (reference)", crs334},
	} {
		ng := freeAddr()
		prefix := filepath.Join(o.workdir, n.name)
		if err := writeNginxPrefix(prefix, ng, upstream, o.nginxWorkers, n.crs); err != nil {
			return nil, fmt.Errorf("%s: %w", n.name, err)
		}
		add(&target{name: n.name, desc: n.desc, url: "http://" + ng, nginx: true,
			cmd: exec.Command("nginx", "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"), "-e", filepath.Join(prefix, "error.log"))})
	}
	return ts, nil
}

// haproxyConf is HAProxy alone in front of the upstream, as the shipped
// configuration has it without the agent.
func haproxyConf(listen, upstream string) string {
	return fmt.Sprintf(`global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend web
    bind %s
    default_backend app
backend app
    server app %s
`, listen, strings.TrimPrefix(upstream, "http://"))
}

// quietHAProxy turns the request log of a rendered configuration off, as
// nginx's access_log is off: the rows compare WAFs, not loggers.
func quietHAProxy(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	q := strings.Replace(string(b), "    log global\n", "", 1)
	if q == string(b) {
		return fmt.Errorf("%s: no \"log global\" to turn off", path)
	}
	return os.WriteFile(path, []byte(q), 0o644)
}

// wafcanaryConfig is the configuration `wafcanary serve` gets: the shipped
// baseline against the shipped exclusion candidate, 50/50, sticky on the
// X-Client-ID header the mix sets (every wrk connection has the same
// address). Everything else keeps its default.
func wafcanaryConfig(listen, admin, upstream, stateDir string, shadowPercent int, full bool) string {
	return fmt.Sprintf(`listen: %s
upstream: %s
state_dir: %s
admin:
  listen: %s
rulesets:
  baseline: embedded:baseline.conf
  candidate: embedded:candidate-exclusion.conf
routing:
  candidate_percent: 50
  sticky_key: header:X-Client-ID
shadow:
  sample_percent: %d
  full_evaluation: %t
`, listen, upstream, stateDir, admin, shadowPercent, full)
}

// selectTargets keeps the named targets, in their usual order.
func selectTargets(ts []*target, names []string) ([]*target, error) {
	var out []*target
	var known []string
	for _, t := range ts {
		known = append(known, t.name)
		for _, n := range names {
			if t.name == strings.TrimSpace(n) {
				out = append(out, t)
				break
			}
		}
	}
	for _, n := range names {
		if !slices.Contains(known, strings.TrimSpace(n)) {
			return nil, fmt.Errorf("-only: no target %q; the targets are %s", strings.TrimSpace(n), strings.Join(known, ", "))
		}
	}
	return out, nil
}

// settle waits until the target's processes stop using CPU (at most 5 s),
// so that work queued by one run (shadow samples) is charged to it and not
// to the next.
func settle(t *target) {
	prev := sumCPU(t.pids())
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		cur := sumCPU(t.pids())
		if cur-prev <= 10*time.Millisecond {
			return
		}
		prev = cur
	}
}

func ms(us int64) float64 { return float64(us) / 1000 }
