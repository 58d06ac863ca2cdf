package replay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/exclusion"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Options configure a replay. The zero value reads any format with the
// controller's default policy, the scope inferred from the candidate, on
// every core.
type Options struct {
	// Format of every file; "" or Auto detects each file's.
	Format Format
	// Scope, when set, is the rollout scope declared; nil infers it from
	// the candidate as start does (exclusion.ScopeOf).
	Scope *evidence.Scope
	// Policy holds the limits; the zero value is
	// rollout.DefaultConfig.Policy.
	Policy rollout.Policy
	// Workers judge pairs in parallel; 0 is runtime.GOMAXPROCS.
	Workers int
	// MaxRecordBytes bounds a record; 0 is DefaultMaxRecordBytes.
	MaxRecordBytes int
	// FullEvaluation judges every request by both rulesets, without the
	// derived-pair shortcut.
	FullEvaluation bool
	// Examples is how many redacted examples each row keeps; 0 is 3.
	Examples int
	// Redact is the redaction of examples; the zero value is
	// capture.DefaultConfig's.
	Redact *capture.Config
	// Progress, when set, is called about twice a second and at the end,
	// from one goroutine.
	Progress func(Progress)
}

// Progress is how far a replay is.
type Progress struct {
	Requests, Judged, Unreadable int64
	Elapsed                      time.Duration
	Done                         bool
}

// maxProblems bounds the problems a report lists; all are counted.
const maxProblems = 100

// maxAgreementCases bounds the disagreements with the logged verdict a
// report lists; all are counted, by rule.
const maxAgreementCases = 50

