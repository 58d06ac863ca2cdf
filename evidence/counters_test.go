package evidence

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/wafcanary/wafcanary/verdict"
)

// The fleet's controller sums these series: they must count what the
// collector counts, scope included, and name the rules behind each.
func TestEvidenceCounters(t *testing.T) {
	e := NewCounters(prometheus.NewRegistry())
	// increase() cannot see a series' first sample: the fixed series must
	// exist from the start. (Asking for one by its labels would create it.)
	if p, d := testutil.CollectAndCount(e.pairs), testutil.CollectAndCount(e.disagreements); p != 2 || d != 4 {
		t.Fatalf("%d pair and %d disagreement series before any count, want 2 and 4", p, d)
	}
	e.CountPair(verdict.Baseline)
	e.CountPair(verdict.Baseline)
	e.CountPair(verdict.Candidate)
	e.CountDisagreement(verdict.NewBlock, true, []int{942100})
	e.CountDisagreement(verdict.NewBlock, false, []int{942100, 932160})
	e.CountDisagreement(verdict.Agree, false, []int{1}) // not a disagreement: not counted
	for _, c := range []struct {
		got  prometheus.Counter
		want float64
	}{
		{e.pairs.WithLabelValues("baseline"), 2},
		{e.pairs.WithLabelValues("candidate"), 1},
		{e.disagreements.WithLabelValues("new_block", "in"), 1},
		{e.disagreements.WithLabelValues("new_block", "out"), 1},
		{e.rules.WithLabelValues("new_block", "in", "942100"), 1},
		{e.rules.WithLabelValues("new_block", "out", "942100"), 1},
		{e.rules.WithLabelValues("new_block", "out", "932160"), 1},
	} {
		if v := testutil.ToFloat64(c.got); v != c.want {
			t.Errorf("%s = %v, want %v", c.got.Desc(), v, c.want)
		}
	}
	if n := testutil.CollectAndCount(e.disagreements); n != 4 {
		t.Errorf("%d disagreement series, want 4 (an unknown kind makes none)", n)
	}
	if n := testutil.CollectAndCount(e.rules); n != 3 {
		t.Errorf("%d rule series, want 3 (an unknown kind names none)", n)
	}
}
