package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/exception"
)

// A rollout that adds an exception and is promoted is that exception's
// origin in GET /api/v1/exceptions: its baseline, the actor and reason
// that started it, and who promoted it.
func TestExceptionsNameTheirRollout(t *testing.T) {
	app := httptest.NewServer(demo.NewApp())
	t.Cleanup(app.Close)
	ls := startLive(t, rolloutConfig(t, app.URL))
	ctx := context.Background()

	got, err := ls.api().Exceptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Exceptions) != 0 || got.Baseline != ls.s.router.Snapshot().Baseline.Version {
		t.Fatalf("the shipped baseline: %+v, want no exception", got)
	}

	if _, err := ls.api().Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Actor: "alice", Reason: "ticket form FP, OPS-12"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "bob", Reason: "checked", Full: true}); err != nil {
		t.Fatal(err)
	}
	promoted := ls.s.router.Snapshot().Baseline.Version

	got, err = ls.api().Exceptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Baseline != promoted || len(got.Exceptions) != 1 {
		t.Fatalf("after promotion: baseline %s, %d exceptions, want %s with 1", got.Baseline, len(got.Exceptions), promoted)
	}
	e := got.Exceptions[0]
	if e.ID != "10000" || e.File != "candidate-exclusion.conf" || e.Line == 0 || strings.Join(e.Rules, ",") != "930120" ||
		strings.Join(e.Targets, ",") != "ARGS:message" || e.Status != exception.Active {
		t.Errorf("exception: %+v", e)
	}
	o := e.Origin
	if o == nil || o.Baseline != promoted || o.By != "promote" || o.Actor != admin.TokenIdentity || !strings.HasPrefix(o.Reason, "ticket form FP, OPS-12") ||
		o.PromotedBy != admin.TokenIdentity || o.BeforeHistory || o.Time.IsZero() {
		t.Errorf("origin: %+v, want the rollout admin.token started and promoted", o)
	}

	// Like the rest of /api/, it needs the token.
	resp, err := http.Get(ls.admin + "/api/v1/exceptions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", resp.StatusCode)
	}
}