// Run replays the requests recorded in paths through base and cand and
// reports their paired verdicts. It fails only when the rulesets cannot
// serve or ctx is done; unreadable records are in the report.
func Run(ctx context.Context, base, cand *ruleset.Ruleset, paths []string, o Options) (*Report, error) {
	if o.Policy == (rollout.Policy{}) {
		o.Policy = rollout.DefaultConfig.Policy
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Examples <= 0 {
		o.Examples = 3
	}
	redact := capture.DefaultConfig
	if o.Redact != nil {
		redact = *o.Redact
	}
	engine, err := newEngine(base, cand, o.FullEvaluation)
	if err != nil {
		return nil, err
	}
	rep := &Report{Baseline: base.Version, Candidate: cand.Version, Formats: map[Format]int64{}, Policy: o.Policy}
	if o.Scope != nil {
		rep.Scope, rep.ScopeFrom = *o.Scope, "declared"
	} else {
		in := exclusion.ScopeOf(base, cand)
		rep.Scope, rep.ScopeNotes = in.Scope, in.Notes
		rep.ScopeFrom = "inferred"
		if in.Scope.Empty() {
			rep.ScopeFrom = "none: " + in.Why()
		}
	}
	collector := evidence.NewCollector(nil)
	collector.ResetScope(rep.Scope)
	agg := newAggregate(rep, o.Examples, redact)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		seq   int64
		entry Entry
	}
	type result struct {
		job
		rec verdict.ShadowRecord
		err error
	}
	jobs := make(chan job, 2*o.Workers)
	results := make(chan result, 2*o.Workers)
	var scanErr error
	var problems []Problem
	var mu sync.Mutex // guards problems: Scan calls back from its goroutine
	go func() {
		defer close(jobs)
		var seq int64
		scanErr = Scan(ctx, paths, o.Format, o.MaxRecordBytes, func(e Entry) error {
			select {
			case jobs <- job{seq: seq, entry: e}:
				seq++
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}, func(p Problem) {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		})
	}()
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				rec, err := engine.Pair(ctx, &j.entry.Request, j.entry.Body)
				select {
				case results <- result{job: j, rec: rec, err: err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	progress := func(done bool) {
		if o.Progress == nil {
			return
		}
		mu.Lock()
		n := int64(len(problems))
		mu.Unlock()
		o.Progress(Progress{Requests: rep.Requests, Judged: rep.Pairs + rep.Errors, Unreadable: n, Elapsed: time.Since(start), Done: done})
	}
	for open := true; open; {
		select {
		case r, ok := <-results:
			if !ok {
				open = false
				break
			}
			rep.Requests++
			if r.err != nil {
				rep.Errors++
				if len(rep.JudgeErrors) < maxProblems {
					rep.JudgeErrors = append(rep.JudgeErrors, Problem{Pos: r.entry.Pos, Err: r.err.Error()})
				}
				if errors.Is(r.err, ruleset.ErrClosed) {
					return nil, r.err
				}
				continue
			}
			collector.ObserveShadow(r.rec)
			agg.add(r.seq, &r.entry, r.rec)
		case <-tick.C:
			progress(false)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if scanErr != nil {
		return nil, scanErr
	}
	rep.Elapsed = time.Since(start)
	rep.Unreadable = int64(len(problems))
	rep.Problems = problems[:min(len(problems), maxProblems)]
	agg.finish()
	rep.judge(collector.Snapshot())
	progress(true)
	return rep, nil
}

// newEngine is the request path with both rulesets, for Pair only: no
// transport, no observers, no shadow workers.
func newEngine(base, cand *ruleset.Ruleset, full bool) (*router.Engine, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	shadow := router.DefaultShadowConfig
	shadow.FullEvaluation = full
	return router.NewEngine(&router.Snapshot{Baseline: base, Candidate: cand}, router.EngineOptions{
		Routing: router.DefaultRoutingConfig, Shadow: shadow, FailMode: router.FailClosed, Secret: secret,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// Verdicts of a replay.
const (
	Pass         = "pass"
	Fail         = "fail"
	Inconclusive = "inconclusive"
)

// judge holds the evidence against the controller's paired checks.
func (r *Report) judge(ev evidence.Evidence) {
	a := rollout.Evaluate(ev, r.Policy, 0)
	r.Verdict = Pass
	for _, o := range a.Outcomes {
		if o.Check != "new_blocks" && o.Check != "lost_blocks" {
			continue
		}
		r.Checks = append(r.Checks, Check{Name: o.Check, Status: o.Status.String(), Reason: o.Reason, Observed: o.Observed, Lower: o.Lower, Upper: o.Upper, Limit: o.Limit})
		switch {
		case o.Status == rollout.Fail:
			r.Verdict = Fail
		case o.Status != rollout.Pass && r.Verdict != Fail:
			r.Verdict = Inconclusive
		}
	}
}

// aggregate builds a report's rows and examples as pairs arrive, in any
// order: the examples kept are those earliest in the input.
type aggregate struct {
	rep      *Report
	examples int
	redact   capture.Config
	rows     map[string]*row
	agree    map[int]int64
	// relevantOnly stays true while every record with a logged verdict
	// names a rule: a log of relevant transactions only.
	logged, withRules int64
	// unjudged counts records the server refused before the WAF judged.
	unjudged int64
}

// row is one count of a table (a rule, a host, a path) with its earliest
// examples.
type row struct {
	count, inScope int64
	examples       []seqExample
}

type seqExample struct {
	seq int64
	ex  Example
}

func newAggregate(rep *Report, examples int, redact capture.Config) *aggregate {
	return &aggregate{rep: rep, examples: examples, redact: redact, rows: map[string]*row{}, agree: map[int]int64{}}
}

func (g *aggregate) add(seq int64, e *Entry, rec verdict.ShadowRecord) {
	r := g.rep
	r.Pairs++
	r.Formats[e.Format]++
	if rec.Derived {
		r.Derived++
	}
	if e.BodyMissing {
		r.BodiesMissing++
	}
	if e.Lossy {
		r.Lossy++
	}
	g.compare(e, rec)
	kind := rec.Disagreement()
	if kind == verdict.Agree {
		return
	}
	d := &r.NewBlocks
	blocking := rec.Candidate
	if kind == verdict.LostBlock {
		d, blocking = &r.LostBlocks, rec.Baseline
	}
	rules := evidence.Attribution(rec)
	in := r.Scope.Covers(rec.Host, rec.Path, rules)
	d.Total++
	if in {
		d.InScope++
	}
	ex := g.example(e, blocking, rules, in)
	keys := []string{"host " + evidence.HostName(rec.Host), "path " + rec.Path}
	for _, id := range rules {
		keys = append(keys, fmt.Sprintf("rule %d", id))
	}
	for _, k := range keys {
		k = kind.String() + " " + k
		rw := g.rows[k]
		if rw == nil {
			rw = &row{}
			g.rows[k] = rw
		}
		rw.count++
		if in {
			rw.inScope++
		}
		rw.examples = append(rw.examples, seqExample{seq, ex})
		if len(rw.examples) > g.examples {
			slices.SortFunc(rw.examples, func(a, b seqExample) int { return int(a.seq - b.seq) })
			rw.examples = rw.examples[:g.examples]
		}
	}
}

// compare measures agreement with the verdict the log recorded.
func (g *aggregate) compare(e *Entry, rec verdict.ShadowRecord) {
	l := e.Logged
	if l == nil {
		return
	}
	ag := &g.rep.Agreement
	g.logged++
	if len(l.Rules) > 0 {
		g.withRules++
	}
	if l.InResponse || l.Unjudged {
		ag.NotCompared++
		if l.Unjudged {
			g.unjudged++
		}
		return
	}
	ag.Compared++
	if l.Blocked == rec.Baseline.Blocked {
		ag.Agree++
		return
	}
	c := AgreementCase{Pos: e.Pos, Method: e.Request.Method, Host: e.Request.Host, Path: rec.Path, Logged: l.Blocked, Baseline: rec.Baseline.Blocked}
	for _, id := range l.Rules {
		if !evaluation(id) && !slices.Contains(rec.Baseline.RuleIDs(), id) {
			c.OnlyLogged = append(c.OnlyLogged, id)
		}
	}
	for _, id := range rec.Baseline.RuleIDs() {
		if !evaluation(id) && !slices.Contains(l.Rules, id) && !slices.Contains(c.OnlyBaseline, id) {
			c.OnlyBaseline = append(c.OnlyBaseline, id)
		}
	}
	for _, id := range append(slices.Clone(c.OnlyLogged), c.OnlyBaseline...) {
		g.agree[id]++
	}
	if len(ag.Cases) < maxAgreementCases {
		ag.Cases = append(ag.Cases, c)
	}
}

func evaluation(id int) bool {
	return id == ruleInbound || id == ruleInboundEarly || id == ruleOutbound || id == 980170
}

// example is e as a report shows it: redacted as captures are.
func (g *aggregate) example(e *Entry, v verdict.Verdict, rules []int, in bool) Example {
	c := capture.Of(verdict.Block{Request: e.Request, Body: e.Body, Record: verdict.RequestRecord{Verdict: v}}, g.redact)
	ex := Example{Pos: e.Pos, Method: c.Method, Host: c.Host, URI: c.URI, Header: c.Header, Body: c.Body, BodyNote: c.BodyNote, Rules: rules, InScope: in}
	if !utf8.ValidString(ex.Body) {
		ex.Body, ex.BodyNote = "", fmt.Sprintf("%d bytes of binary body", len(c.Body))
	}
	if e.BodyMissing {
		ex.BodyNote = "the log did not keep the body: judged without it"
	}
	return ex
}

// finish sorts the rows into the report and says what the log cannot
// show.
func (g *aggregate) finish() {
	r := g.rep
	for k, rw := range g.rows {
		kind, rest, _ := strings.Cut(k, " ")
		dim, key, _ := strings.Cut(rest, " ")
		d := &r.NewBlocks
		if kind == verdict.LostBlock.String() {
			d = &r.LostBlocks
		}
		ex := make([]Example, len(rw.examples))
		for i, s := range rw.examples {
			ex[i] = s.ex
		}
		c := Count{Key: key, Count: rw.count, InScope: rw.inScope, Examples: ex}
		switch dim {
		case "rule":
			d.Rules = append(d.Rules, c)
		case "host":
			d.Hosts = append(d.Hosts, c)
		case "path":
			d.Paths = append(d.Paths, c)
		}
	}
	for _, d := range []*Disagreements{&r.NewBlocks, &r.LostBlocks} {
		d.OutOfScope = d.Total - d.InScope
		for _, t := range [][]Count{d.Rules, d.Hosts, d.Paths} {
			sort.Slice(t, func(i, j int) bool {
				if t[i].Count != t[j].Count {
					return t[i].Count > t[j].Count
				}
				return t[i].Key < t[j].Key
			})
		}
	}
	for id, n := range g.agree {
		r.Agreement.Rules = append(r.Agreement.Rules, evidence.RuleCount{ID: id, Count: n})
	}
	sort.Slice(r.Agreement.Rules, func(i, j int) bool {
		a, b := r.Agreement.Rules[i], r.Agreement.Rules[j]
		return a.Count > b.Count || a.Count == b.Count && a.ID < b.ID
	})
	if r.Agreement.Compared > 0 {
		r.Agreement.Share = float64(r.Agreement.Agree) / float64(r.Agreement.Compared)
	}
	if g.logged > 0 && g.withRules == g.logged {
		r.Limits = append(r.Limits, "every logged transaction names a rule: the log looks like SecAuditEngine RelevantOnly, which keeps only what matched; new blocks a candidate would cause on the traffic never logged cannot show here")
	}
	if r.BodiesMissing > 0 {
		r.Limits = append(r.Limits, fmt.Sprintf("%d requests had a body the log did not keep (no audit part C, or a body the WAF never read): judged without it", r.BodiesMissing))
	}
	if r.Lossy > 0 {
		r.Limits = append(r.Limits, fmt.Sprintf("%d records do not hold the request byte for byte (captures are redacted; Coraza's JSON replaces bytes that are not UTF-8)", r.Lossy))
	}
	if n := r.Formats[HAR] + r.Formats[Captures]; n > 0 {
		r.Limits = append(r.Limits, fmt.Sprintf("%d requests from HAR files or captures record no WAF verdict to compare the baseline with", n))
	}
	if r.Formats[Captures] > 0 {
		r.Limits = append(r.Limits, "captures hold blocked requests only: new blocks on traffic that was allowed cannot show")
	}
	if n := r.Agreement.NotCompared - g.unjudged; n > 0 {
		r.Limits = append(r.Limits, fmt.Sprintf("%d requests the log shows blocked in a response phase: replay judges request phases only, so they are not compared", n))
	}
	if g.unjudged > 0 {
		r.Limits = append(r.Limits, fmt.Sprintf("%d requests the web server refused before the WAF's request-body phase ran (such as Apache's invalid URI path): no logged verdict to compare", g.unjudged))
	}
}
