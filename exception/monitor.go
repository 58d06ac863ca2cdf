package exception

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corazawaf/coraza/v3/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

var (
	_ router.RequestSampler  = (*Monitor)(nil)
	_ router.ServingObserver = (*Monitor)(nil)
)

// Monitor measures what each exception of the served baseline still lets
// through: a sample of the requests the baseline judged is judged again,
// off the request path, by the baseline without one exception (a
// variant, compiled once per baseline version and exception, retired when
// another baseline serves); a would-be block is a request the variant
// blocks and the baseline did not. It also says when an exception turns
// stale or expired, once per transition.
//
// The cost is kept low by the argument of ruleset.Difference, roles
// swapped: an exception written as a rule whose removals act only when it
// matches cannot change the verdict of a request on which it did not
// match, so only such requests are judged again; a directive acts on every
// request, and every sample is judged without it.
//
// A Monitor is safe for concurrent use. Build it with NewMonitor, start it
// with Run; SampleRequest and ObserveServing never block.
type Monitor struct {
	// Clock, when set before Run, is the time; nil means time.Now.
	Clock func() time.Time
	// Capture, when set before Run, is the capture section under whose
	// redaction each would-be block keeps its request (capture.Of), for
	// explain and for exceptions retire, which makes it a must_pass case:
	// at most MaxSightings of them, each body bounded by its
	// max_body_bytes. Nil keeps no request content (capture.enabled off).
	Capture *capture.Config

	cfg    Config
	share  uint32
	log    *slog.Logger
	notify func(Transition)
	m      *monitorMetrics

	set     atomic.Pointer[variantSet]
	serving chan *ruleset.Ruleset // the newest baseline to build for
	queue   chan *sample
	queued  atomic.Int64 // bytes in queue

	checkMu sync.Mutex // one Check at a time: a transition is told once

	mu        sync.Mutex
	stats     map[string]*stats // by exception ID
	sightings []Sighting        // the newest would-be blocks, oldest first
	notified  map[string]Status // the last status told of, by exception ID
}

// MaxSightings is how many would-be blocks are kept, all exceptions
// together, for explain.
const MaxSightings = 200

// Transition is an exception that became stale or expired, for a
// notification.
type Transition struct {
	Exception Exception
	Status    Status
	Baseline  string
	Time      time.Time
	Reason    string
}

// Sighting is a would-be block: a request the baseline let through and
// would have blocked without an exception. It keeps no request content
// beyond its line (method, host, path without query) and its verdict,
// whose rule matches hold no matched values (verdict.RuleMatch).
type Sighting struct {
	RequestID string    `json:"request_id"`
	Time      time.Time `json:"time"`
	Exception string    `json:"exception"`
	Baseline  string    `json:"baseline"`
	Method    string    `json:"method"`
	Host      string    `json:"host"`
	Path      string    `json:"path"`
	ClientIP  string    `json:"client_ip"`
	// Rules are the rules behind it: those that matched without the
	// exception and not with it.
	Rules []int `json:"rules"`
	// Verdict is the variant's, for explain.
	Verdict verdict.Verdict `json:"-"`
	// Capture is the request, redacted, when Monitor.Capture is set.
	Capture *capture.Record `json:"-"`
}

// RuleCount is a rule behind would-be blocks and how many it was behind.
type RuleCount struct {
	ID    int    `json:"id"`
	Count uint64 `json:"count"`
}

// stats are one exception's measurements; they outlive a baseline swap
// that keeps the exception (its ID).
type stats struct {
	judged     atomic.Uint64
	evaluated  atomic.Uint64
	sinceBlock atomic.Uint64 // judged since the last would-be block

	mu         sync.Mutex
	since      time.Time // first judged, or the last would-be block
	wouldBlock uint64
	rules      map[int]uint64
	last       *Sighting
}

// variantSet is the served baseline, its inventory, and the variants.
type variantSet struct {
	baseline *ruleset.Ruleset
	list     []Exception
	variants []*variant
}

// sample is a request waiting to be judged by some variants.
type sample struct {
	set    *variantSet
	judge  []*variant
	req    verdict.Request
	body   []byte
	served map[int]bool // the served verdict's logging rules
	size   int64
}

// NewMonitor returns a Monitor for cfg (validated), its metrics
// registered on reg. notify, if set, is told of each exception that
// becomes stale or expired; it must not block.
func NewMonitor(cfg Config, reg prometheus.Registerer, log *slog.Logger, notify func(Transition)) *Monitor {
	return &Monitor{
		cfg: cfg, share: cfg.share(), log: log, notify: notify, m: newMonitorMetrics(reg),
		serving: make(chan *ruleset.Ruleset, 1), queue: make(chan *sample, cfg.QueueSize),
		stats: map[string]*stats{}, notified: map[string]Status{},
	}
}

