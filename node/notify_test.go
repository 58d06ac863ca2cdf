package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/fleet/fleettest"
	"github.com/wafcanary/wafcanary/notification"
)

// A real loopback receiver gets one JSON POST per event of a rollout's
// life: refused gates, start, approval needed (once, however many
// analyses wait), the approved step, promotion, undo, and a second
// rollout's start and rollback; holds send nothing.
func TestWebhookGetsEachEvent(t *testing.T) {
	var mu sync.Mutex
	var got []notification.Message
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m notification.Message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("not a JSON message: %q", b)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer recv.Close()
	events := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, m := range got {
			out = append(out, string(m.Event))
		}
		return out
	}
	cfg := rolloutConfig(t, newUpstream(t).URL)
	cfg.Rollout.Steps[1].Approval = true
	cfg.Notifications.Webhooks = []notification.Webhook{{URL: recv.URL + "/hook", Format: notification.JSON}}
	ls := startLive(t, cfg)
	ctx := context.Background()
	api := ls.api()

	if _, err := api.Start(ctx, admin.StartRequest{Candidate: "../cmd/wafcanary/testdata/rulesets/engine-off.conf", Reason: "no", Actor: "mallory"}); err == nil {
		t.Fatal("a candidate that turns the engine off passed its gates")
	}
	ls.start(t, "embedded:candidate-exclusion.conf")
	send(t, ls.proxy, 200, 0, []demo.Request{ticketFP()})
	settle(t, ls.s, 150)
	for range 3 {
		if _, err := ls.s.rollout.Step(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if st := ls.s.Status(); !st.Awaiting || st.Step != 0 {
		t.Fatalf("not awaiting approval: %+v", st)
	}
	for _, req := range []struct {
		action admin.Action
		full   bool
	}{{admin.Promote, false}, {admin.Promote, true}, {admin.Undo, false}} {
		if _, err := api.Do(ctx, req.action, admin.ActionRequest{Actor: "alice", Reason: "r", Full: req.full}); err != nil {
			t.Fatalf("%s: %v", req.action, err)
		}
	}
	ls.start(t, "embedded:candidate-exclusion.conf")
	if _, err := api.Do(ctx, admin.Rollback, admin.ActionRequest{Actor: "bob", Reason: "pager"}); err != nil {
		t.Fatal(err)
	}
	want := "gates_refused start approval step promotion undo start rollback"
	fleettest.WaitFor(t, 10*time.Second, want, func() bool { return strings.Join(events(), " ") == want })
	time.Sleep(200 * time.Millisecond) // nothing more must come
	if g := strings.Join(events(), " "); g != want {
		t.Fatalf("events %q, want %q", g, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if m := got[0]; m.Actor != admin.TokenIdentity || !strings.Contains(m.Reason, "SecRuleEngine") || m.Candidate == "" {
		t.Errorf("gates_refused: %+v", m)
	}
	if m := got[2]; m.Step != 1 || m.Steps != 3 || !strings.Contains(m.Reason, "needs approval") {
		t.Errorf("approval: %+v", m)
	}
	if m := got[4]; m.Candidate == "" || m.State != "promoted" || m.Baseline != m.Candidate {
		t.Errorf("promotion: %+v", m)
	}
	if m := got[7]; m.Actor != admin.TokenIdentity || m.Reason != "pager" || m.State != "rolled_back" {
		t.Errorf("rollback: %+v", m)
	}
	body := httpGet(t, http.DefaultClient, ls.admin+"/metrics").body
	if v, ok := metricValue(body, `wafcanary_notifications_total{event="rollback",result="sent"}`); !ok || v != 1 {
		t.Errorf("sent rollbacks %v %v", v, ok)
	}
}

// An event sent just before shutdown is delivered before Run returns:
// the process waits for the notifier's bounded drain, or the pager would
// miss the last rollback of a replica being stopped.
func TestShutdownDeliversTheLastEvent(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // a slow receiver: the delivery is in flight at shutdown
		var m notification.Message
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, string(m.Event))
		mu.Unlock()
	}))
	defer recv.Close()
	cfg := rolloutConfig(t, newUpstream(t).URL)
	cfg.Notifications.Webhooks = []notification.Webhook{{URL: recv.URL + "/hook", Format: notification.JSON}}
	ls := startLive(t, cfg)
	ls.start(t, "embedded:candidate-exclusion.conf")
	if _, err := ls.api().Do(context.Background(), admin.Rollback, admin.ActionRequest{Actor: "bob", Reason: "pager"}); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, func() { close(release) })
	ls.stop() // returns once Run has
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, " ") != "start rollback" {
		t.Errorf("delivered by the time Run returned: %q, want start and rollback", got)
	}
}
