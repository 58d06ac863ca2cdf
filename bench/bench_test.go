package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		ppid      int
		ticks     int64
		wantError bool
	}{
		{"plain", "4242 (nginx) S 4200 4242 4242 0 -1 4194624 100 0 0 0 150 25 0 0 20 0 1 0 100 1000 200", 4200, 175, false},
		// The command name may hold spaces and parentheses: count from the last ')'.
		{"odd command name", "77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1", 1, 7, false},
		{"truncated", "77 (x) R 1 2 3", 0, 0, true},
		{"no name", "garbage", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ppid, ticks, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantError {
				t.Fatalf("error = %v, want error %v", err, tt.wantError)
			}
			if ppid != tt.ppid || ticks != tt.ticks {
				t.Errorf("got ppid %d ticks %d, want %d %d", ppid, ticks, tt.ppid, tt.ticks)
			}
		})
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\twafcanary\nVmPeak:\t 2000000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   70001 kB\n"
	for field, want := range map[string]int64{"VmHWM": 81234, "VmRSS": 70001} {
		got, err := parseStatusKB([]byte(status), field)
		if err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", field, got, err, want)
		}
	}
	if _, err := parseStatusKB([]byte(status), "VmSwap"); err == nil {
		t.Error("missing field: want an error")
	}
}