// Now is the Monitor's time.
func (m *Monitor) Now() time.Time {
	if m.Clock != nil {
		return m.Clock()
	}
	return time.Now()
}

// ObserveServing implements router.ServingObserver: a new baseline gets
// its variants built by Run, off the caller's path.
func (m *Monitor) ObserveServing(s verdict.Serving) {
	for {
		select {
		case m.serving <- s.Baseline:
			return
		default:
		}
		select { // keep only the newest
		case <-m.serving:
		default:
		}
	}
}

// SampleRequest implements router.RequestSampler.
func (m *Monitor) SampleRequest(rs *ruleset.Ruleset, tx types.Transaction, req *verdict.Request, interrupted bool) func() {
	if m.share == 0 {
		return nil
	}
	set := m.set.Load()
	if set == nil || set.baseline != rs || len(set.variants) == 0 {
		return nil // variants not built yet for this baseline
	}
	if m.share < 10000 && rand.Uint32N(10000) >= m.share {
		return nil
	}
	if interrupted {
		// Blocked anyway: no exception let it through.
		return func() { m.derived(set.variants) }
	}
	matched := tx.MatchedRules()
	var judge, derived []*variant
	for _, v := range set.variants {
		if v.agrees(matched) {
			derived = append(derived, v)
		} else {
			judge = append(judge, v)
		}
	}
	if len(judge) == 0 {
		return func() { m.derived(derived) }
	}
	body, ok := m.body(tx)
	if !ok {
		return func() { m.derived(derived); m.m.dropped.Inc() }
	}
	s := &sample{set: set, judge: judge, req: req.Clone(), body: body, served: map[int]bool{}}
	for _, r := range matched {
		if l, ok := r.(interface{ Log() bool }); !ok || l.Log() {
			s.served[r.Rule().ID()] = true
		}
	}
	s.size = int64(len(body) + req.Size())
	return func() {
		m.derived(derived)
		m.offer(s)
	}
}

// body copies the request body Coraza buffered, up to MaxBodyBytes.
func (m *Monitor) body(tx types.Transaction) ([]byte, bool) {
	if !tx.IsRequestBodyAccessible() {
		return nil, true
	}
	r, err := tx.RequestBodyReader()
	if err != nil {
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(m.cfg.MaxBodyBytes)+1))
	if err != nil || len(data) > m.cfg.MaxBodyBytes {
		return nil, false
	}
	return data, true
}

// derived counts a request judged by each of vs without evaluating it:
// its verdict is the served one, which let nothing through they stand
// for.
func (m *Monitor) derived(vs []*variant) {
	for _, v := range vs {
		v.stats.judged.Add(1)
		v.stats.sinceBlock.Add(1)
		v.judged.Inc()
	}
}

// offer queues s for the workers, or drops and counts it.
func (m *Monitor) offer(s *sample) {
	if m.queued.Add(s.size) > m.cfg.QueueBytes {
		m.queued.Add(-s.size)
		m.m.dropped.Inc()
		return
	}
	select {
	case m.queue <- s:
	default:
		m.queued.Add(-s.size)
		m.m.dropped.Inc()
	}
}

// Run builds variants for each baseline that serves, judges samples and
// checks staleness and expiry every check_interval, until ctx is done.
func (m *Monitor) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range m.cfg.Workers {
		wg.Go(func() { m.work(ctx) })
	}
	tick := time.NewTicker(m.cfg.CheckInterval)
	defer tick.Stop()
	defer func() {
		wg.Wait()
		if set := m.set.Swap(nil); set != nil {
			retire(set)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case rs := <-m.serving:
			m.build(rs)
			m.Check()
		case <-tick.C:
			m.Check()
		}
	}
}

// work judges samples at a lower priority than the proxy's.
func (m *Monitor) work(ctx context.Context) {
	if err := router.LowerPriority(); err != nil {
		m.log.Warn("exception workers run at normal priority", "error", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-m.queue:
			m.evaluate(ctx, s)
			m.queued.Add(-s.size)
		}
	}
}

// evaluate judges s with each of its variants.
func (m *Monitor) evaluate(ctx context.Context, s *sample) {
	for _, v := range s.judge {
		if !v.rs.Acquire() {
			continue // retired since: another baseline serves
		}
		var body io.Reader
		if s.body != nil {
			body = bytes.NewReader(s.body)
		}
		got, err := verdict.Judge(ctx, v.rs, &s.req, body)
		v.rs.Release()
		if err != nil {
			m.m.dropped.Inc()
			m.log.Error("judging without an exception failed", "exception", v.exception, "request_id", s.req.ID, "error", err)
			continue
		}
		v.stats.evaluated.Add(1)
		v.evaluated.Inc()
		if !got.Blocked {
			m.derived([]*variant{v})
			continue
		}
		m.wouldBlock(v, s, got)
	}
}

