package node

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/rollout"
)

// retirement writes the served baseline without exception id into a new
// directory, as exceptions retire does (from the bundle the admin API
// serves), and returns the candidate's path.
func (ls *liveServer) retirement(t *testing.T, id string) string {
	t.Helper()
	bundle, err := ls.api().ServedBaseline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	base, err := bundle.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Retire()
	r, err := exception.Retire(base, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range r.Files {
		if strings.HasPrefix(name, "@") {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.FromSlash(r.Main))
}

// badRequest reports whether err is the API's 400: the request's fault.
func badRequest(err error) bool {
	var e *admin.Error
	return errors.As(err, &e) && e.Status == http.StatusBadRequest
}

// steps drives the rollout one analysis per step, traffic with the ticket
// false positive before each, and returns the decisions.
func (ls *liveServer) steps(t *testing.T, n int, offset int) []rollout.Decision {
	t.Helper()
	var out []rollout.Decision
	now := time.Now()
	for i := range n {
		send(t, ls.proxy, 200, offset+i*1000, []demo.Request{ticketFP()})
		settle(t, ls.s, 150)
		now = now.Add(time.Minute)
		d, err := ls.s.rollout.Step(context.Background(), now)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		out = append(out, d)
		if d.Action == rollout.ActionPromote || d.Action == rollout.ActionRollback {
			break
		}
	}
	return out
}

// TestRetireExceptionLive retires exceptions by canary on a real node:
// the stale one (a Host nothing sends to) is promoted through every step,
// its retirement journalled; the one the traffic needs (the shipped
// 930120 exception on /support/tickets) is rolled back on the new blocks
// of its false positive, naming 930120. A candidate that is not the
// baseline without exactly the exception named is refused.
func TestRetireExceptionLive(t *testing.T) {
	app := httptest.NewServer(demo.NewApp())
	t.Cleanup(app.Close)
	ctx := context.Background()

	t.Run("the stale one is promoted", func(t *testing.T) {
		start := time.Date(2026, time.May, 4, 12, 0, 0, 0, time.UTC)
		var offset atomic.Int64
		clock := func() time.Time { return start.Add(time.Duration(offset.Load())) }
		cfg := rolloutConfig(t, app.URL)
		cfg.Rulesets.Baseline = baselineWithThreeExceptions(t)
		cfg.Exceptions.SamplePercent = 100
		cfg.Exceptions.StaleAfterRequests = 100
		cfg.Exceptions.StaleAfter = 7 * 24 * time.Hour
		ls := startLiveClocked(t, cfg, clock)
		api := ls.api()
		byID := func() map[string]exception.Exception {
			t.Helper()
			l, err := api.Exceptions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]exception.Exception{}
			for _, e := range l.Exceptions {
				out[e.ID] = e
			}
			return out
		}
		deadline := time.Now().Add(30 * time.Second)
		for !byID()["10001"].Measured {
			if time.Now().After(deadline) {
				t.Fatal("the variants were not built in 30 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		send(t, ls.proxy, 200, 50000, []demo.Request{ticketFP()})
		for byID()["10001"].Judged < 200 {
			if time.Now().After(deadline) {
				t.Fatal("not every request judged in time")
			}
			time.Sleep(50 * time.Millisecond)
		}
		offset.Store(int64(8 * 24 * time.Hour))
		ls.s.exceptions.Check()
		if e := byID()["10001"]; e.Status != exception.Stale {
			t.Fatalf("10001 is %s, want stale before it is retired", e.Status)
		}

		cand := ls.retirement(t, "10001")
		// Without naming the retirement, start refuses it as dropping an
		// exclusion.
		if _, err := api.Start(ctx, admin.StartRequest{Candidate: cand, Actor: "carol", Reason: "stale"}); !refused(err) || !strings.Contains(err.Error(), "drops 1 exclusion") {
			t.Fatalf("start without retire: %v, want refused as dropping an exclusion", err)
		}
		st, err := api.Start(ctx, admin.StartRequest{Candidate: cand, Retire: "10001", Actor: "carol", Reason: "legacy.example is gone"})
		if err != nil {
			t.Fatalf("start --retire 10001: %v", err)
		}
		if r := st.Composed; r == nil || r.Retired == nil || r.Retired.ID != "10001" || !strings.Contains(r.Base, "without exception 10001") {
			t.Errorf("start's report: %+v", st.Composed)
		}
		ds := ls.steps(t, 3, 0)
		if last := ds[len(ds)-1]; len(ds) != 3 || last.Action != rollout.ActionPromote {
			t.Fatalf("decisions %+v, want advance, advance, promote", ds)
		}
		got := byID()
		if _, ok := got["10001"]; ok || len(got) != 2 {
			t.Errorf("after promotion the baseline has exceptions %v, want 10000 and the dangling directive", got)
		}
		h, err := api.History(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		i := len(h) - 1
		for i >= 0 && h[i].Action != rollout.ActionRetire {
			i--
		}
		// The shared token's identity is admin; the name the client sent
		// is kept beside it.
		if i < 0 || h[i].Claimed != "carol" || !strings.Contains(h[i].Reason, "legacy.example is gone") ||
			!strings.Contains(h[i].Reason, "retiring exception 10001") || !strings.Contains(h[i].Reason, "status stale") ||
			i+1 >= len(h) || h[i+1].Action != rollout.ActionStart {
			t.Errorf("journal: %+v, want a retire by carol, then the start", h)
		}
	})

	t.Run("the needed one is rolled back naming 930120", func(t *testing.T) {
		cfg := rolloutConfig(t, app.URL)
		cfg.Rulesets.Baseline = "../configs/rulesets/candidate-exclusion.conf"
		ls := startLive(t, cfg)
		if ls.ticket(t) == 403 {
			t.Fatal("the baseline blocks the ticket: no exception to retire")
		}
		cand := ls.retirement(t, "10000")
		if _, err := ls.api().Start(ctx, admin.StartRequest{Candidate: cand, Retire: "10000", Actor: "dave", Reason: "is it still needed?"}); err != nil {
			t.Fatalf("start --retire 10000: %v", err)
		}
		// A tenth of the traffic is the ticket: held while the evidence is
		// not conclusive, then rolled back, never advanced.
		var d rollout.Decision
		now := time.Now()
		for round := range 5 {
			send(t, ls.proxy, 200, round*1000, []demo.Request{ticketFP()})
			settle(t, ls.s, int64(200*(round+1)))
			now = now.Add(time.Minute)
			var err error
			if d, err = ls.s.rollout.Step(ctx, now); err != nil {
				t.Fatal(err)
			}
			if d.Action != rollout.ActionHold {
				break
			}
		}
		if d.Action != rollout.ActionRollback || !strings.Contains(d.Reason, "930120") {
			t.Fatalf("%s: %s, want a rollback naming 930120", d.Action, d.Reason)
		}
		t.Logf("%s: %s", d.Action, d.Reason)
		if ls.s.router.Snapshot().Candidate != nil || ls.ticket(t) == 403 {
			t.Error("after the rollback the exception does not serve")
		}
	})

	t.Run("a candidate that is not the retirement is refused", func(t *testing.T) {
		cfg := rolloutConfig(t, app.URL)
		cfg.Rulesets.Baseline = "../configs/rulesets/candidate-exclusion.conf"
		ls := startLive(t, cfg)
		for _, c := range []struct {
			name string
			req  admin.StartRequest
			want func(error) bool
		}{
			// PL2 changes more than the exception.
			{"more than the exception", admin.StartRequest{Candidate: "embedded:candidate-pl2.conf", Retire: "10000"}, refused},
			{"an exception the baseline lacks", admin.StartRequest{Candidate: ls.retirement(t, "10000"), Retire: "10042"}, badRequest},
			{"retire without a candidate", admin.StartRequest{Exclusion: "../configs/rulesets/candidate-exclusion.conf", Retire: "10000"}, badRequest},
		} {
			c.req.Actor, c.req.Reason = "test", "test"
			if _, err := ls.api().Start(ctx, c.req); !c.want(err) {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		if st := ls.s.rollout.State(); st.Phase.Active() {
			t.Errorf("a rollout started: %s", st.Phase)
		}
	})
}

// TestRenewExceptionLive renews an expired exception on a real node, as
// alice (an operator, her own token): the server writes and proves the
// change, journals it as a renew naming her and her reason, and starts it;
// four-eyes (rollout.approvals.distinct, the default) keeps her from
// promoting it, so it waits for bob, an approver. Promoted, the expiry is
// the new one and nothing else changed: the status goes from expired to
// active, the line and the origin stay.
func TestRenewExceptionLive(t *testing.T) {
	clock := func() time.Time { return time.Date(2026, time.May, 4, 12, 0, 0, 0, time.UTC) }
	cfg := testConfig(t, newUpstream(t).URL)
	for name, role := range map[string]admin.Role{"alice": admin.Operator, "bob": admin.Approver} {
		cfg.Admin.Users = append(cfg.Admin.Users, admin.User{Name: name, Role: role, TokenSHA256: admin.HashToken(personTokens[name])})
	}
	path := baselineWithThreeExceptions(t)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(text), "wafcanary/expires=2099-12-31", "wafcanary/expires=2026-05-01", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Rulesets.Baseline = path
	ls := startLiveClocked(t, cfg, clock)
	ctx := context.Background()
	alice, bob := ls.as("alice"), ls.as("bob")
	find := func(id string) (exception.Exception, string) {
		t.Helper()
		l, err := alice.Exceptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e, err := exception.Find(l.Exceptions, id)
		if err != nil {
			t.Fatal(err)
		}
		return e, l.Baseline
	}
	before, version := find("10000")
	if before.Status != exception.Expired || before.Expires != "2026-05-01" {
		t.Fatalf("before: %s, expires %s; want expired 2026-05-01", before.Status, before.Expires)
	}

	st, err := alice.Start(ctx, admin.StartRequest{Reason: "tickets still quote /etc/hosts (OPS-12)",
		Renew: &admin.Renewal{Exception: "10000", Meta: exception.Meta{Expires: "2026-11-30"}}})
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if st.State != string(rollout.Shadow) || st.Composed == nil || st.Composed.Renewed != nil || !strings.Contains(st.Composed.Base, "waiting for another approver") ||
		!strings.Contains(st.Composed.Proof, "the same") {
		t.Fatalf("renew by alice: state %s, report %+v; want it waiting for another approver", st.State, st.Composed)
	}
	if _, v := find("10000"); v != version {
		t.Fatalf("the renewal serves before it is approved: baseline %s", v)
	}
	if _, err := bob.Do(ctx, admin.Promote, admin.ActionRequest{Full: true, Reason: "renewal reviewed"}); err != nil {
		t.Fatalf("bob promotes: %v", err)
	}
	after, now := find("10000")
	if now == version || after.Expires != "2026-11-30" || after.Status != exception.Active || after.Line != before.Line ||
		after.Owner != "alice" || after.Ticket != before.Ticket {
		t.Errorf("after: baseline %s (was %s), %+v", now, version, after)
	}
	if after.Origin == nil || after.Origin.Baseline != version {
		t.Errorf("after: origin %+v, want the baseline it came with, %s: a renewal does not make it new", after.Origin, version)
	}
	h, err := alice.History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []rollout.Action
	for _, e := range h {
		actions = append(actions, e.Action)
	}
	n := len(h)
	if n < 3 || h[n-3].Action != rollout.ActionRenew || h[n-2].Action != rollout.ActionStart || h[n-1].Action != rollout.ActionPromote {
		t.Fatalf("journal actions %v, want renew, start, promote last", actions)
	}
	renew := h[n-3]
	if renew.Actor != "alice" || !strings.Contains(renew.Reason, "tickets still quote /etc/hosts") ||
		!strings.Contains(renew.Reason, "expires 2026-05-01 -> 2026-11-30") || renew.Baseline != version {
		t.Errorf("renew entry: %+v", renew)
	}
	if h[n-2].Actor != "alice" || h[n-1].Actor != "bob" {
		t.Errorf("start by %s, promote by %s; want alice, bob", h[n-2].Actor, h[n-1].Actor)
	}

	// An ID the baseline lacks, or a date that is not one: the request's
	// fault, and nothing changes.
	for _, r := range []admin.Renewal{{Exception: "10042", Meta: exception.Meta{Expires: "2026-12-31"}}, {Exception: "10000", Meta: exception.Meta{Expires: "soon"}}} {
		if _, err := alice.Start(ctx, admin.StartRequest{Reason: "x", Renew: &r}); !badRequest(err) {
			t.Errorf("renew %+v: %v, want 400", r, err)
		}
	}
	if _, v := find("10000"); v != now {
		t.Errorf("a refused renewal changed the baseline to %s", v)
	}
}
