package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/fleet/fleettest"
	"github.com/wafcanary/wafcanary/notification"
	"github.com/wafcanary/wafcanary/rollout"
)

// The people of these tests: each their own token, its hash configured.
var personTokens = map[string]string{
	"alice": "alice-token-0123456789",
	"bob":   "bob-token-0123456789",
	"carol": "carol-token-0123456789",
	"erin":  "erin-token-0123456789",
}

func peopleConfig(t *testing.T, upstream string) Config {
	cfg := rolloutConfig(t, upstream)
	cfg.Rollout.Steps[1].Approval = true
	cfg.Rollout.Approvals.RequireTicket = true
	for name, role := range map[string]admin.Role{"alice": admin.Operator, "bob": admin.Approver, "carol": admin.Viewer, "erin": admin.Admin} {
		cfg.Admin.Users = append(cfg.Admin.Users, admin.User{Name: name, Role: role, TokenSHA256: admin.HashToken(personTokens[name])})
	}
	slices.SortFunc(cfg.Admin.Users, func(a, b admin.User) int { return strings.Compare(a.Name, b.Name) })
	return cfg
}

func (ls *liveServer) as(name string) *admin.Client {
	return &admin.Client{URL: ls.admin, Token: personTokens[name], Timeout: 5 * time.Minute}
}

// forbidden reports whether err is a 403 whose message has want.
func forbidden(err error, want string) bool {
	var e *admin.Error
	return errors.As(err, &e) && e.Status == http.StatusForbidden && strings.Contains(e.Message, want)
}

