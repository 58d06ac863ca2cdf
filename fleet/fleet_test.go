package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/fleet/fleettest"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset"
)

// recorder stands in for the rollout controller: it records the states
// the member hands it, in order.
type recorder struct {
	mu     sync.Mutex
	states []rollout.State
}

func (r *recorder) Sync(_ context.Context, st rollout.State, _ rollout.Loader, adopt func() bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if adopt() {
		r.states = append(r.states, st)
	}
	return nil
}

func (r *recorder) last() rollout.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return rollout.State{}
	}
	return r.states[len(r.states)-1]
}

type replica struct {
	m      *Member
	store  *Store
	rec    *recorder
	cancel context.CancelFunc
	done   chan struct{}
}

func testConfig(endpoint string) Config {
	c := DefaultConfig
	c.Endpoints, c.LeaseTTL, c.Prefix = []string{endpoint}, 2*time.Second, "/test/"
	return c
}

func client(t *testing.T, cfg Config) *clientv3.Client {
	t.Helper()
	cli, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func startReplica(t *testing.T, cfg Config, id string) *replica {
	t.Helper()
	return startReplicaLogging(t, cfg, id, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func startReplicaLogging(t *testing.T, cfg Config, id string, log *slog.Logger) *replica {
	t.Helper()
	cli := client(t, cfg)
	r := &replica{store: NewStore(cli, cfg, id), rec: &recorder{}, done: make(chan struct{})}
	r.m = NewMember(MemberOptions{Client: cli, Config: cfg, Store: r.store, ID: id, Follower: r.rec,
		Served: func() Served { return Served{Baseline: "b"} }, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.m.Run(ctx); close(r.done) }()
	t.Cleanup(r.stop)
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func leaderOf(t *testing.T, rs ...*replica) *replica {
	t.Helper()
	var l *replica
	fleettest.WaitFor(t, 10*time.Second, "exactly one leader", func() bool {
		n := 0
		for _, r := range rs {
			if r.m.Leading() {
				n, l = n+1, r
			}
		}
		return n == 1
	})
	return l
}

func activeState(step int) rollout.State {
	now := time.Now().UTC().Round(time.Millisecond)
	return rollout.State{Phase: rollout.Progressing, Step: step, Percent: 10, Started: now, StepStarted: now,
		Baseline: rollout.RulesetRef{Version: "base"}, Candidate: &rollout.RulesetRef{Version: "cand"}}
}

func TestLeaderFencedFollowersFollowAndFailover(t *testing.T) {
	etcd := fleettest.StartEtcd(t)
	cfg := testConfig(etcd.Endpoint())
	a, b := startReplica(t, cfg, "a"), startReplica(t, cfg, "b")
	l := leaderOf(t, a, b)
	f := a
	if l == a {
		f = b
	}
	// The follower learns the leader's name from a watch, so it may lag
	// the election by a moment; it must not lag by more.
	fleettest.WaitFor(t, 2*time.Second, "the follower naming the leader", func() bool { return f.m.Leader() == l.m.ID() })

	// Only the leader decides.
	st := activeState(1)
	if err := f.store.Commit(context.Background(), st, rollout.Entry{Time: time.Now(), Action: "advance"}); !errors.Is(err, rollout.ErrNotLeader) {
		t.Fatalf("follower's decision: got %v, want ErrNotLeader", err)
	}
	written := time.Now()
	if err := l.store.Commit(context.Background(), st, rollout.Entry{Time: time.Now(), Action: "advance"}); err != nil {
		t.Fatalf("leader's decision refused: %v", err)
	}
	fleettest.WaitFor(t, time.Second, "the follower applying the leader's state within a second", func() bool {
		return f.rec.last().Step == 1 && f.rec.last().Phase == rollout.Progressing
	})
	t.Logf("follower applied the leader's state %s after it was written", time.Since(written).Round(time.Millisecond))

	// A stale replica's write is refused even with leadership: it has
	// not seen the newest state.
	l.store.mu.Lock()
	l.store.rev--
	l.store.mu.Unlock()
	if err := l.store.Commit(context.Background(), activeState(2), rollout.Entry{Time: time.Now(), Action: "advance"}); !errors.Is(err, rollout.ErrStale) || !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("decision on a stale state: got %v, want ErrStale (a conflict, 409)", err)
	}
	if _, err := l.store.Load(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A leader that stalls keeps believing it leads; its lease ends, the
	// other replica takes over, and the stalled one's next write is
	// fenced off although its revision is current.
	l.store.mu.Lock()
	staleFence := l.store.fence
	l.store.mu.Unlock()
	l.m.mu.Lock()
	lease := l.m.lease
	l.m.mu.Unlock()
	lost := time.Now()
	if _, err := client(t, cfg).Revoke(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitFor(t, 5*time.Second, "the other replica taking over", func() bool { return f.m.Leading() })
	t.Logf("takeover %s after the leader's lease ended", time.Since(lost).Round(time.Millisecond))
	if err := f.store.Commit(context.Background(), activeState(2), rollout.Entry{Time: time.Now(), Action: "advance"}); err != nil {
		t.Fatalf("new leader's decision refused: %v", err)
	}
	if _, err := l.store.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.store.setFence(staleFence, true) // as if it had not noticed
	if err := l.store.Commit(context.Background(), activeState(3), rollout.Entry{Time: time.Now(), Action: "advance"}); !errors.Is(err, rollout.ErrNotLeader) {
		t.Fatalf("former leader's decision: got %v, want ErrNotLeader", err)
	}
	if got, _ := f.store.Load(context.Background()); got.Step != 2 {
		t.Fatalf("state step %d after the fenced write, want 2", got.Step)
	}

	// A leader that stops resigns: the other takes over at once, not
	// after the lease.
	l2 := leaderOf(t, a, b)
	other := a
	if l2 == a {
		other = b
	}
	stopped := time.Now()
	l2.stop()
	fleettest.WaitFor(t, time.Second, "takeover within a second of a clean stop", func() bool { return other.m.Leading() })
	t.Logf("takeover %s after the leader stopped", time.Since(stopped).Round(time.Millisecond))
}

func TestRollbackWithOnlyEtcd(t *testing.T) {
	etcd := fleettest.StartEtcd(t)
	cfg := testConfig(etcd.Endpoint())
	a, b := startReplica(t, cfg, "a"), startReplica(t, cfg, "b")
	l := leaderOf(t, a, b)
	if err := l.store.Commit(context.Background(), activeState(1), rollout.Entry{Time: time.Now(), Action: "start"}); err != nil {
		t.Fatal(err)
	}
	cli := NewStore(client(t, cfg), cfg, "")
	start := time.Now()
	prev, did, err := cli.Rollback(context.Background(), "ops", "too many blocks", time.Now())
	if err != nil || !did || prev.Phase != rollout.Progressing {
		t.Fatalf("rollback: %v, did %v, previous %s", err, did, prev.Phase)
	}
	fleettest.WaitFor(t, time.Second, "both replicas rolled back within a second", func() bool {
		return a.rec.last().Phase == rollout.RolledBack && b.rec.last().Phase == rollout.RolledBack
	})
	t.Logf("both replicas had the rollback %s after the command", time.Since(start).Round(time.Millisecond))
	if _, did, err := cli.Rollback(context.Background(), "ops", "again", time.Now()); err != nil || did {
		t.Fatalf("second rollback: did %v, %v; want nothing to do", did, err)
	}
	h, err := cli.History(0)
	if err != nil || len(h) != 2 || h[0].Action != "start" || h[1].Action != "rollback" || h[1].Actor != "ops" || h[1].Reason != "too many blocks" {
		t.Fatalf("journal %+v, %v", h, err)
	}
}

// Undo, like rollback, works with only etcd reachable and from a
// replica that does not lead: the record is what every replica follows.
func TestUndoWithOnlyEtcdAndFromAFollower(t *testing.T) {
	etcd := fleettest.StartEtcd(t)
	cfg := testConfig(etcd.Endpoint())
	a, b := startReplica(t, cfg, "a"), startReplica(t, cfg, "b")
	l := leaderOf(t, a, b)
	follower := a
	if l == a {
		follower = b
	}
	promoted := rollout.State{Phase: rollout.Promoted, Percent: 100, Baseline: rollout.RulesetRef{Version: "cand"},
		Baselines: []rollout.RulesetRef{{Version: "base"}, {Version: "cand"}}}
	if err := l.store.Commit(context.Background(), promoted, rollout.Entry{Time: time.Now(), Action: "promote"}); err != nil {
		t.Fatal(err)
	}
	cli := NewStore(client(t, cfg), cfg, "")
	st, err := cli.Undo(context.Background(), "", "ops", "the false positive is back", time.Now())
	if err != nil || st.Baseline.Version != "base" {
		t.Fatalf("undo: %v, baseline %s", err, st.Baseline.Version)
	}
	fleettest.WaitFor(t, time.Second, "both replicas on the undone-to baseline", func() bool {
		return a.rec.last().Baseline.Version == "base" && b.rec.last().Baseline.Version == "base"
	})
	if _, err := cli.Undo(context.Background(), "nope", "ops", "?", time.Now()); !errors.Is(err, rollout.ErrBadRequest) {
		t.Errorf("undo to a version never kept: %v", err)
	}
	// A follower's own store takes an undo too (unfenced, like rollback);
	// it must have read the state first, as its controller has.
	if _, err := follower.store.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	back, _, err := rollout.Undone(a.rec.last(), "cand", rollout.Decision{Time: time.Now(), Action: "undo", Reason: "r", Actor: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := follower.store.Commit(context.Background(), back, rollout.NewEntry(back, *back.LastDecision, 0)); err != nil {
		t.Fatalf("undo through a follower: %v", err)
	}
	if err := follower.store.Commit(context.Background(), back, rollout.Entry{Time: time.Now(), Action: "promote"}); !errors.Is(err, rollout.ErrConflict) {
		t.Errorf("a follower recorded a promotion: %v", err)
	}
	h, _ := cli.History(0)
	if len(h) != 3 || h[1].Action != "undo" || !strings.Contains(h[1].Reason, "cand -> base") {
		t.Errorf("journal %+v", h)
	}
}

func TestBundlesSecretAndStoreOutage(t *testing.T) {
	etcd := fleettest.StartEtcd(t)
	cfg := testConfig(etcd.Endpoint())
	s := NewStore(client(t, cfg), cfg, "x")
	rs, err := ruleset.LoadFS(configs.Rulesets, "candidate-exclusion.conf", "embedded:candidate-exclusion.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	if err := s.SaveRuleset(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadRuleset(context.Background(), rs.Version)
	if err != nil {
		t.Fatalf("bundle does not come back: %v", err)
	}
	got.Retire()
	// Bytes that do not hash to the version are refused.
	if _, err := client(t, cfg).Put(context.Background(), s.key(keyRulesets+"deadbeef"),
		`{"version":"deadbeef","main":"m.conf","files":{"m.conf":"`+"U2VjUnVsZUVuZ2luZSBPbgo="+`"}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadRuleset(context.Background(), "deadbeef"); err == nil {
		t.Fatal("a bundle whose bytes hash to another version was served")
	}

	s1, err := s.RoutingSecret(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := NewStore(client(t, cfg), cfg, "y").RoutingSecret(context.Background())
	if err != nil || s1 != s2 || len(s1) < 32 {
		t.Fatalf("replicas got routing secrets %q and %q (%v)", s1, s2, err)
	}

	// etcd down: the replica says so and stops leading; back: it leads
	// again and sees changes made meanwhile... by nobody, as nobody
	// could write.
	a := startReplica(t, cfg, "a")
	leaderOf(t, a)
	etcd.Stop()
	fleettest.WaitFor(t, 5*time.Second, "the store reported down", func() bool { up, _ := a.m.StoreUp(); return !up })
	fleettest.WaitFor(t, 10*time.Second, "leadership given up without the store", func() bool { return !a.m.Leading() })
	if err := a.store.Commit(context.Background(), activeState(1), rollout.Entry{Time: time.Now(), Action: "start"}); err == nil {
		t.Fatal("a decision was recorded with etcd down")
	}
	etcd.Start()
	fleettest.WaitFor(t, 10*time.Second, "the store back", func() bool { up, _ := a.m.StoreUp(); return up })
	leaderOf(t, a)
}

// warnings counts the warnings a replica logs.
type warnings struct {
	slog.Handler
	n *atomic.Int64
}

func (w warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.n.Add(1)
	}
	return nil
}

// Once etcd compacts past the state key's last write (auto-compaction on
// a fleet that sits idle), a watch from that write fails at once. A
// replica must watch from the revision it read at, not loop re-reading.
func TestFollowingAfterCompaction(t *testing.T) {
	etcd := fleettest.StartEtcd(t)
	cfg := testConfig(etcd.Endpoint())
	a := startReplica(t, cfg, "a")
	leaderOf(t, a)
	if err := a.store.Commit(context.Background(), activeState(1), rollout.Entry{Time: time.Now(), Action: "advance"}); err != nil {
		t.Fatal(err)
	}
	cli := client(t, cfg)
	var last int64
	for i := range 5 {
		resp, err := cli.Put(context.Background(), fmt.Sprintf("/elsewhere/%d", i), "x")
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}
	if _, err := cli.Compact(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	var warned atomic.Int64
	b := startReplicaLogging(t, cfg, "b", slog.New(warnings{slog.DiscardHandler, &warned}))
	fleettest.WaitFor(t, 5*time.Second, "the new replica applying the state", func() bool { return b.rec.last().Step == 1 })
	if err := a.store.Commit(context.Background(), activeState(2), rollout.Entry{Time: time.Now(), Action: "advance"}); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitFor(t, 5*time.Second, "the new replica following the next decision", func() bool { return b.rec.last().Step == 2 })
	if n := warned.Load(); n != 0 {
		t.Errorf("%d warnings while following a compacted store, want none (a watch failing on compacted history)", n)
	}
}