// The real /proc of this test process: CPU grows, memory is there, and
// this process is among its parent's children.
func TestProcSelf(t *testing.T) {
	pid := os.Getpid()
	c0, err := procCPU(pid)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	if c1, _ := procCPU(pid); c1 <= c0 {
		t.Errorf("CPU did not grow while spinning: %v then %v", c0, c1)
	}
	if kb := sumMemKB([]int{pid}, "VmHWM"); kb <= 0 {
		t.Errorf("VmHWM = %d kB", kb)
	}
	found := false
	for _, c := range children(os.Getppid()) {
		found = found || c == pid
	}
	if !found {
		t.Errorf("pid %d not among the children of %d", pid, os.Getppid())
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 7s test @ http://127.0.0.1:40001
  1 threads and 8 connections
  2143 requests in 7.00s, 11.2MB read
  Non-2xx or 3xx responses: 86
Requests/sec:    306.14
WAFBENCH {"requests":2143,"duration_us":7000432,"status_errors":86,"connect_errors":0,"read_errors":1,"write_errors":0,"timeouts":2,"p50_us":25140,"p99_us":71110}
`
	r, err := parseWrk([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 2143 || r.StatusErrors != 86 || r.P50US != 25140 || r.P99US != 71110 || r.socketErrors() != 3 {
		t.Errorf("parsed %+v", r)
	}
	if rps := r.rps(); rps < 306 || rps > 306.2 {
		t.Errorf("rps = %f, want about 306.1", rps)
	}
	for name, bad := range map[string]string{
		"no summary line": "Requests/sec: 306.14\n",
		"zero requests":   `WAFBENCH {"requests":0,"duration_us":1}` + "\n",
		"bad json":        "WAFBENCH {requests\n",
	} {
		if _, err := parseWrk([]byte(bad)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestParseShadowMetrics(t *testing.T) {
	text := `# HELP wafcanary_shadow_verdicts_total x
# TYPE wafcanary_shadow_verdicts_total counter
wafcanary_shadow_verdicts_total{baseline="allowed",candidate="allowed"} 980
wafcanary_shadow_verdicts_total{baseline="blocked",candidate="blocked"} 40
wafcanary_shadow_dropped_total 7
wafcanary_requests_total{action="allowed",arm="baseline"} 500
wafcanary_requests_total{action="blocked",arm="baseline"} 20
wafcanary_requests_total{action="allowed",arm="candidate"} 480
wafcanary_shadow_sample_ratio 1
`
	c, err := parseShadowMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.pairs != 1020 || c.dropped != 7 || c.arms["baseline"] != 520 || c.arms["candidate"] != 480 {
		t.Errorf("got %+v", c)
	}
}

func TestSummarise(t *testing.T) {
	tg := &target{
		heavy: []wrkResult{
			{Requests: 1000, DurationUS: 2e6, StatusErrors: 40, P50US: 10000, P99US: 50000},
			{Requests: 3000, DurationUS: 2e6, StatusErrors: 120, P50US: 30000, P99US: 70000},
			{Requests: 2000, DurationUS: 2e6, StatusErrors: 80, P50US: 20000, P99US: 90000},
		},
		light:     []wrkResult{{P50US: 5000}, {P50US: 7000}, {P50US: 6000}},
		cpu:       12 * time.Second,
		idleRSSKB: 70 * 1024,
	}
	s := summarise(tg)
	if s.rps != 1000 || s.p50 != 20 || s.p99 != 70 || s.moderateP50 != 6 || s.cpuPer1k != 2 || s.blocked != 0.04 || s.idleMB != 70 {
		t.Errorf("got %+v", s)
	}
	lo, hi := roundRatios(s, summary{roundRPS: []float64{1000, 1000, 500}})
	if lo != 0.5 || hi != 2 {
		t.Errorf("round ratios %v-%v, want 0.5-2", lo, hi)
	}
}

func TestWafcanaryConfigSplitsOnClientHeader(t *testing.T) {
	c := wafcanaryConfig("127.0.0.1:1", "127.0.0.1:2", "http://127.0.0.1:3", "/tmp/s", 100, true)
	for _, want := range []string{"candidate_percent: 50", "sticky_key: header:X-Client-ID", "sample_percent: 100", "full_evaluation: true", "candidate: embedded:candidate-exclusion.conf"} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}

func TestLoadArgs(t *testing.T) {
	flat := load{threads: 1, connections: 8, duration: 7 * time.Second}.args("mix.lua", "http://x")
	if got := strings.Join(flat, " "); got != "-t1 -c8 -d7s --timeout 5s -s mix.lua http://x" {
		t.Errorf("flat out: %s", got)
	}
	paced := load{threads: 1, connections: 1, duration: 4 * time.Second, think: 20 * time.Millisecond}.args("mix.lua", "http://x")
	if got := strings.Join(paced[len(paced)-2:], " "); got != "-- 20" {
		t.Errorf("paced run passes think time as %q, want mix.lua's argument -- 20", got)
	}
}

func TestSelectTargets(t *testing.T) {
	ts := []*target{{name: "go-proxy"}, {name: "coraza"}, {name: "wafcanary"}}
	got, err := selectTargets(ts, []string{"wafcanary", " go-proxy"})
	if err != nil || len(got) != 2 || got[0].name != "go-proxy" || got[1].name != "wafcanary" {
		t.Errorf("got %v, %v; want go-proxy, wafcanary", got, err)
	}
	// A typo must not leave an empty (or silently smaller) run.
	if _, err := selectTargets(ts, []string{"wafcanry"}); err == nil || !strings.Contains(err.Error(), "go-proxy, coraza, wafcanary") {
		t.Errorf("unknown target: %v, want an error listing the targets", err)
	}
}

// The shadow target is met only when every sample was evaluated: dropping
// work makes a run faster than the target means.
func TestShadowTargetNeedsEverySampleEvaluated(t *testing.T) {
	base := summary{rps: 500, roundRPS: []float64{500}, idleMB: 70}
	for _, c := range []struct {
		name   string
		shadow shadowCounts
		want   string
	}{
		{"all evaluated", shadowCounts{pairs: 1000}, "[met    ] shadow 100%"},
		{"some dropped", shadowCounts{pairs: 900, dropped: 100}, "[NOT MET] shadow 100%"},
		{"not scraped", shadowCounts{}, "[NOT MET] shadow 100%"},
	} {
		var b strings.Builder
		targetChecks(&b, map[string]summary{
			"wafcanary":        base,
			"wafcanary-shadow": {rps: 450, roundRPS: []float64{450}, shadow: c.shadow},
		})
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%s: want %q in\n%s", c.name, c.want, b.String())
		}
	}
}

// A goal "in every round" fails on one low round, however good the
// overall ratio: that is the margin issue 34 asks for.
func TestNginxTargetIsCheckedInEveryRound(t *testing.T) {
	wc := summary{rps: 1700, roundRPS: []float64{1800, 1800, 1400}, idleMB: 70}
	ng := summary{rps: 1000, roundRPS: []float64{1000, 1000, 1000}}
	var b strings.Builder
	targetChecks(&b, map[string]summary{"wafcanary": wc, "nginx-modsec": ng})
	if !strings.Contains(b.String(), "[NOT MET] split throughput >= 1.5x nginx+ModSecurity on the same CRS 4.25 in every round: 1.70x (rounds 1.40-1.80)") {
		t.Errorf("one round at 1.40x must fail the goal:\n%s", b.String())
	}
	wc.roundRPS[2] = 1500
	b.Reset()
	targetChecks(&b, map[string]summary{"wafcanary": wc, "nginx-modsec": ng})
	if !strings.Contains(b.String(), "[met    ] split throughput >= 1.5x") || !strings.Contains(b.String(), "[not yet] stretch: median round >= 2x nginx+ModSecurity on the same CRS 4.25: 1.80x") {
		t.Errorf("every round >= 1.5x meets the goal, median 1.8 misses the stretch:\n%s", b.String())
	}
}

func TestRoundTablePrintsEveryRoundAndVariants(t *testing.T) {
	targets := []*target{{name: "wafcanary"}, {name: "wafcanary-nopgo", variantOf: "wafcanary"}, {name: "nginx-modsec"}}
	sums := map[string]summary{
		"wafcanary":       {rps: 1, roundRPS: []float64{300, 330, 360}},
		"wafcanary-nopgo": {rps: 1, roundRPS: []float64{300, 300, 300}},
		"nginx-modsec":    {rps: 1, roundRPS: []float64{200, 200, 200}},
	}
	var b strings.Builder
	roundTable(&b, targets, sums)
	got := b.String()
	for _, want := range []string{"wafcanary/nginx-modsec", "wafcanary-nopgo/wafcanary", "wafcanary-nopgo/nginx-modsec", "1.65", "0.83", "median", "1.50", "1.80"} {
		if !strings.Contains(got, want) {
			t.Errorf("round table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "shadow/split") {
		t.Errorf("a column for targets not run:\n%s", got)
	}
}

func TestParseVariant(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "wafcanary-nopgo")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := parseVariant("nopgo=bin:" + bin + ",env:GOGC=400,env:GOMEMLIMIT=256MiB")
	if err != nil || v.name != "nopgo" || v.bin != bin || !slices.Equal(v.env, []string{"GOGC=400", "GOMEMLIMIT=256MiB"}) {
		t.Fatalf("got %+v, %v", v, err)
	}
	for _, bad := range []string{"nopgo", "NoPGO=env:GOGC=1", "x=env:GOGC", "x=bin:/no/such/file", "x=gogc:400", "x=env:=1"} {
		if _, err := parseVariant(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var vs variants
	if err := vs.Set("a=env:GOGC=200"); err != nil {
		t.Fatal(err)
	}
	if err := vs.Set("a=env:GOGC=400"); err == nil {
		t.Error("a variant name given twice accepted")
	}
}

// Two targets given one port measured the first twice: the second exited
// and the first answered its readiness check. A port the kernel offers
// again is skipped.
func TestFreeAddrNeverRepeats(t *testing.T) {
	offers := []string{"127.0.0.1:4001", "127.0.0.1:4001", "127.0.0.1:4002"}
	free := func() string { o := offers[0]; offers = offers[1:]; return o }
	a := addrs{given: map[string]bool{}}
	if first, second := a.next(free), a.next(free); first != "127.0.0.1:4001" || second != "127.0.0.1:4002" {
		t.Errorf("handed out %s then %s; want the repeated 4001 skipped", first, second)
	}
	if x, y := freeAddr(), freeAddr(); x == y {
		t.Errorf("freeAddr gave %s twice", x)
	}
}