// Three people through the real admin API (issue 33): carol, a viewer,
// cannot act; alice, an operator, starts a rollout whose second step
// needs approval, with a ticket, and cannot promote it; bob, an approver,
// can; the journal names them from their credentials whatever actor the
// client sends; alice rolls back at any time. Four-eyes refuses bob's
// approval of a rollout he started; erin, an admin, promotes it as an
// emergency, journalled and notified as one. A ticket is required but
// for a rollback.
func TestPeopleRolesFourEyesTickets(t *testing.T) {
	var mu sync.Mutex
	var told []notification.Message
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m notification.Message
		json.Unmarshal(b, &m)
		mu.Lock()
		told = append(told, m)
		mu.Unlock()
	}))
	defer recv.Close()
	cfg := peopleConfig(t, newUpstream(t).URL)
	cfg.Notifications.Webhooks = []notification.Webhook{{URL: recv.URL, Format: notification.JSON}}
	ls := startLive(t, cfg)
	ctx := context.Background()
	if ls.s.adminToken != "" {
		t.Error("a token was generated in state_dir beside admin.users: an admin outside four-eyes")
	}
	start := admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Reason: "930120 false positive on support tickets",
		Scope: evidence.Scope{Paths: []string{"/support/tickets"}, RuleIDs: []int{930120}}, Actor: "mallory"}

	if _, err := ls.as("carol").Start(ctx, withTicket(start, "CHG-42")); !forbidden(err, "carol (role viewer) may not POST /api/v1/rollout/start: it needs the operator role") {
		t.Fatalf("carol's start: %v", err)
	}
	if _, err := ls.as("alice").Start(ctx, start); err == nil || !strings.Contains(err.Error(), "rollout.approvals.require_ticket") {
		t.Fatalf("a start without a ticket: %v", err)
	}
	st, err := ls.as("alice").Start(ctx, withTicket(start, "CHG-42"))
	if err != nil {
		t.Fatal(err)
	}
	if st.StartedBy != "alice" || st.Ticket != "CHG-42" || strings.Join(st.Approvers, ",") != "bob,erin" || !strings.Contains(st.FourEyes, "not alice") {
		t.Errorf("status after alice's start: started by %q, ticket %q, approvers %v, four-eyes %q", st.StartedBy, st.Ticket, st.Approvers, st.FourEyes)
	}
	send(t, ls.proxy, 200, 0, []demo.Request{ticketFP()})
	settle(t, ls.s, 150)
	if d, err := ls.s.rollout.Step(ctx, time.Now()); err != nil || d.Action != rollout.ActionAwait {
		t.Fatalf("not awaiting approval: %v %+v", err, d)
	}
	if _, err := ls.as("alice").Do(ctx, admin.Promote, admin.ActionRequest{Reason: "mine", Ticket: "CHG-42"}); !forbidden(err, "alice (role operator) may not promote: it needs the approver role") {
		t.Fatalf("alice's promote: %v", err)
	}
	if _, err := ls.as("bob").Do(ctx, admin.Promote, admin.ActionRequest{Reason: "checked"}); err == nil || !strings.Contains(err.Error(), "rollout.approvals.require_ticket") {
		t.Fatalf("a promote without a ticket: %v", err)
	}
	// Why: the client claims to be alice; the credential is bob's.
	if st, err = ls.as("bob").Do(ctx, admin.Promote, admin.ActionRequest{Reason: "checked the blocks", Ticket: "CHG-42", Actor: "alice"}); err != nil || st.Step != 1 {
		t.Fatalf("bob's approval: %v, step %d", err, st.Step)
	}
	// No ticket: a rollback is never held back.
	if _, err := ls.as("alice").Do(ctx, admin.Rollback, admin.ActionRequest{Reason: "pager"}); err != nil {
		t.Fatalf("alice's rollback: %v", err)
	}

	// bob starts the next one himself: his approval is not four eyes.
	if _, err := ls.as("bob").Start(ctx, withTicket(start, "CHG-43")); err != nil {
		t.Fatal(err)
	}
	if _, err := ls.as("bob").Do(ctx, admin.Promote, admin.ActionRequest{Reason: "mine", Ticket: "CHG-43"}); !forbidden(err, "bob started this rollout and may not approve it too") {
		t.Fatalf("bob approving his own rollout: %v", err)
	}
	if _, err := ls.as("bob").Do(ctx, admin.Promote, admin.ActionRequest{Reason: "mine", Ticket: "CHG-43", Emergency: true}); !forbidden(err, "needs the admin role") {
		t.Fatalf("bob's emergency: %v", err)
	}
	if _, err := ls.as("erin").Do(ctx, admin.Promote, admin.ActionRequest{Reason: "the outage needs it now", Ticket: "INC-7", Emergency: true, Full: true}); err != nil {
		t.Fatalf("erin's emergency promotion: %v", err)
	}

	h, err := ls.as("carol").History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		got = append(got, strings.Join([]string{string(e.Action), e.Actor, e.Claimed, e.Ticket}, "/"))
	}
	want := []string{"reload/startup//", "start/alice/mallory/CHG-42", "await_approval/controller//", "advance/bob/alice/CHG-42", "rollback/alice//", "start/bob/mallory/CHG-43", "promote/erin//INC-7"}
	if !slices.Equal(got, want) {
		t.Errorf("journal (action/actor/claimed/ticket):\n got %q\nwant %q", got, want)
	}
	if last := h[len(h)-1]; !last.Emergency || !strings.Contains(last.Reason, "emergency promotion by erin") {
		t.Errorf("the emergency promotion's entry: %+v", last)
	}
	// The changelog: alice's rollout reached clients (bob approved 50%)
	// and was rolled back, measured; bob's was promoted by erin.
	changes := rollout.Changes(h, time.Time{})
	if len(changes) != 2 {
		t.Fatalf("changes: %+v", changes)
	}
	if c := changes[0]; c.Kind != rollout.ActionRollback || c.ProposedBy != "alice" || strings.Join(c.ApprovedBy, ",") != "bob" || c.By != "alice" ||
		strings.Join(c.Tickets, ",") != "CHG-42" || c.Impact == nil || c.Impact.Status != rollout.Pass {
		t.Errorf("the rollback after exposure: %+v", c)
	}
	if c := changes[1]; c.Kind != rollout.ActionPromote || c.ProposedBy != "bob" || strings.Join(c.ApprovedBy, ",") != "erin" || !c.Emergency ||
		strings.Join(c.Tickets, ",") != "CHG-43,INC-7" || c.BackOut == "" || c.BackOut != c.From {
		t.Errorf("the emergency promotion: %+v", c)
	}
	fleettest.WaitFor(t, 10*time.Second, "the emergency promotion notified", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(told, func(m notification.Message) bool {
			return m.Event == notification.Promotion && m.Emergency && m.Actor == "erin" && m.Ticket == "INC-7"
		})
	})
}

func withTicket(req admin.StartRequest, ticket string) admin.StartRequest {
	req.Ticket = ticket
	return req
}