// wouldBlock records that v's exception let s through.
func (m *Monitor) wouldBlock(v *variant, s *sample, got verdict.Verdict) {
	sg := Sighting{RequestID: s.req.ID, Time: m.Now().UTC(), Exception: v.exception, Baseline: s.set.baseline.Version,
		Method: s.req.Method, Host: s.req.Host, Path: pathOf(s.req.URI), ClientIP: s.req.ClientIP, Rules: []int{}, Verdict: got}
	for _, r := range got.Rules {
		if !s.served[r.ID] && !slices.Contains(sg.Rules, r.ID) {
			sg.Rules = append(sg.Rules, r.ID)
		}
	}
	if m.Capture != nil {
		rec := capture.Of(verdict.Block{Record: verdict.RequestRecord{ID: s.req.ID, Arm: verdict.Baseline, Status: got.Status, Verdict: got},
			Request: s.req, Body: s.body, Version: sg.Baseline, Time: sg.Time}, *m.Capture)
		sg.Capture = &rec
	}
	st := v.stats
	st.judged.Add(1)
	st.sinceBlock.Store(0)
	st.mu.Lock()
	st.wouldBlock++
	st.since = sg.Time
	for _, id := range sg.Rules {
		st.rules[id]++
	}
	st.last = &sg
	st.mu.Unlock()
	v.judged.Inc()
	v.wouldBlocks.Inc()
	m.mu.Lock()
	m.sightings = append(m.sightings, sg)
	if len(m.sightings) > MaxSightings {
		m.sightings = slices.Delete(m.sightings, 0, len(m.sightings)-MaxSightings)
	}
	m.mu.Unlock()
	m.log.Info("exception let a request through", "exception", v.exception, "request_id", sg.RequestID,
		"method", sg.Method, "host", sg.Host, "path", sg.Path, "rules", sg.Rules)
}

// pathOf is a request-target without its query.
func pathOf(uri string) string {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		return uri[:i]
	}
	return uri
}

// build compiles the variants of baseline rs, unless they are built,
// installs them and retires the previous ones.
func (m *Monitor) build(rs *ruleset.Ruleset) {
	if old := m.set.Load(); old != nil && old.baseline == rs {
		return
	}
	now := m.Now()
	set := &variantSet{baseline: rs, list: List(rs, now)}
	if m.share > 0 && !rs.Closed() {
		start := time.Now()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, e := range set.list {
			if len(set.variants) == m.cfg.MaxVariants {
				m.log.Warn("exceptions past exceptions.max_variants are not measured", "max_variants", m.cfg.MaxVariants, "exceptions", len(set.list))
				break
			}
			if !removesSome(e) {
				continue // removes nothing the ruleset loads: nothing to measure
			}
			v, err := m.variantOf(rs, e, now)
			if err != nil {
				m.log.Warn("exception not measured: the baseline without it does not compile", "exception", e.ID, "error", err.Error())
				continue
			}
			set.variants = append(set.variants, v)
		}
		runtime.ReadMemStats(&after)
		m.log.Info("exceptions measured without each", "baseline", rs.Version, "exceptions", len(set.list), "variants", len(set.variants),
			"seconds", time.Since(start).Seconds(), "heap_bytes", int64(after.HeapAlloc)-int64(before.HeapAlloc))
	}
	m.m.variants.Set(float64(len(set.variants)))
	m.m.keep(set.list)
	m.mu.Lock()
	ids := map[string]bool{}
	for _, e := range set.list {
		ids[e.ID] = true
	}
	for id := range m.stats {
		if !ids[id] {
			delete(m.stats, id) // gone with the old baseline
			delete(m.notified, id)
		}
	}
	m.mu.Unlock()
	if old := m.set.Swap(set); old != nil {
		retire(old)
	}
}

// removesSome reports whether e names a rule or tag the ruleset loads.
func removesSome(e Exception) bool { return len(e.Dangling) < len(e.Rules) }

