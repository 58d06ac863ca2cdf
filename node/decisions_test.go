package node

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/rollout"
)

// Decisions at ordinary traffic, through the real proxy with real CRS and
// the shipped policy and analysis interval: about 150 requests/s from 200
// clients, 1% attacks and 3% legitimate requests of which a third the
// baseline blocks by mistake, shadow on every request, and short steps
// (shadow 5 s, 50% 10 s, 100% 5 s, 300 requests each). An A/A candidate
// and the shipped scoped exclusion must be promoted within 2.5 minutes; a
// candidate whose extra rules make every request slower must be rolled
// back, naming WAF time.
func TestDecisionsAtOrdinaryTrafficThroughTheProxy(t *testing.T) {
	// Why not in the suite: it measures WAF time, and with the other
	// packages' tests running beside it on two cores the tail of WAF time
	// reached 90 ms and wandered, so no check could conclude. .ci/run runs
	// it alone, after the suite.
	if os.Getenv("TEST_DECISIONS_THROUGH_PROXY") == "" {
		t.Skip("needs the machine to itself (about 0.7 of a core of CRS at 150 requests/s for four minutes); run alone: TEST_DECISIONS_THROUGH_PROXY=1 go test ./node -run TestDecisionsAtOrdinaryTrafficThroughTheProxy (.ci/run does)")
	}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: demo.NewApp(), ReadHeaderTimeout: 5 * time.Second}
	go app.Serve(appLn)
	t.Cleanup(func() { app.Close() })

	dir := t.TempDir()
	base, err := os.ReadFile("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	same := filepath.Join(dir, "same.conf")
	if err := os.WriteFile(same, append([]byte("# A/A: the baseline's rules, another version\n"), base...), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t, "http://"+appLn.Addr().String())
	cfg.Routing.StickyKey = "header:X-Client-ID"
	cfg.Rollout = rollout.DefaultConfig // the shipped policy, limits and interval
	cfg.Rollout.Steps = []rollout.Step{
		{Percent: 0, MinDuration: 5 * time.Second, MinRequests: 300},
		{Percent: 50, MinDuration: 10 * time.Second, MinRequests: 300},
		{Percent: 100, MinDuration: 5 * time.Second, MinRequests: 300},
	}
	ls := startLive(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	traffic := &demo.Traffic{Target: ls.proxy, Rate: 150, Clients: 200,
		FalsePositives: demo.FalsePositiveRequests(), Weights: &demo.Weights{Benign: 96, Attacks: 1, FalsePositives: 3}}
	trafficDone := make(chan error, 1)
	go func() { trafficDone <- traffic.Run(ctx) }()
	defer func() { cancel(); <-trafficDone }()

	for _, tt := range []struct {
		name, candidate string
		scope           evidence.Scope
		want            rollout.Phase
		within          time.Duration
		mention         string
	}{
		{"A/A", same, evidence.Scope{}, rollout.Promoted, 150 * time.Second, ""},
		// Before the exclusion: the slow candidate has the baseline's
		// rules, which block the false positive the exclusion lets through.
		{"slow", "../cmd/wafcanary/testdata/rulesets/slow.conf", evidence.Scope{}, rollout.RolledBack, 150 * time.Second, "WAF time"},
		{"scoped exclusion", "embedded:candidate-exclusion.conf", evidence.Scope{Paths: []string{"/support/tickets"}, RuleIDs: []int{930120}}, rollout.Promoted, 150 * time.Second, ""},
	} {
		began := time.Now()
		if _, err := ls.s.Start(ctx, admin.StartRequest{Candidate: tt.candidate, Reason: "decisions test: " + tt.name, Actor: "test", Scope: tt.scope}); err != nil {
			t.Fatalf("%s: start: %v", tt.name, err)
		}
		var st rollout.State
		for st = ls.s.rollout.State(); st.Phase.Active() && time.Since(began) < tt.within+30*time.Second; st = ls.s.rollout.State() {
			time.Sleep(250 * time.Millisecond)
		}
		took := time.Since(began)
		reason := ""
		if st.LastDecision != nil {
			reason = st.LastDecision.Reason
		}
		t.Logf("%s: %s after %s: %s", tt.name, st.Phase, took.Round(time.Second), reason)
		switch {
		case st.Phase != tt.want:
			t.Errorf("%s: %s after %s, want %s: %s", tt.name, st.Phase, took.Round(time.Second), tt.want, reason)
		case took > tt.within:
			t.Errorf("%s: %s after %s, want within %s", tt.name, st.Phase, took.Round(time.Second), tt.within)
		case !strings.Contains(reason, tt.mention):
			t.Errorf("%s: reason %q does not name %q", tt.name, reason, tt.mention)
		}
		if st.Phase.Active() {
			if _, err := ls.s.rollout.Rollback(context.Background(), "test", "next candidate", time.Now); err != nil {
				t.Fatal(err)
			}
		}
	}
}
