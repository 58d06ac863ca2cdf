package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

func load(t *testing.T, path string) *ruleset.Ruleset {
	t.Helper()
	rs, err := ruleset.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestSeriesExistFromStartUp(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "test")
	want := `
# HELP wafcanary_shadow_verdicts_total Requests judged by both rulesets (one live, one in shadow), by each one's request-phase verdict.
# TYPE wafcanary_shadow_verdicts_total counter
wafcanary_shadow_verdicts_total{baseline="allowed",candidate="allowed"} 0
wafcanary_shadow_verdicts_total{baseline="allowed",candidate="blocked"} 0
wafcanary_shadow_verdicts_total{baseline="blocked",candidate="allowed"} 0
wafcanary_shadow_verdicts_total{baseline="blocked",candidate="blocked"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wafcanary_shadow_verdicts_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.requests); n != 6 {
		t.Errorf("%d request series at start-up, want 2 arms x 3 actions", n)
	}
}

func TestObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "test")
	base := load(t, "../router/testdata/actions.conf")
	cand := load(t, "../router/testdata/actions-candidate.conf")
	m.ObserveServing(verdict.Serving{Baseline: base, Candidate: cand, CandidateShare: 0.25, ShadowShare: 1})

	m.ObserveRequest(verdict.RequestRecord{Arm: verdict.Baseline, Action: verdict.Blocked, WAFDuration: time.Millisecond, Duration: 2 * time.Millisecond,
		Verdict: verdict.Verdict{Blocked: true, Rules: []verdict.RuleMatch{{ID: 103}, {ID: 424242}}}}) // 424242 is not loaded: not counted
	m.ObserveRequest(verdict.RequestRecord{Arm: verdict.Candidate, Action: verdict.Allowed, UpstreamError: true})
	m.ObserveRequest(verdict.RequestRecord{Arm: verdict.Candidate, Action: verdict.Blocked, BlockedInResponse: true})
	m.ObserveShadow(verdict.ShadowRecord{Baseline: verdict.Verdict{Blocked: true, Rules: []verdict.RuleMatch{{ID: 103}, {ID: 424242}}}})
	m.ObserveShadow(verdict.ShadowRecord{Baseline: verdict.Verdict{Blocked: true, Rules: []verdict.RuleMatch{{ID: 103}}}, Candidate: verdict.Verdict{Blocked: true, Rules: []verdict.RuleMatch{{ID: 103}}}})
	m.ObserveShadow(verdict.ShadowRecord{Derived: true})
	m.ShadowDropped()
	m.ObserveRequest(verdict.RequestRecord{Arm: verdict.Baseline, Action: verdict.Blocked, Outside: true, Refused: verdict.RefusedFragment, Status: 400})
	// Outside's series appear with their events only (none for upstream
	// errors below); its rule matches count under the ruleset's arm.
	m.ObserveRequest(verdict.RequestRecord{Arm: verdict.Baseline, Action: verdict.Allowed, Outside: true, WAFDuration: time.Millisecond,
		Verdict: verdict.Verdict{Rules: []verdict.RuleMatch{{ID: 103}}}})
	if n := testutil.CollectAndCount(m.wafDuration); n != 3 {
		t.Errorf("%d WAF time series, want baseline, candidate and outside", n)
	}
	if v := testutil.ToFloat64(m.refused.WithLabelValues("fragment")); v != 1 {
		t.Errorf("refused{fragment} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.requests.WithLabelValues("outside", "blocked")); v != 1 {
		t.Errorf("requests{outside,blocked} = %v, want the refusal", v)
	}
	if v := testutil.ToFloat64(m.shadowDerived); v != 1 {
		t.Errorf("derived pairs = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.shadow.WithLabelValues("allowed", "allowed")); v != 1 {
		t.Errorf("derived pair not among the verdicts: allowed/allowed = %v", v)
	}

	want := `
# HELP wafcanary_candidate_weight_ratio Share of sticky keys the candidate enforces on, 0 to 1.
# TYPE wafcanary_candidate_weight_ratio gauge
wafcanary_candidate_weight_ratio 0.25
# HELP wafcanary_shadow_dropped_total Shadow samples not evaluated: queue full, body too large to capture, or evaluation failed.
# TYPE wafcanary_shadow_dropped_total counter
wafcanary_shadow_dropped_total 1
# HELP wafcanary_upstream_errors_total Allowed requests the upstream failed to answer (unreachable, timed out, broke off), by arm. Clients that went away are not counted.
# TYPE wafcanary_upstream_errors_total counter
wafcanary_upstream_errors_total{arm="baseline"} 0
wafcanary_upstream_errors_total{arm="candidate"} 1
# HELP wafcanary_response_blocks_total Requests blocked in a response phase, after the upstream answered, by arm (also counted as blocked in wafcanary_requests_total). Shadow pairs compare request phases only, so these are the blocks only the split arms see.
# TYPE wafcanary_response_blocks_total counter
wafcanary_response_blocks_total{arm="baseline"} 0
wafcanary_response_blocks_total{arm="candidate"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wafcanary_candidate_weight_ratio", "wafcanary_shadow_dropped_total", "wafcanary_upstream_errors_total", "wafcanary_response_blocks_total"); err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(m.requests.WithLabelValues("baseline", "blocked")); v != 1 {
		t.Errorf("baseline blocked = %v", v)
	}
	if v := testutil.ToFloat64(m.ruleMatches.WithLabelValues("baseline", "103")); v != 2 {
		t.Errorf("rule 103 matches = %v", v)
	}
	if v := testutil.ToFloat64(m.shadow.WithLabelValues("blocked", "allowed")); v != 1 {
		t.Errorf("lost-block pairs = %v", v)
	}
	// Rule series: the logging rules of each loaded ruleset, nothing else.
	// actions.conf has six logging rules, the candidate one.
	if n := testutil.CollectAndCount(m.ruleMatches); n != 7 {
		t.Errorf("%d rule series, want 7", n)
	}

	// A new candidate version replaces the info series instead of adding one.
	cand2 := load(t, "../router/testdata/actions.conf")
	m.ObserveServing(verdict.Serving{Baseline: base, Candidate: cand2})
	info := `
# HELP wafcanary_ruleset_info Ruleset version in service per arm, with the CRS release it runs (crs, empty for none); always 1.
# TYPE wafcanary_ruleset_info gauge
wafcanary_ruleset_info{arm="baseline",crs="",version="` + base.Version + `"} 1
wafcanary_ruleset_info{arm="candidate",crs="",version="` + cand2.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(info), "wafcanary_ruleset_info"); err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(m.shadowSample); v != 0 {
		t.Errorf("shadow sample ratio %v after snapshot without shadow", v)
	}
}
