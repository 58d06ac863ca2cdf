package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// summary is one target's figures over all rounds.
type summary struct {
	rps            float64 // all requests over all throughput time
	p50, p99       float64 // ms, median over rounds
	moderateP50    float64 // ms, median over rounds, one paced connection
	cpuPer1k       float64 // CPU seconds per 1,000 requests
	blocked        float64 // fraction answered non-2xx/3xx
	socketErrs     int64
	idleMB, peakMB float64
	roundRPS       []float64
	shadow         shadowCounts // wafcanary targets; zero when not scraped
}

func summarise(t *target) summary {
	var s summary
	var reqs, us, status int64
	var p50, p99, mp50 []float64
	for _, r := range t.heavy {
		reqs += r.Requests
		us += r.DurationUS
		status += r.StatusErrors
		s.socketErrs += r.socketErrors()
		p50 = append(p50, ms(r.P50US))
		p99 = append(p99, ms(r.P99US))
		s.roundRPS = append(s.roundRPS, r.rps())
	}
	for _, r := range t.light {
		mp50 = append(mp50, ms(r.P50US))
		s.socketErrs += r.socketErrors()
	}
	if us > 0 {
		s.rps = float64(reqs) / (float64(us) / 1e6)
	}
	if reqs > 0 {
		s.blocked = float64(status) / float64(reqs)
	}
	if reqs > 0 {
		s.cpuPer1k = t.cpu.Seconds() / float64(reqs) * 1000
	}
	s.p50, s.p99, s.moderateP50 = median(p50), median(p99), median(mp50)
	s.idleMB, s.peakMB = float64(t.idleRSSKB)/1024, float64(t.peakKB)/1024
	s.shadow = t.shadow
	return s
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratiosByRound are a's throughput over b's, round by round; a round in
// which b did nothing is left out.
func ratiosByRound(a, b summary) []float64 {
	var rs []float64
	for i := range min(len(a.roundRPS), len(b.roundRPS)) {
		if b.roundRPS[i] > 0 {
			rs = append(rs, a.roundRPS[i]/b.roundRPS[i])
		}
	}
	return rs
}

// roundRatios are the lowest and highest of a/b over the rounds: the
// spread shows how much of a ratio is noise.
func roundRatios(a, b summary) (lo, hi float64) {
	rs := ratiosByRound(a, b)
	if len(rs) == 0 {
		return 0, 0
	}
	return slices.Min(rs), slices.Max(rs)
}

// roundTable prints each round's ratios, so that a figure quoted from the
// run can be its range of rounds and not only its best or its overall.
func roundTable(w io.Writer, targets []*target, sums map[string]summary) {
	type column struct{ head, a, b string }
	var cols []column
	has := func(n string) bool { s, ok := sums[n]; return ok && s.rps > 0 }
	for _, c := range []column{
		{"wafcanary/nginx-modsec", "wafcanary", "nginx-modsec"},
		{"wafcanary/coraza", "wafcanary", "coraza"},
		{"shadow/split", "wafcanary-shadow", "wafcanary"},
		{"shadow-full/split", "wafcanary-shadow-full", "wafcanary"},
		{"haproxy-agent/split", "haproxy-wafcanary", "wafcanary"},
	} {
		if has(c.a) && has(c.b) {
			cols = append(cols, c)
		}
	}
	for _, t := range targets {
		if t.variantOf != "" && has(t.name) && has(t.variantOf) {
			cols = append(cols, column{t.name + "/" + t.variantOf, t.name, t.variantOf})
			if has("nginx-modsec") { // the goal's ratio, for the variant too
				cols = append(cols, column{t.name + "/nginx-modsec", t.name, "nginx-modsec"})
			}
		}
	}
	if len(cols) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "round\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c.head)
	}
	fmt.Fprintln(tw)
	var rows [][]float64
	for _, c := range cols {
		rows = append(rows, ratiosByRound(sums[c.a], sums[c.b]))
	}
	for i := range len(rows[0]) {
		fmt.Fprintf(tw, "%d\t", i+1)
		for _, r := range rows {
			if i < len(r) {
				fmt.Fprintf(tw, "%.2f\t", r[i])
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	for _, agg := range []struct {
		name string
		f    func([]float64) float64
	}{{"median", median}, {"min", slices.Min[[]float64]}, {"max", slices.Max[[]float64]}} {
		fmt.Fprintf(tw, "%s\t", agg.name)
		for _, r := range rows {
			if len(r) == 0 {
				fmt.Fprint(tw, "-\t")
				continue
			}
			fmt.Fprintf(tw, "%.2f\t", agg.f(r))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func report(w io.Writer, targets []*target, o runOptions) {
	sums := map[string]summary{}
	for _, t := range targets {
		sums[t.name] = summarise(t)
	}
	ref := func(name string, s summary) string {
		r, ok := sums[name]
		if !ok || r.rps == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", s.rps/r.rps)
	}

	fmt.Fprintf(w, "\nwafbench: %d interleaved rounds; throughput runs wrk -t%d -c%d -d%s, moderate-load runs wrk -t1 -c1 -d%s with %s think time; same mix (mix.lua) for every target\n\n",
		o.rounds, o.threads, o.connections, o.duration, o.moderate, o.think)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\tp50 ms\tp99 ms\tp50 ms moderate\tCPU s/1k req\tidle RSS MB\tpeak RSS MB\tnon-2xx\tx coraza\tx nginx\t")
	for _, t := range targets {
		s := sums[t.name]
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.3f\t%.1f\t%.1f\t%.1f%%\t%s\t%s\t\n",
			t.name, s.rps, s.p50, s.p99, s.moderateP50, s.cpuPer1k, s.idleMB, s.peakMB, 100*s.blocked,
			ref("coraza", s), ref("nginx-modsec", s))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, t := range targets {
		fmt.Fprintf(w, "  %-18s %s\n", t.name, t.desc)
	}
	fmt.Fprint(w, `
  Rulesets: wafcanary, the bare Coraza proxies and nginx-modsec run CRS 4.25 (wafcanary's
  embedded baseline.conf: paranoia level 1, inbound threshold 5, SecRuleEngine On,
  request and response body access); the candidate is candidate-exclusion.conf.
  nginx-modsec loads the same CRS files, written out of the binary's embedded copy, with
  "t:none" given to the two chain links that have no action list (libmodsecurity 3.0.9
  refuses them; the action changes nothing), and ModSecurity settings that mirror
  Coraza's recommended ones (same MIME types and limits, JSON and XML body processors,
  SecRuleEngine On). nginx-modsec-crs3 is the same nginx with Debian's older, smaller
  CRS 3.3.4 (modsecurity-crs): a reference, not like for like. "x nginx" is against
  nginx-modsec. wafcanary and coraza-tuned use wafcanary's
  @rx (prefilter, RE2 where that gives the same outcome; package rx) and @pm (a
  literal search before Coraza's automaton; package pm); coraza is stock Coraza.
  p50/p99: median over rounds of wrk's per-run percentiles. CPU: utime+stime of the
  target's processes (nginx: master and workers) over the throughput runs, including
  queued shadow work. RSS: VmRSS before any request (idle) and VmHWM at the end
  (peak); nginx sums its processes (shared pages counted more than once).
  non-2xx: share of answers that were not 2xx/3xx (the mix has 4% attacks).
  haproxy-wafcanary counts HAProxy's and the agent's processes together (CPU, RSS).
`)
	for _, t := range targets {
		if s := sums[t.name]; s.socketErrs > 0 {
			fmt.Fprintf(w, "  WARNING: %s had %d socket errors or timeouts\n", t.name, s.socketErrs)
		}
		if t.metricsURL != "" && t.shadow.arms != nil {
			total := t.shadow.arms["baseline"] + t.shadow.arms["candidate"]
			if total > 0 {
				fmt.Fprintf(w, "  %s: candidate arm judged %.0f%% of requests; shadow pairs %.0f (%.0f derived without evaluation), dropped %.0f\n",
					t.name, 100*t.shadow.arms["candidate"]/total, t.shadow.pairs, t.shadow.derived, t.shadow.dropped)
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Throughput ratios, round by round (a/b of the same round):")
	roundTable(w, targets, sums)
	targetChecks(w, sums)
}

// targetChecks prints issue 6's targets against the figures.
func targetChecks(w io.Writer, sums map[string]summary) {
	wc, okW := sums["wafcanary"]
	check := func(met bool, format string, args ...any) {
		verdict := "met    "
		if !met {
			verdict = "NOT MET"
		}
		fmt.Fprintf(w, "  [%s] %s\n", verdict, fmt.Sprintf(format, args...))
	}
	fmt.Fprintln(w, "Targets:")
	if !okW {
		fmt.Fprintln(w, "  (wafcanary not run)")
		return
	}
	if c, ok := sums["coraza"]; ok && c.rps > 0 {
		lo, hi := roundRatios(wc, c)
		check(wc.rps/c.rps >= 0.95, "split throughput >= 0.95x bare Coraza: %.2fx (rounds %.2f-%.2f)", wc.rps/c.rps, lo, hi)
	}
	if n, ok := sums["nginx-modsec"]; ok && n.rps > 0 {
		// Every round, not the overall ratio: a margin the machine's noise
		// can erase in one round in three is not a margin.
		lo, hi := roundRatios(wc, n)
		check(lo >= 1.5, "split throughput >= 1.5x nginx+ModSecurity on the same CRS 4.25 in every round: %.2fx (rounds %.2f-%.2f)", wc.rps/n.rps, lo, hi)
		med := median(ratiosByRound(wc, n))
		fmt.Fprintf(w, "  [%s] stretch: median round >= 2x nginx+ModSecurity on the same CRS 4.25: %.2fx\n", map[bool]string{true: "met    ", false: "not yet"}[med >= 2], med)
	}
	if n, ok := sums["nginx-modsec-crs3"]; ok && n.rps > 0 {
		lo, hi := roundRatios(wc, n)
		fmt.Fprintf(w, "  [ref    ] split throughput against nginx+ModSecurity with CRS 3.3.4: %.2fx (rounds %.2f-%.2f)\n", wc.rps/n.rps, lo, hi)
	}
	if s, ok := sums["wafcanary-shadow"]; ok && wc.rps > 0 {
		lo, hi := roundRatios(s, wc)
		// Dropped samples are work not done: a run that drops any is
		// faster than the target means, and one not scraped is unknown.
		evaluated := fmt.Sprintf("every sample judged (%.0f of %.0f derived)", s.shadow.derived, s.shadow.pairs)
		switch {
		case s.shadow.pairs == 0:
			evaluated = "shadow pairs unknown (metrics not scraped)"
		case s.shadow.dropped > 0:
			evaluated = fmt.Sprintf("%.0f samples dropped", s.shadow.dropped)
		}
		check(s.rps/wc.rps >= 0.8 && s.shadow.pairs > 0 && s.shadow.dropped == 0,
			"shadow 100%% with the shipped exclusion >= 0.8x split, nothing dropped: %.2fx (rounds %.2f-%.2f), %s", s.rps/wc.rps, lo, hi, evaluated)
		if f, ok := sums["wafcanary-shadow-full"]; ok && f.rps > 0 {
			lo, hi := roundRatios(f, wc)
			fmt.Fprintf(w, "  [ref    ] shadow 100%% evaluating every pair (shadow.full_evaluation) against split: %.2fx (rounds %.2f-%.2f)\n", f.rps/wc.rps, lo, hi)
		}
		if wc.moderateP50 > 0 {
			check(s.moderateP50/wc.moderateP50 <= 1.1, "moderate-load p50 with shadow <= 1.1x without: %.2fx (%.2f ms vs %.2f ms)",
				s.moderateP50/wc.moderateP50, s.moderateP50, wc.moderateP50)
		}
	}
	if a, ok := sums["haproxy-wafcanary"]; ok && wc.rps > 0 {
		lo, hi := roundRatios(a, wc)
		check(a.rps/wc.rps >= 1, "HAProxy + the agent's throughput >= wafcanary's own proxy on the same mix: %.2fx (rounds %.2f-%.2f)", a.rps/wc.rps, lo, hi)
		check(a.moderateP50 <= wc.moderateP50+0.3, "HAProxy + the agent's moderate-load p50 <= the own proxy's + 0.3 ms: %.2f ms vs %.2f ms",
			a.moderateP50, wc.moderateP50)
	}
	check(wc.idleMB < 80, "idle RSS with both rulesets loaded < 80 MB: %.1f MB", wc.idleMB)
	fmt.Fprintln(w, strings.Repeat("-", 60))
}
