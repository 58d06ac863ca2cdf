package router

import (
	"testing"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/wafcanary/wafcanary/verdict"
)

type panicOperator struct{ trigger string }

func (p panicOperator) Evaluate(_ plugintypes.TransactionState, v string) bool {
	if v == p.trigger {
		panic("operator failed")
	}
	return false
}

func init() {
	plugins.RegisterOperator("testPanic", func(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
		return panicOperator{trigger: o.Arguments}, nil
	})
}

func TestFailMode(t *testing.T) {
	tests := []struct {
		mode     string
		target   string
		status   int
		action   verdict.Action
		upstream bool
	}{
		{FailClosed, "/?q=boom", 500, verdict.Error, false},
		// Why: failing open lets the request through uninspected, but the
		// record still says no verdict was reached.
		{FailOpen, "/?q=boom", 200, verdict.Error, true},
		{FailClosed, "/?q=fine", 200, verdict.Allowed, true},
	}
	for i, tt := range tests {
		t.Run(tt.mode+tt.target, func(t *testing.T) {
			f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/panics.conf")}, nil, func(o *Options) { o.Proxy.FailMode = tt.mode })
			id := "fail-" + string(rune('a'+i))
			resp, _ := f.do(t, "GET", tt.target, id, nil, nil)
			rec := f.rec.byID(t, id)
			_, reached := f.up.get(id)
			if resp.StatusCode != tt.status || rec.Action != tt.action || reached != tt.upstream {
				t.Errorf("status %d action %s upstream %v, want %d %s %v", resp.StatusCode, rec.Action, reached, tt.status, tt.action, tt.upstream)
			}
		})
	}
}
