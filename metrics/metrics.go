// Package metrics turns what the router observes into Prometheus metrics.
// The metric names and labels are a contract with dashboards, alerts and
// the rollout controller; change them only with those.
package metrics

import (
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Metrics holds wafcanary's collectors. It is safe for concurrent use.
type Metrics struct {
	requests      *prometheus.CounterVec
	wafDuration   *prometheus.HistogramVec
	duration      *prometheus.HistogramVec
	ruleMatches   *prometheus.CounterVec
	shadow        *prometheus.CounterVec
	shadowDropped prometheus.Counter
	shadowDerived prometheus.Counter
	upstreamErrs  *prometheus.CounterVec
	respBlocks    *prometheus.CounterVec
	refused       *prometheus.CounterVec
	weight        prometheus.Gauge
	shadowSample  prometheus.Gauge
	rulesetInfo   *prometheus.GaugeVec
	loadFailures  *prometheus.CounterVec
	buildInfo     *prometheus.GaugeVec
	hosts         *prometheus.GaugeVec

	// The request path's series of each arm, looked up once: a
	// WithLabelValues per request hashes the label values and takes the
	// vector's lock, for series that exist from start-up anyway (and are
	// never deleted, so the handles stay live). Arm outside's series,
	// which appear only with its first request, are looked up per request.
	arms    [len(verdict.Arms)]armSeries
	refusal [len(verdict.Refusals) + 1]prometheus.Counter // by verdict.Refusal
	pairs   [2][2]prometheus.Counter                      // by baseline, candidate blocked

	// Known rule IDs per arm, with their series: matches of rules outside
	// the loaded inventory are not counted, which keeps rule_id bounded.
	// The request path reads it with one atomic load, never the snapshot
	// lock.
	known atomic.Pointer[[2]map[int]prometheus.Counter]

	mu    sync.Mutex // serialises ObserveServing
	info  [2]string  // version currently labelled per arm
	hostL []string   // hosts currently labelled
}

// armSeries are the request path's series of one arm (baseline or
// candidate).
type armSeries struct {
	requests                 [len(verdict.Actions)]prometheus.Counter // by verdict.Action
	wafDuration, duration    prometheus.Observer
	upstreamErrs, respBlocks prometheus.Counter
}

// series creates arm's series, at zero, and returns them.
func (m *Metrics) series(arm verdict.Arm) armSeries {
	var a armSeries
	for _, act := range verdict.Actions {
		a.requests[act] = m.requests.WithLabelValues(arm.String(), act.String())
	}
	a.wafDuration = m.wafDuration.WithLabelValues(arm.String())
	a.duration = m.duration.WithLabelValues(arm.String())
	a.upstreamErrs = m.upstreamErrs.WithLabelValues(arm.String())
	a.respBlocks = m.respBlocks.WithLabelValues(arm.String())
	return a
}

// Outside is the arm label of requests on a host the rollout does not
// judge (start --hosts): the baseline served them, and a fleet's
// controller, which reads arms baseline and candidate, leaves them out.
const Outside = "outside"

// Buckets for time inside the WAF: CRS costs about 2 ms a request, so the
// resolution sits between 100 µs and 100 ms. Native histograms are also
// enabled for servers that scrape them, which the controller's quantile
// comparisons prefer.
var wafBuckets = []float64{.0001, .00025, .0005, .001, .0015, .002, .003, .005, .0075, .01, .025, .05, .1, .25}

// The series a fleet's controller reads back from Prometheus (package
// evidence); named once, here, where they are written.
const (
	RequestsTotal       = "wafcanary_requests_total"
	WAFDurationSeconds  = "wafcanary_waf_duration_seconds"
	UpstreamErrorsTotal = "wafcanary_upstream_errors_total"
	ResponseBlocksTotal = "wafcanary_response_blocks_total"
	ShadowDroppedTotal  = "wafcanary_shadow_dropped_total"
	ShadowDerivedTotal  = "wafcanary_shadow_derived_total"
)

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer, version string) *Metrics {
	arm := []string{"arm"}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RequestsTotal,
			Help: "Requests judged, by the arm whose ruleset enforced (outside: a host the rollout does not judge, served by the baseline) and the WAF's action: allowed, blocked, or error (no verdict: processing failed or the client broke off).",
		}, []string{"arm", "action"}),
		wafDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        WAFDurationSeconds,
			Help:                        "Time spent inside Coraza per request, all phases, by enforcing arm.",
			Buckets:                     wafBuckets,
			NativeHistogramBucketFactor: 1.1,
		}, arm),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "wafcanary_request_duration_seconds",
			Help:                        "Whole proxied request, WAF and upstream, by enforcing arm.",
			Buckets:                     prometheus.DefBuckets,
			NativeHistogramBucketFactor: 1.1,
		}, arm),
		ruleMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_rule_matches_total",
			Help: "Matches of rules that log (not CRS bookkeeping), by enforcing arm and rule ID.",
		}, []string{"arm", "rule_id"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_shadow_verdicts_total",
			Help: "Requests judged by both rulesets (one live, one in shadow), by each one's request-phase verdict.",
		}, []string{"baseline", "candidate"}),
		shadowDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: ShadowDroppedTotal,
			Help: "Shadow samples not evaluated: queue full, body too large to capture, or evaluation failed.",
		}),
		shadowDerived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: ShadowDerivedTotal,
			Help: "Shadow pairs whose shadow verdict was not evaluated but derived from the enforcing one: the candidate only takes rules or targets away, and nothing it touches matched (counted in wafcanary_shadow_verdicts_total too).",
		}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: UpstreamErrorsTotal,
			Help: "Allowed requests the upstream failed to answer (unreachable, timed out, broke off), by arm. Clients that went away are not counted.",
		}, arm),
		respBlocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ResponseBlocksTotal,
			Help: "Requests blocked in a response phase, after the upstream answered, by arm (also counted as blocked in wafcanary_requests_total). Shadow pairs compare request phases only, so these are the blocks only the split arms see.",
		}, arm),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_requests_refused_total",
			Help: "Requests refused before any ruleset judged them, because the WAF and the upstream could read them differently or they were too long to judge, by reason: fragment (a raw # in the target), userinfo, authority (an HTTP/2 host header unlike :authority), uri_too_long, target (neither origin nor absolute form), body_truncated (an SPOE agent sent a body cut at HAProxy's buffer, spoa.on_truncated_body block), host (a non-ASCII host in an absolute-form target, which the upstream would get punycoded). Also counted as blocked, arm outside, in wafcanary_requests_total.",
		}, []string{"reason"}),
		weight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wafcanary_candidate_weight_ratio",
			Help: "Share of sticky keys the candidate enforces on, 0 to 1.",
		}),
		shadowSample: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wafcanary_shadow_sample_ratio",
			Help: "Share of requests also judged in shadow by the other ruleset, 0 to 1 (0 without a candidate).",
		}),
		rulesetInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wafcanary_ruleset_info",
			Help: "Ruleset version in service per arm, with the CRS release it runs (crs, empty for none); always 1.",
		}, []string{"arm", "version", "crs"}),
		loadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_ruleset_load_failures_total",
			Help: "Rulesets refused because they did not compile, by the arm they were meant for; the rulesets in service kept serving.",
		}, arm),
		hosts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wafcanary_rollout_hosts",
			Help: "1 for each host the candidate judges when the rollout names hosts (start --hosts, at most 50); no series when it judges every host.",
		}, []string{"host"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wafcanary_build_info",
			Help: "Build of the running wafcanary; always 1.",
		}, []string{"version", "goversion", "coraza", "coreruleset"}),
	}
	m.known.Store(&[2]map[int]prometheus.Counter{})
	reg.MustRegister(m.hosts)
	reg.MustRegister(m.requests, m.wafDuration, m.duration, m.ruleMatches, m.shadow,
		m.shadowDropped, m.shadowDerived, m.upstreamErrs, m.respBlocks, m.refused, m.weight, m.shadowSample, m.rulesetInfo, m.loadFailures, m.buildInfo)

	// Series that exist from start-up, so rates and absent() behave
	// before the first event.
	for _, a := range verdict.Arms {
		m.arms[a] = m.series(a)
		m.loadFailures.WithLabelValues(a.String())
	}
	for _, why := range verdict.Refusals {
		m.refusal[why] = m.refused.WithLabelValues(why.String())
	}
	for _, b := range []bool{false, true} {
		for _, c := range []bool{false, true} {
			m.pairs[blockedIndex(b)][blockedIndex(c)] = m.shadow.WithLabelValues(verdictLabel(b), verdictLabel(c))
		}
	}
	b := ReadBuild(version)
	m.buildInfo.WithLabelValues(b.Version, b.Go, b.Coraza, b.CoreRuleSet).Set(1)
	return m
}

