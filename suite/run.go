package suite

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

// Result is one case's outcome against one instance.
type Result struct {
	Case   string `json:"case"`
	RuleID int    `json:"rule_id"`
	Pass   bool   `json:"pass"`
	// Why says which expectation failed; empty when the case passed.
	Why string `json:"why,omitempty"`
	// Ignored is the reason the case is left out of the pass rate, if it is.
	Ignored string `json:"ignored,omitempty"`
	// Fired are the logging rules wafcanary recorded, over all stages.
	Fired []int `json:"fired,omitempty"`
	// WAFTime is the time spent inside Coraza, over all stages.
	WAFTime time.Duration `json:"waf_time_ns"`
}

// Report is one instance's results, in case order.
type Report struct {
	Version string   `json:"version"`
	Results []Result `json:"-"`
	Total   int      `json:"total"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Ignored int      `json:"ignored"`
	// MedianWAFTime is the median over cases of the time spent in Coraza.
	MedianWAFTime time.Duration `json:"median_waf_time_ns"`
}

// PassRate is the share of all cases that passed; left-out cases count
// as not passed.
func (r Report) PassRate() float64 {
	if r.Total == 0 {
		return 0
	}
	return float64(r.Passed) / float64(r.Total)
}

// Failures returns the results that failed and are not left out.
func (r Report) Failures() []Result {
	var out []Result
	for _, res := range r.Results {
		if !res.Pass && res.Ignored == "" {
			out = append(out, res)
		}
	}
	return out
}

// Options tune a run.
type Options struct {
	// Workers send cases concurrently; 0 means GOMAXPROCS.
	Workers int
	// Ignore maps case IDs to the reason they are left out (see Ignored).
	// They are still run, so their outcomes can be compared.
	Ignore map[string]string
	// Timeout bounds each request; 0 means 10 seconds.
	Timeout time.Duration
	// Progress, if set, is told how many cases were sent so far.
	Progress func(done, total int)
}

// Run sends every case to every instance and checks the outcomes. Each case
// goes to the instances one after the other before the next case starts,
// so machine noise falls on all of them alike and their WAF times can be
// compared side by side.
func Run(ctx context.Context, cases []Case, targets []*Instance, o Options) ([]Report, error) {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	results := make([][]Result, len(targets))
	for t := range targets {
		results[t] = make([]Result, len(cases))
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for t, in := range targets {
					results[t][i] = runCase(ctx, in, cases[i], o)
					results[t][i].Ignored = o.Ignore[cases[i].ID]
				}
			}
		}()
	}
	for i := range cases {
		select {
		case next <- i:
			if o.Progress != nil && (i%100 == 0 || i == len(cases)-1) {
				o.Progress(i+1, len(cases))
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reports := make([]Report, len(targets))
	for t, in := range targets {
		reports[t] = summarize(in.Ruleset.Version, results[t])
	}
	return reports, nil
}

func summarize(version string, results []Result) Report {
	r := Report{Version: version, Results: results, Total: len(results)}
	times := make([]time.Duration, 0, len(results))
	for _, res := range results {
		switch {
		case res.Ignored != "":
			r.Ignored++
		case res.Pass:
			r.Passed++
		default:
			r.Failed++
		}
		times = append(times, res.WAFTime)
	}
	if len(times) > 0 {
		slices.Sort(times)
		r.MedianWAFTime = times[len(times)/2]
	}
	return r
}

func runCase(ctx context.Context, in *Instance, c Case, o Options) Result {
	res := Result{Case: c.ID, RuleID: c.RuleID, Pass: true}
	for n, st := range c.Stages {
		ex := in.exchange(ctx, st.Input, o.Timeout)
		why := st.Output.check(ex)
		if why != "" && st.Output.RetryOnce {
			ex = in.exchange(ctx, st.Input, o.Timeout)
			why = st.Output.check(ex)
		}
		res.Fired = append(res.Fired, ex.record.Verdict.RuleIDs()...)
		res.WAFTime += ex.record.WAFDuration
		if why != "" && res.Pass {
			res.Pass = false
			res.Why = why
			if len(c.Stages) > 1 {
				res.Why = fmt.Sprintf("stage %d: %s", n+1, why)
			}
		}
	}
	sort.Ints(res.Fired)
	res.Fired = slices.Compact(res.Fired)
	return res
}

// exchange is what one request produced: the response (or the error that
// stood in for it) and, if wafcanary judged the request, its record.
type exchange struct {
	status  int
	err     error
	reached bool
	record  verdict.RequestRecord
}

// exchange sends one request over a fresh connection and collects what
// wafcanary recorded for it, found by the request ID the proxy returns.
func (in *Instance) exchange(ctx context.Context, input Input, timeout time.Duration) exchange {
	var ex exchange
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", in.Addr)
	if err != nil {
		ex.err = err
		return ex
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(input.Bytes()); err != nil {
		ex.err = err
		return ex
	}
	method := input.Method
	if input.Raw != nil {
		method, _, _ = strings.Cut(string(input.Raw), " ")
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		ex.err = err
		return ex
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<20))
	_ = resp.Body.Close()
	ex.status = resp.StatusCode
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		ex.record, ex.reached = in.record(id, 5*time.Second)
	}
	return ex
}

// check returns why ex falls short of o, or "" if it does not. As in
// go-ftw, an expected error settles the stage on its own, and an
// unexpected one fails it.
func (o Output) check(ex exchange) string {
	if o.ExpectError {
		if ex.err == nil {
			return fmt.Sprintf("expected an error, got status %d", ex.status)
		}
		return ""
	}
	if ex.err != nil {
		return "no response: " + ex.err.Error()
	}
	if len(o.Status) > 0 && !slices.Contains(o.Status, ex.status) {
		return fmt.Sprintf("status %d, expected %v", ex.status, o.Status)
	}
	needsVerdict := len(o.ExpectIDs) > 0 || o.MatchRegex != nil
	if needsVerdict && !ex.reached {
		return fmt.Sprintf("status %d before wafcanary judged the request", ex.status)
	}
	fired := ex.record.Verdict.RuleIDs()
	for _, id := range o.ExpectIDs {
		if !slices.Contains(fired, id) {
			return fmt.Sprintf("rule %d did not fire (fired: %v)", id, fired)
		}
	}
	for _, id := range o.NoExpectIDs {
		if slices.Contains(fired, id) {
			return fmt.Sprintf("rule %d fired, expected not to", id)
		}
	}
	lines := logLines(ex.record.Verdict)
	if o.MatchRegex != nil && !slices.ContainsFunc(lines, o.MatchRegex.MatchString) {
		return fmt.Sprintf("no log line matches %q", o.MatchRegex)
	}
	if o.NoMatchRegex != nil && slices.ContainsFunc(lines, o.NoMatchRegex.MatchString) {
		return fmt.Sprintf("a log line matches %q, expected none", o.NoMatchRegex)
	}
	return ""
}

// logLines renders the verdict's matches in the shape of ModSecurity's
// error log, which the suite's regexes are written against:
// [id "N"] [msg "..."] [data "... found within VAR"]. wafcanary never keeps
// matched values (they can be secrets), so only the variable names are
// there; a regex that needs a matched value cannot match.
func logLines(v verdict.Verdict) []string {
	lines := make([]string, 0, len(v.Rules))
	for _, m := range v.Rules {
		var b strings.Builder
		fmt.Fprintf(&b, "[id %q] [msg %q]", fmt.Sprint(m.ID), m.Message)
		for _, t := range m.Targets {
			fmt.Fprintf(&b, " [data \"found within %s: \"]", t)
		}
		lines = append(lines, b.String())
	}
	return lines
}