// A configuration with admin.token alone behaves as before users: the
// token does everything, its holder approving what it started, under
// one admin identity that the journal names, with the name the client
// sent beside it.
func TestSharedTokenAsBefore(t *testing.T) {
	cfg := rolloutConfig(t, newUpstream(t).URL)
	cfg.Admin.Token = "0123456789abcdef0123"
	ls := startLive(t, cfg)
	ctx := context.Background()
	api := ls.api()
	if _, err := api.Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Reason: "r", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	st, err := api.Do(ctx, admin.Promote, admin.ActionRequest{Reason: "one step", Actor: "alice"})
	if err != nil || st.Step != 1 || len(st.Approvers) != 0 || st.FourEyes != "" {
		t.Fatalf("promote by the token that started: %v, step %d, approvers %v %q", err, st.Step, st.Approvers, st.FourEyes)
	}
	if _, err := api.Do(ctx, admin.Rollback, admin.ActionRequest{Reason: "r", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	h, err := api.History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		got = append(got, strings.Join([]string{string(e.Action), e.Actor, e.Claimed}, "/"))
	}
	if want := "reload/startup/ start/admin/alice advance/admin/alice rollback/admin/bob"; strings.Join(got, " ") != want {
		t.Errorf("journal (action/actor/claimed): %q, want %q", got, want)
	}
}

// The same people on the status page in Chromium, each with their own
// token: it says who started the rollout, its ticket and who may approve;
// carol's rollback and alice's promote are refused naming their roles;
// bob's promote passes with a ticket and the journal shows him, the page's
// "web" beside him; alice rolls back.
func TestPeopleOnThePage(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a real Chromium; run without -short")
	}
	chromium := fleettest.Require(t, "chromium", "chromium")
	ls := startLive(t, peopleConfig(t, newUpstream(t).URL))
	if _, err := ls.as("alice").Start(context.Background(), admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Reason: "930120 FP", Ticket: "CHG-42"}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t, chromium)
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return s
	}
	// as enters who's token and the ticket, then clicks the action's
	// button and waits for its answer.
	as := func(who, ticket, button string) string {
		t.Helper()
		js := fmt.Sprintf(`document.getElementById("ticket").value = %q; document.getElementById("actionresult").textContent = ""`, ticket)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](js)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx,
			chromedp.Click("#forget"),
			chromedp.SendKeys("#token", personTokens[who]),
			chromedp.Click("#usetoken"),
			chromedp.Click(button),
		); err != nil {
			t.Fatal(err)
		}
		var got string
		fleettest.WaitFor(t, 10*time.Second, "the page's answer to "+who, func() bool {
			got = text("#actionresult")
			return got != "" && !strings.HasSuffix(got, "…")
		})
		return got
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(ls.admin+"/"), chromedp.WaitVisible(`#state[data-state="shadow"]`)); err != nil {
		t.Fatal(err)
	}
	if got := text("#people"); !strings.Contains(got, "started by alice, ticket CHG-42; may approve: bob, erin (four-eyes distinct: not alice") {
		t.Errorf("people: %q", got)
	}
	if got := as("carol", "", `button[data-action="rollback"]`); !strings.Contains(got, "refused (403): carol (role viewer) may not POST /api/v1/rollout/rollback: it needs the operator role") {
		t.Errorf("carol's rollback: %q", got)
	}
	if got := as("alice", "CHG-42", `button[data-action="promote"]:not([data-full])`); !strings.Contains(got, "refused (403): alice (role operator) may not promote: it needs the approver role") {
		t.Errorf("alice's promote: %q", got)
	}
	if got := as("bob", "CHG-42", `button[data-action="promote"]:not([data-full])`); got != "promote: done" || ls.s.Status().Step != 1 {
		t.Errorf("bob's promote: %q, step %d", got, ls.s.Status().Step)
	}
	fleettest.WaitFor(t, 10*time.Second, "the journal to show bob's approval", func() bool {
		return strings.Contains(text("#journal"), "bob (sent as web) [CHG-42]")
	})
	if got := as("alice", "", `button[data-action="rollback"]`); got != "rollback: done" || ls.s.Status().State != "rolled_back" {
		t.Errorf("alice's rollback: %q, state %s", got, ls.s.Status().State)
	}
}