// Build is what the running binary is built of, as wafcanary_build_info
// labels it and `wafcanary version` prints it.
type Build struct {
	Version     string // wafcanary's own
	Go          string
	Coraza      string
	CoreRuleSet string // the CRS embedded in the binary
}

// ReadBuild reads the running binary's build information. version is what
// the build set (-ldflags "-X main.version=..."), "dev" if nothing; then
// the module version `go install module@version` records stands in, else
// the VCS revision a build from a checkout records ("dev-" and 12 hex
// digits, "+dirty" for uncommitted changes), else "dev" stays. A version
// already read this way reads the same again. A module the binary does
// not record is "unknown".
func ReadBuild(version string) Build {
	b := Build{Version: version, Go: runtime.Version(), Coraza: "unknown", CoreRuleSet: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/corazawaf/coraza/v3":
			b.Coraza = d.Version
		case "github.com/corazawaf/coraza-coreruleset/v4":
			b.CoreRuleSet = d.Version
		}
	}
	if version != "dev" {
		return b
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		b.Version = v
		return b
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		b.Version = "dev-" + rev + dirty
	}
	return b
}

func verdictLabel(blocked bool) string {
	if blocked {
		return "blocked"
	}
	return "allowed"
}

// blockedIndex indexes pairs: 1 for blocked, 0 for allowed.
func blockedIndex(blocked bool) int {
	if blocked {
		return 1
	}
	return 0
}