// variantOf compiles rs without e, with its stats and series.
func (m *Monitor) variantOf(rs *ruleset.Ruleset, e Exception, now time.Time) (*variant, error) {
	w, err := Without(rs, e)
	if err != nil {
		return nil, err
	}
	v := &variant{exception: e.ID, rs: w, diff: ruleset.Compare(w, rs),
		judged: m.m.judged.WithLabelValues(e.ID), evaluated: m.m.evaluated.WithLabelValues(e.ID),
		wouldBlocks: m.m.wouldBlock.WithLabelValues(e.ID)}
	if !v.diff.RemovalOnly {
		m.log.Info("exception judged on every sample", "exception", e.ID, "why", v.diff.Why)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.stats[e.ID]
	if !ok {
		st = &stats{since: now, rules: map[int]uint64{}}
		m.stats[e.ID] = st
	}
	v.stats = st
	return v, nil
}

func retire(set *variantSet) {
	for _, v := range set.variants {
		v.rs.Retire()
	}
}

// Annotate fills list's measurements (judged, would-be blocks, the last
// one) and its stale status, judged at now.
func (m *Monitor) Annotate(list []Exception, now time.Time) {
	set := m.set.Load()
	for i := range list {
		e := &list[i]
		e.WouldBlockRules = []RuleCount{}
		if set != nil {
			e.Measured = slices.ContainsFunc(set.variants, func(v *variant) bool { return v.exception == e.ID })
		}
		m.mu.Lock()
		st := m.stats[e.ID]
		m.mu.Unlock()
		if st == nil {
			continue
		}
		e.Judged = st.judged.Load()
		e.Evaluated = st.evaluated.Load()
		st.mu.Lock()
		e.WouldBlock = st.wouldBlock
		for id, n := range st.rules {
			e.WouldBlockRules = append(e.WouldBlockRules, RuleCount{ID: id, Count: n})
		}
		if st.last != nil {
			last := *st.last
			e.LastWouldBlock = &last
		}
		st.mu.Unlock()
		e.WouldBlockRequests = m.sightingsOf(e.ID)
		slices.SortFunc(e.WouldBlockRules, func(a, b RuleCount) int { return b.Compare(a) })
		e.quiet, e.quietSince = st.quiet()
		e.Stale = e.quiet >= uint64(m.cfg.StaleAfterRequests) && now.Sub(e.quietSince) >= m.cfg.StaleAfter
		e.judge(now)
	}
}

// Compare orders rule counts by count, then ID.
func (c RuleCount) Compare(o RuleCount) int {
	switch {
	case c.Count != o.Count:
		return cmpUint(c.Count, o.Count)
	default:
		return o.ID - c.ID
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// quiet is how many requests were judged since the last would-be block
// (or the first judged), and since when.
func (st *stats) quiet() (uint64, time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sinceBlock.Load(), st.since
}

// Check judges the served baseline's exceptions now: it sets the stale
// and expired gauges and tells notify of each exception that became
// stale or expired since the last check.
func (m *Monitor) Check() {
	m.checkMu.Lock()
	defer m.checkMu.Unlock()
	set := m.set.Load()
	if set == nil {
		return
	}
	now := m.Now()
	list := slices.Clone(set.list)
	m.Annotate(list, now)
	for _, e := range list {
		m.m.stale.WithLabelValues(e.ID).Set(boolFloat(e.Stale))
		m.m.expired.WithLabelValues(e.ID).Set(boolFloat(e.Expired))
		m.mu.Lock()
		prev, seen := m.notified[e.ID]
		m.notified[e.ID] = e.Status
		m.mu.Unlock()
		if (seen && prev == e.Status) || m.notify == nil {
			continue
		}
		switch e.Status {
		case Expired:
			m.notify(Transition{Exception: e, Status: Expired, Baseline: set.baseline.Version, Time: now,
				Reason: "exception " + e.ID + " (" + e.Where() + ") expired: it was in force through " + e.Expires + "; renew it or retire it"})
		case Stale:
			m.notify(Transition{Exception: e, Status: Stale, Baseline: set.baseline.Version, Time: now,
				Reason: fmt.Sprintf("exception %s (%s) is stale: no would-be block in %d requests judged without it since %s; retire it",
					e.ID, e.Where(), e.quiet, e.quietSince.UTC().Format(time.RFC3339))})
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MaxWouldBlockRequests is how many request IDs Exception.WouldBlockRequests
// lists.
const MaxWouldBlockRequests = 10

// sightingsOf lists the request IDs of exception id's would-be blocks
// still kept, newest first.
func (m *Monitor) sightingsOf(id string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []string{}
	for i := len(m.sightings) - 1; i >= 0 && len(out) < MaxWouldBlockRequests; i-- {
		if sg := m.sightings[i]; sg.Exception == id && !slices.Contains(out, sg.RequestID) {
			out = append(out, sg.RequestID)
		}
	}
	return out
}

// Sighting returns the would-be block of request id, newest first.
func (m *Monitor) Sighting(id string) (Sighting, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.sightings) - 1; i >= 0; i-- {
		if m.sightings[i].RequestID == id {
			return m.sightings[i], true
		}
	}
	return Sighting{}, false
}
