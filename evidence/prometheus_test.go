package evidence

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/wafcanary/wafcanary/verdict"
)

func TestSketchesFromBuckets(t *testing.T) {
	bucket := func(arm, le string, v float64) *model.Sample {
		return &model.Sample{Metric: model.Metric{"arm": model.LabelValue(arm), "le": model.LabelValue(le)}, Value: model.SampleValue(v)}
	}
	// Cumulative: 100 under 1 ms, 100 more under 2 ms, 800 more under 5 ms.
	vec := model.Vector{bucket("candidate", "0.001", 100), bucket("candidate", "0.002", 200), bucket("candidate", "0.005", 1000),
		bucket("candidate", "+Inf", 1000), bucket("baseline", "0.001", 0), bucket("baseline", "+Inf", 0)}
	sk := sketches(vec)
	if _, ok := sk[verdict.Baseline]; ok {
		t.Error("an arm without observations got a sketch")
	}
	c := sk[verdict.Candidate]
	if c == nil || c.GetCount() != 1000 {
		t.Fatalf("candidate sketch %v", c)
	}
	p50, _ := c.GetValueAtQuantile(0.5)
	p10, _ := c.GetValueAtQuantile(0.05)
	if p50 < 0.002 || p50 > 0.005 || p10 > 0.001 {
		t.Errorf("p50 %v (want in the 2-5 ms bucket), p5 %v (want under 1 ms)", p50, p10)
	}
}

// scopeCounter records how the replica's collector classified each
// disagreement: what it would add to the series the leader sums.
type scopeCounter struct{ in, out int }

func (c *scopeCounter) CountPair(verdict.Arm) {}
func (c *scopeCounter) CountDisagreement(_ verdict.Disagreement, inScope bool, _ []int) {
	if inScope {
		c.in++
	} else {
		c.out++
	}
}

// With evidence read from Prometheus, each replica's own collector still
// decides in or out of scope; resetting the source (as the controller
// does on every replica when the rollout moves) must hand it the scope.
func TestPrometheusEvidenceScopesTheReplicasCollector(t *testing.T) {
	counts := &scopeCounter{}
	local := NewCollector(counts)
	p, err := NewPrometheusEvidence(PrometheusConfig{URL: "http://127.0.0.1:1", Timeout: time.Second}, local)
	if err != nil {
		t.Fatal(err)
	}
	lost := verdict.ShadowRecord{Path: "/search", Enforcing: verdict.Candidate,
		Baseline: verdict.Verdict{Blocked: true, Rules: []verdict.RuleMatch{{ID: 942100}}}}
	now := time.Now()
	p.Reset(Windows{Scope: Scope{Paths: []string{"/search"}}, Rollout: now, Step: now})
	local.ObserveShadow(lost)
	lost.Path = "/checkout"
	local.ObserveShadow(lost)
	if counts.in != 1 || counts.out != 1 {
		t.Errorf("in scope %d, out of scope %d; want 1 and 1", counts.in, counts.out)
	}
}
