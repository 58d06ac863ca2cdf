package node

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/rollout"
)

// answer is what one API call came back with: 200, or the error's status.
func answer(err error) int {
	var e *admin.Error
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &e):
		return e.Status
	}
	return -1
}

// The fault this guards against: promote racing rollback answered 500 and
// journalled an advance (or a promotion) that never served, because the
// rollback's swap retired the candidate between the promotion's record
// and its swap; and journal times, read before the controller's lock,
// came out of order. Now one of the two takes effect first and the other
// is refused with 409 if it no longer applies; nothing is journalled for a
// refused action, every journalled action served, and the journal's times
// never go back.
func TestPromoteRacingRollback(t *testing.T) {
	ls := startLive(t, rolloutConfig(t, newUpstream(t).URL))
	ctx := context.Background()
	original := ls.s.router.Snapshot().Baseline.Version
	const rounds = 16
	for round := range rounds {
		full := round%2 == 1
		ls.start(t, "embedded:candidate-exclusion.conf")
		cand := ls.s.rollout.State().Candidate.Version
		before, err := ls.api().History(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		promoted, rolledBack := make(chan error, 1), make(chan error, 1)
		begin := make(chan struct{})
		go func() {
			<-begin
			_, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "alice", Reason: "ship it", Full: full})
			promoted <- err
		}()
		go func() {
			<-begin
			_, err := ls.api().Do(ctx, admin.Rollback, admin.ActionRequest{Actor: "bob", Reason: "pager"})
			rolledBack <- err
		}()
		close(begin)
		perr, rerr := <-promoted, <-rolledBack
		p, r := answer(perr), answer(rerr)
		for what, code := range map[string]int{"promote": p, "rollback": r} {
			if code != http.StatusOK && code != http.StatusConflict {
				t.Fatalf("round %d (full %v): %s answered %d, want 200 or 409 (promote: %v; rollback: %v)", round, full, what, code, perr, rerr)
			}
		}
		after, err := ls.api().History(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var actions []rollout.Action
		for _, e := range after[len(before):] {
			actions = append(actions, e.Action)
		}
		// What the answers say happened is what the journal says, once each.
		var want []rollout.Action
		switch {
		case p == http.StatusOK && r == http.StatusOK && full:
			t.Fatalf("round %d: promote --full and rollback both took effect", round)
		case p == http.StatusOK && r == http.StatusOK:
			want = []rollout.Action{rollout.ActionAdvance, rollout.ActionRollback}
		case p == http.StatusOK && full:
			want = []rollout.Action{rollout.ActionPromote}
		case p == http.StatusOK:
			want = []rollout.Action{rollout.ActionAdvance}
		case r == http.StatusOK:
			want = []rollout.Action{rollout.ActionRollback}
		}
		if !slices.Equal(actions, want) {
			t.Fatalf("round %d (full %v): promote %d, rollback %d; journalled %v, want %v", round, full, p, r, actions, want)
		}
		// What serves is what the state says.
		st, snap := ls.s.rollout.State(), ls.s.router.Snapshot()
		switch st.Phase {
		case rollout.RolledBack:
			if snap.Candidate != nil || snap.Baseline.Version != st.Baseline.Version {
				t.Fatalf("round %d: state rolled back, router serves %s with a candidate %v", round, snap.Baseline.Version, snap.Candidate != nil)
			}
		case rollout.Promoted:
			if snap.Candidate != nil || snap.Baseline.Version != cand || st.Baseline.Version != cand {
				t.Fatalf("round %d: state promoted to %s, router serves %s", round, st.Baseline.Version, snap.Baseline.Version)
			}
			if _, err := ls.api().Do(ctx, admin.Undo, admin.ActionRequest{Actor: "test", Reason: "next round", To: original}); err != nil {
				t.Fatal(err)
			}
		case rollout.Progressing:
			if snap.Candidate == nil || snap.Candidate.Version != cand || snap.Share.Percent() != st.Percent {
				t.Fatalf("round %d: state %s at %g%%, router serves %v at %g%%", round, st.Phase, st.Percent, snap.Candidate != nil, snap.Share.Percent())
			}
			if _, err := ls.api().Do(ctx, admin.Rollback, admin.ActionRequest{Actor: "test", Reason: "next round"}); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("round %d: state %s after promote %d, rollback %d", round, st.Phase, p, r)
		}
	}
	h, err := ls.api().History(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(h); i++ {
		if h[i].Time.Before(h[i-1].Time) {
			t.Errorf("journal entry %d (%s at %s) is older than entry %d (%s at %s)", i, h[i].Action, h[i].Time, i-1, h[i-1].Action, h[i-1].Time)
		}
	}
}
