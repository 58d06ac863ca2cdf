package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/fleet/fleettest"
)

// loadEnv runs TestLoadWithReloadsStartsRollbacksAndAKill; .ci/run sets it
// in a step of its own, since the test takes a minute and wants the CPU.
const loadEnv = "TEST_LOAD_THROUGH_THE_BINARY"

// TestLoadWithReloadsStartsRollbacksAndAKill drives the real binary with
// wrk for 60 s while an operator SIGHUPs it, starts rollouts, rolls them
// back, and once kills it with SIGKILL and starts it again. A prober
// beside wrk timestamps every request: none may fail while the process is
// up, and every action the API acknowledged must be in the journal at the
// end. It prints what it measured.
func TestLoadWithReloadsStartsRollbacksAndAKill(t *testing.T) {
	if os.Getenv(loadEnv) == "" {
		t.Skipf("set %s=1 to run (needs wrk; .ci/run runs it alone)", loadEnv)
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk is not installed (apt-get install wrk)")
	}
	const duration = 60 * time.Second
	ctx := context.Background()
	dir := t.TempDir()
	bin := wafcanaryBinary(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<p>product %s</p>", r.URL.Query().Get("id"))
	}))
	t.Cleanup(up.Close)
	proxyAddr, adminAddr := freePort(t), freePort(t)
	token := "load-test-admin-token-0123456789"
	cfg := filepath.Join(dir, "wafcanary.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: %s
upstream: %s
state_dir: %s
admin: {listen: %s, token: %s}
routing: {sticky_key: "header:X-Client-ID"}
gates: {crs_suite: false}
log: {level: warn}
rollout:
  interval: 1s
  max_duration: 2h
  steps:
    - {percent: 0, min_duration: 2s, min_requests: 200}
    - {percent: 50, min_duration: 2s, min_requests: 200}
    # The last step never ends within the minute: a rollout that promoted
    # itself would leave the operator's rollbacks nothing to roll back.
    - {percent: 100, min_duration: 1h, min_requests: 200}
`, proxyAddr, up.URL, filepath.Join(dir, "state"), adminAddr, token)), 0o600)

	var (
		mu      sync.Mutex
		proc    *exec.Cmd
		exited  chan struct{}
		stderr  = &syncBuffer{}
		downs   [][2]time.Time // from the kill to ready again
		serving = func() {
			cmd := exec.Command(bin, "serve", "-c", cfg)
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			fleettest.WaitFor(t, 60*time.Second, "wafcanary ready", func() bool {
				resp, err := http.Get("http://" + adminAddr + "/healthz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
			mu.Lock()
			proc, exited = cmd, done
			mu.Unlock()
		}
	)
	serving()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		proc.Process.Kill()
		<-exited
	})

	// The prober: 50 requests/s, each timestamped.
	type probe struct {
		start, end time.Time
		err        string
	}
	var (
		probes []probe
		pmu    sync.Mutex
		stop   = make(chan struct{})
		pwg    sync.WaitGroup
	)
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/products?id=%d", proxyAddr, i%50), nil)
			req.Header.Set("X-Client-ID", fmt.Sprint("probe-", i%300))
			req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
			req.Header.Set("Accept", "text/html")
			p := probe{start: time.Now()}
			resp, err := client.Do(req)
			switch {
			case err != nil:
				p.err = err.Error()
			case resp.StatusCode != http.StatusOK:
				p.err = resp.Status
			}
			if resp != nil {
				resp.Body.Close()
			}
			p.end = time.Now()
			pmu.Lock()
			probes = append(probes, p)
			pmu.Unlock()
		}
	}()

	script := filepath.Join(dir, "load.lua")
	os.WriteFile(script, []byte(`
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/products?id=" .. (n % 50), {
    ["X-Client-ID"] = "wrk-" .. (n % 500),
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ["Accept"] = "text/html",
  })