// ObserveRequest counts a proxied request.
func (m *Metrics) ObserveRequest(r verdict.RequestRecord) {
	if r.Outside {
		m.observeOutside(r)
	} else {
		a := &m.arms[r.Arm]
		a.requests[r.Action].Inc()
		if r.Refused != verdict.NotRefused {
			m.refusal[r.Refused].Inc()
			return // no ruleset ran: no WAF time, no rules
		}
		a.wafDuration.Observe(r.WAFDuration.Seconds())
		a.duration.Observe(r.Duration.Seconds())
		if r.UpstreamError {
			a.upstreamErrs.Inc()
		}
		if r.BlockedInResponse {
			a.respBlocks.Inc()
		}
	}
	if r.Refused != verdict.NotRefused || len(r.Verdict.Rules) == 0 {
		return
	}
	known := m.known.Load()[r.Arm] // the ruleset's arm, outside or not: bounded by its inventory
	for _, rule := range r.Verdict.Rules {
		if c, ok := known[rule.ID]; ok {
			c.Inc()
		}
	}
}

// observeOutside is ObserveRequest's counting of a request on arm
// outside, series by series as ObserveRequest counts an arm's: looked up
// per request, so that each appears with its first event (outside has
// none at start-up, and most rollouts never have one).
func (m *Metrics) observeOutside(r verdict.RequestRecord) {
	m.requests.WithLabelValues(Outside, r.Action.String()).Inc()
	if r.Refused != verdict.NotRefused {
		m.refusal[r.Refused].Inc()
		return
	}
	m.wafDuration.WithLabelValues(Outside).Observe(r.WAFDuration.Seconds())
	m.duration.WithLabelValues(Outside).Observe(r.Duration.Seconds())
	if r.UpstreamError {
		m.upstreamErrs.WithLabelValues(Outside).Inc()
	}
	if r.BlockedInResponse {
		m.respBlocks.WithLabelValues(Outside).Inc()
	}
}

// ObserveShadow counts a shadow pair.
func (m *Metrics) ObserveShadow(s verdict.ShadowRecord) {
	m.pairs[blockedIndex(s.Baseline.Blocked)][blockedIndex(s.Candidate.Blocked)].Inc()
	if s.Derived {
		m.shadowDerived.Inc()
	}
}

// ShadowDropped counts a sample not evaluated.
func (m *Metrics) ShadowDropped() { m.shadowDropped.Inc() }

// ObserveServing publishes the share and the versions in service, and
// creates the rule series of newly loaded rulesets at zero.
func (m *Metrics) ObserveServing(s verdict.Serving) {
	m.weight.Set(s.CandidateShare)
	if s.Candidate != nil {
		m.shadowSample.Set(s.ShadowShare)
	} else {
		m.shadowSample.Set(0)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Equal(m.hostL, s.Hosts) {
		for _, h := range m.hostL {
			m.hosts.DeleteLabelValues(h)
		}
		for _, h := range s.Hosts {
			m.hosts.WithLabelValues(h).Set(1)
		}
		m.hostL = slices.Clone(s.Hosts)
	}
	known := *m.known.Load()
	defer func() { m.known.Store(&known) }()
	for _, a := range verdict.Arms {
		rs := s.Ruleset(a)
		version := ""
		if rs != nil {
			version = rs.Version
		}
		if version == m.info[a] {
			continue
		}
		if m.info[a] != "" {
			m.rulesetInfo.DeletePartialMatch(prometheus.Labels{"arm": a.String(), "version": m.info[a]})
		}
		m.info[a] = version
		known[a] = nil
		if rs == nil {
			continue
		}
		m.rulesetInfo.WithLabelValues(a.String(), version, rs.CRS.Version).Set(1)
		known[a] = m.inventory(a, rs)
	}
}

// inventory maps the IDs of rs's rules that log to their series of arm,
// created at zero. It is built once per ruleset and never mutated, so
// readers share it without a lock.
func (m *Metrics) inventory(arm verdict.Arm, rs *ruleset.Ruleset) map[int]prometheus.Counter {
	ids := rs.LoggingRuleIDs()
	out := make(map[int]prometheus.Counter, len(ids))
	for _, id := range ids {
		out[id] = m.ruleMatches.WithLabelValues(arm.String(), strconv.Itoa(id))
	}
	return out
}

// RulesetLoadFailed counts a ruleset refused for arm ("baseline" or "candidate").
func (m *Metrics) RulesetLoadFailed(arm string) { m.loadFailures.WithLabelValues(arm).Inc() }
