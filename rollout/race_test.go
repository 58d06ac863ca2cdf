package rollout

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/router"
)

// swapLog is a router that keeps, in order, what each swap served.
type swapLog struct {
	fakeRouter
	base, cand string
	mu         sync.Mutex
	served     []Action
}

func (s *swapLog) Swap(next *router.Snapshot) error {
	if err := s.fakeRouter.Swap(next); err != nil {
		return err
	}
	var what Action
	switch {
	case next.Candidate != nil && next.Share == 0:
		what = ActionStart
	case next.Candidate != nil:
		what = ActionAdvance
	case next.Baseline.Version == s.cand:
		what = ActionPromote
	default:
		what = ActionRollback
	}
	s.mu.Lock()
	s.served = append(s.served, what)
	s.mu.Unlock()
	return nil
}

// The fault this guards against: a rollback's swap, taken without the
// controller's lock, landed between a promotion's (or an advance's)
// record and its swap: the promotion was journalled and never served (or
// served after the rollback). Promote and rollback at once, many times:
// what served, in order, is what the journal says, in order; the loser is
// a conflict, never another error; and the journal's times never go back.
func TestPromoteRacingRollbackServesWhatIsJournalled(t *testing.T) {
	for round := range 60 {
		h := newHarness(t, nil)
		log := &swapLog{base: h.base.Version, cand: h.cand.Version}
		log.snap = h.r.snap
		h.c.router = log
		clock := func() time.Time { return time.Now() }
		if _, err := h.c.Start(context.Background(), h.cand, Spec{Actor: "alice", Reason: "r"}, clock); err != nil {
			t.Fatal(err)
		}
		full := round%2 == 1
		var wg sync.WaitGroup
		var perr, rerr error
		begin := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-begin
			if full {
				_, perr = h.c.Promote(context.Background(), "alice", "ship it", clock)
			} else {
				_, perr = h.c.PromoteStep(context.Background(), "alice", "one step", clock)
			}
		}()
		go func() {
			defer wg.Done()
			<-begin
			_, rerr = h.c.Rollback(context.Background(), "bob", "pager", clock)
		}()
		close(begin)
		wg.Wait()
		for what, err := range map[string]error{"promote": perr, "rollback": rerr} {
			if err != nil && !errors.Is(err, ErrConflict) {
				t.Fatalf("round %d: %s: %v, want success or a conflict", round, what, err)
			}
		}
		var journalled []Action
		entries := h.entries(t)
		for i, e := range entries {
			journalled = append(journalled, e.Action)
			if i > 0 && e.Time.Before(entries[i-1].Time) {
				t.Fatalf("round %d: %s at %s journalled after %s at %s", round, e.Action, e.Time, entries[i-1].Action, entries[i-1].Time)
			}
		}
		log.mu.Lock()
		served := slices.Clone(log.served)
		log.mu.Unlock()
		if !slices.Equal(served, journalled) {
			t.Fatalf("round %d (full %v; promote %v; rollback %v): served %v, journalled %v", round, full, perr, rerr, served, journalled)
		}
	}
}
