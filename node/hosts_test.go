package node

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/fleet/fleettest"
)

// start --hosts: the candidate judges only shop.example; blog.example is
// the baseline's, not shadowed and not evidence; the list is in status,
// the journal and wafcanary_rollout_hosts, and survives a restart.
func TestStartHosts(t *testing.T) {
	up := newUpstream(t)
	cfg := rolloutConfig(t, up.URL)
	ls := startLive(t, cfg)
	ctx := context.Background()
	st, err := ls.s.Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Reason: "tickets on the shop only",
		Actor: "test", Hosts: []string{"shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.Hosts, ",") != "shop.example" {
		t.Fatalf("status hosts %v", st.Hosts)
	}
	drive := func(ls *liveServer, host string, n int) {
		t.Helper()
		for range n {
			fp := ticketFP()
			req, _ := http.NewRequest(fp.Method, ls.proxy+fp.Path, strings.NewReader(fp.Body))
			req.Header = fp.Header.Clone()
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	check := func(ls *liveServer) {
		t.Helper()
		drive(ls, "blog.example", 20)
		drive(ls, "shop.example", 5)
		fleettest.WaitFor(t, 10*time.Second, "5 shadow pairs", func() bool { return ls.s.collector.Snapshot().Pairs >= 5 })
		time.Sleep(100 * time.Millisecond) // a pair for blog.example, if one were made, would be in by now
		ev := ls.s.collector.Snapshot()
		if ev.Pairs != 5 || ev.LostBlocks.InScope+ev.LostBlocks.OutOfScope != 5 || ev.Arms[0].Requests != 5 {
			t.Errorf("evidence counts other hosts: %d pairs, %d baseline-arm requests (want 5, 5)", ev.Pairs, ev.Arms[0].Requests)
		}
		body := httpGet(t, http.DefaultClient, ls.admin+"/metrics").body
		if v, ok := metricValue(body, `wafcanary_rollout_hosts{host="shop.example"}`); !ok || v != 1 {
			t.Errorf("wafcanary_rollout_hosts: %v %v", v, ok)
		}
		if v, ok := metricValue(body, `wafcanary_requests_total{action="blocked",arm="outside"}`); !ok || v < 20 {
			t.Errorf("requests on other hosts are not counted as outside: %v %v", v, ok)
		}
	}
	check(ls)
	h, err := ls.s.History(0)
	if err != nil || !strings.Contains(h[len(h)-1].Reason, "[candidate judges only shop.example]") {
		t.Errorf("journal: %v %+v", err, h)
	}
	ls.stop()
	again := startLive(t, cfg)
	if got := strings.Join(again.s.Status().Hosts, ","); got != "shop.example" {
		t.Fatalf("after a restart, hosts %q", got)
	}
	check(again)
	if _, err := again.s.Do(ctx, admin.Rollback, admin.ActionRequest{Reason: "done", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if body := httpGet(t, http.DefaultClient, again.admin+"/metrics").body; strings.Contains(body, "wafcanary_rollout_hosts{") {
		t.Error("wafcanary_rollout_hosts outlives the rollout")
	}
	if _, err := again.s.Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Reason: "x", Actor: "test", Hosts: []string{"*.example"}}); err == nil {
		t.Error("a wildcard host was accepted")
	}
}

// promote moves one step, as Argo Rollouts' does; promote --full goes to
// the end and says in the journal which steps' evidence it skipped.
func TestPromoteVerbs(t *testing.T) {
	ls := startLive(t, rolloutConfig(t, newUpstream(t).URL))
	ls.start(t, "embedded:candidate-exclusion.conf")
	ctx := context.Background()
	st, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "alice", Reason: "one step"})
	if err != nil || st.State != "progressing" || st.Step != 1 || st.CandidatePercent != 50 {
		t.Fatalf("promote: %v, %s step %d at %g%%", err, st.State, st.Step, st.CandidatePercent)
	}
	st, err = ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "alice", Reason: "ship it", Full: true})
	if err != nil || st.State != "promoted" || !strings.Contains(st.LastDecision.Reason, "ship it [full promotion from step 2 of 3: the remaining steps' evidence skipped]") {
		t.Fatalf("promote --full: %v, %s, %+v", err, st.State, st.LastDecision)
	}
}