end
`), 0o644)
	// Three wrk runs that overlap, so the load never stops: the first and
	// the last see only reloads, starts and rollbacks and must see no
	// error at all; the middle one spans the kill.
	type wrkRun struct {
		name     string
		from, to time.Duration
		out      chan string
	}
	runs := []*wrkRun{{name: "before the kill", from: 0, to: 29 * time.Second}, {name: "across the kill", from: 28 * time.Second, to: 35 * time.Second}, {name: "after the kill", from: 34 * time.Second, to: duration}}
	begin := time.Now()
	for _, r := range runs {
		r.out = make(chan string, 1)
		go func() {
			time.Sleep(time.Until(begin.Add(r.from)))
			out, err := exec.Command(wrk, "-t1", "-c8", fmt.Sprintf("-d%ds", int((r.to-r.from).Seconds())), "--timeout", "5s", "--latency", "-s", script, "http://"+proxyAddr+"/").CombinedOutput()
			if err != nil {
				out = append(out, []byte("\nwrk: "+err.Error())...)
			}
			r.out <- string(out)
		}()
	}

	// The operator, on a schedule across the minute.
	api := &admin.Client{URL: "http://" + adminAddr, Token: token, Timeout: time.Minute}
	type act struct{ what, reason, result string }
	var acts []act
	at := func(d time.Duration) { time.Sleep(time.Until(begin.Add(d))) }
	do := func(what string) {
		a := act{what: what, reason: fmt.Sprintf("[load %s at %s]", what, time.Since(begin).Round(time.Second))}
		var err error
		switch what {
		case "start":
			_, err = api.Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Actor: "load", Reason: a.reason})
		case "rollback":
			_, err = api.Do(ctx, admin.Rollback, admin.ActionRequest{Actor: "load", Reason: a.reason})
		case "sighup":
			mu.Lock()
			err = proc.Process.Signal(syscall.SIGHUP)
			mu.Unlock()
		case "kill -9":
			mu.Lock()
			killed := time.Now()
			proc.Process.Kill()
			<-exited
			mu.Unlock()
			serving()
			downs = append(downs, [2]time.Time{killed, time.Now()})
		}
		a.result = "ok"
		if err != nil {
			a.result = err.Error()
		}
		acts = append(acts, a)
	}
	for _, s := range []struct {
		at   time.Duration
		what string
	}{
		{2 * time.Second, "start"}, {6 * time.Second, "sighup"}, {10 * time.Second, "sighup"}, {14 * time.Second, "rollback"},
		{17 * time.Second, "sighup"}, {20 * time.Second, "start"}, {26 * time.Second, "sighup"}, {30 * time.Second, "kill -9"},
		{36 * time.Second, "sighup"}, {40 * time.Second, "rollback"}, {43 * time.Second, "start"}, {49 * time.Second, "sighup"},
		{53 * time.Second, "rollback"}, {56 * time.Second, "sighup"},
	} {
		at(s.at)
		do(s.what)
	}
	outs := make([]string, len(runs))
	for i, r := range runs {
		outs[i] = <-r.out
	}
	close(stop)
	pwg.Wait()

	// Probes that failed while the process was up.
	down := func(p probe) bool {
		for _, d := range downs {
			if p.end.After(d[0]) && p.start.Before(d[1]) {
				return true
			}
		}
		return false
	}
	var upFailed, downFailed []string
	var lat []time.Duration
	for _, p := range probes {
		switch {
		case p.err != "" && down(p):
			downFailed = append(downFailed, p.err)
		case p.err != "":
			upFailed = append(upFailed, fmt.Sprintf("%s: %s", p.start.Sub(begin).Round(time.Millisecond), p.err))
		default:
			lat = append(lat, p.end.Sub(p.start))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })

	h, err := api.History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var lost []string
	acked := 0
	for _, a := range acts {
		if a.result != "ok" || a.what == "sighup" || a.what == "kill -9" {
			continue
		}
		acked++
		found := false
		for _, e := range h {
			found = found || strings.Contains(e.Reason, a.reason)
		}
		if !found {
			lost = append(lost, a.what+" "+a.reason)
		}
	}

	t.Logf("load: wrk -t1 -c8 for %s through the binary (three overlapping runs), a prober at 50/s, 14 operator actions", duration)
	t.Logf("| measure | value |")
	t.Logf("|---|---|")
	for i, r := range runs {
		w := parseWrk(outs[i])
		t.Logf("| wrk %s (%s-%s): requests | %d (%.0f/s) |", r.name, r.from, r.to, w.requests, float64(w.requests)/(r.to-r.from).Seconds())
		t.Logf("| wrk %s: latency p50 / p99 | %s / %s |", r.name, w.p50, w.p99)
		t.Logf("| wrk %s: non-2xx; socket errors connect/read/write/timeout | %d; %s |", r.name, w.non2xx, w.socket)
		if w.requests == 0 {
			t.Errorf("wrk %s made no requests:\n%s", r.name, outs[i])
		}
		if w.non2xx != 0 || r.name != "across the kill" && w.socket != "none" {
			t.Errorf("wrk %s, while the process was up, saw errors:\n%s", r.name, outs[i])
		}
	}
	t.Logf("| probes | %d |", len(probes))
	t.Logf("| probes failed while up | %d |", len(upFailed))
	t.Logf("| probes failed while down | %d |", len(downFailed))
	for _, d := range downs {
		t.Logf("| down after kill -9 (kill to ready) | %s |", d[1].Sub(d[0]).Round(time.Millisecond))
	}
	if len(lat) > 0 {
		t.Logf("| probe latency p50 / p99 | %s / %s |", lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond))
	}
	t.Logf("| actions acknowledged / in the journal | %d / %d |", acked, acked-len(lost))
	for _, a := range acts {
		t.Logf("action %-9s %s", a.what, a.result)
	}
	if len(upFailed) > 0 {
		t.Errorf("%d probes failed while the process was up: %v", len(upFailed), upFailed[:min(len(upFailed), 10)])
	}
	if len(lost) > 0 {
		t.Errorf("acknowledged actions missing from the journal: %v", lost)
	}
	for _, a := range acts {
		if a.result != "ok" {
			t.Errorf("%s %s: %s", a.what, a.reason, a.result)
		}
	}
	if t.Failed() {
		t.Logf("wafcanary's stderr:\n%s", stderr)
	}
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	srv := httptest.NewServer(nil)
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	return addr
}

type wrkResult struct {
	requests, non2xx, timeouts int
	p50, p99, socket           string
}

// parseWrk reads wrk's summary.
func parseWrk(out string) wrkResult {
	var w wrkResult
	if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(out); m != nil {
		w.requests, _ = strconv.Atoi(m[1])
	}
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindStringSubmatch(out); m != nil {
		w.non2xx, _ = strconv.Atoi(m[1])
	}
	w.socket = "none"
	if m := regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`).FindStringSubmatch(out); m != nil {
		w.socket = strings.Join(m[1:], "/")
		w.timeouts, _ = strconv.Atoi(m[4])
	}
	if m := regexp.MustCompile(`\s50%\s+(\S+)`).FindStringSubmatch(out); m != nil {
		w.p50 = m[1]
	}
	if m := regexp.MustCompile(`\s99%\s+(\S+)`).FindStringSubmatch(out); m != nil {
		w.p99 = m[1]
	}
	return w
}
