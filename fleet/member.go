package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/wafcanary/wafcanary/rollout"
)

// Follower is the part of the rollout controller a member drives.
type Follower interface {
	Sync(ctx context.Context, st rollout.State, load rollout.Loader, adopt func() bool) error
}

// Served says what a replica serves right now.
type Served struct {
	Baseline            string  `json:"baseline"`
	Candidate           string  `json:"candidate,omitempty"`
	CandidatePercent    float64 `json:"candidate_percent"`
	ShadowSamplePercent float64 `json:"shadow_sample_percent"`
}

// Replica is what each replica publishes about itself, on its lease: a
// replica that dies disappears from the list within lease_ttl.
type Replica struct {
	ID    string `json:"id"`
	Admin string `json:"admin,omitempty"`
	Served
	// StateRevision is the revision of the shared state the replica has
	// applied: one behind the others means it is stuck.
	StateRevision int64     `json:"state_revision"`
	Leader        bool      `json:"leader"`
	Updated       time.Time `json:"updated"`
}

// Reporter is told about leadership and the store's reachability, for
// metrics.
type Reporter interface {
	ReportFleet(leading, storeUp bool)
}

// Member is one replica's part in the fleet: it campaigns for leadership,
// applies every change of the shared state to the local router within a
// second, and publishes what it serves. It implements rollout.Leadership.
type Member struct {
	cli      *clientv3.Client
	cfg      Config
	store    *Store
	id       string
	admin    string
	follower Follower
	served   func() Served
	reporter Reporter
	log      *slog.Logger

	leading atomic.Bool
	leader  atomic.Value // string
	up      atomic.Bool
	mu      sync.Mutex
	lastErr string
	lease   clientv3.LeaseID
}

// MemberOptions wire a Member.
type MemberOptions struct {
	Client   *clientv3.Client
	Config   Config
	Store    *Store
	ID       string // unique per replica
	Admin    string // admin address, shown to operators sent elsewhere
	Follower Follower
	Served   func() Served
	Reporter Reporter // optional
	Logger   *slog.Logger
}

// NewMember returns a member; call Run to take part.
func NewMember(o MemberOptions) *Member {
	m := &Member{cli: o.Client, cfg: o.Config, store: o.Store, id: o.ID, admin: o.Admin, follower: o.Follower,
		served: o.Served, reporter: o.Reporter, log: o.Logger}
	m.leader.Store("")
	return m
}

// SetFollower sets the controller the member drives, for wiring where
// the controller needs the member first (as its Leadership).
func (m *Member) SetFollower(f Follower) { m.follower = f }

// name is how this replica appears as leader: its ID and, so an operator
// sent elsewhere knows where to go, its admin address.
func (m *Member) name() string {
	if m.admin == "" {
		return m.id
	}
	return m.id + " (admin " + m.admin + ")"
}

// Leading implements rollout.Leadership.
func (m *Member) Leading() bool { return m.leading.Load() }

// Leader implements rollout.Leadership.
func (m *Member) Leader() string { return m.leader.Load().(string) }

// ID is this replica's name in the fleet.
func (m *Member) ID() string { return m.id }

// StoreUp reports whether etcd answered the last check, and if not why.
func (m *Member) StoreUp() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.up.Load(), m.lastErr
}

func (m *Member) setUp(err error) {
	m.mu.Lock()
	was := m.up.Load()
	m.up.Store(err == nil)
	if err != nil {
		m.lastErr = err.Error()
	} else {
		m.lastErr = ""
	}
	m.mu.Unlock()
	switch {
	case was && err != nil:
		m.log.Error("state store unreachable: serving the last routing, no rollout decisions until it returns", "error", err.Error())
	case !was && err == nil:
		m.log.Info("state store reachable", "replica", m.id)
	}
	m.report()
}

func (m *Member) report() {
	if m.reporter != nil {
		m.reporter.ReportFleet(m.leading.Load(), m.up.Load())
	}
}

// Run takes part in the fleet until ctx is done: it follows the state,
// checks the store every second and campaigns for leadership.
func (m *Member) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.follow(ctx) }()
	go func() { defer wg.Done(); m.campaign(ctx) }()
	m.check(ctx)
	wg.Wait()
}

// Sync reads the shared state and serves it; followers call it on start
// and whenever the watch may have missed something.
func (m *Member) Sync(ctx context.Context) error {
	_, err := m.sync(ctx)
	return err
}

// sync is Sync, returning the store's revision at the read: a watch
// from the next one misses nothing, and unlike the state's own revision
// it is not lost when etcd compacts an idle key's history.
func (m *Member) sync(ctx context.Context) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	resp, err := m.cli.Get(cctx, m.store.key(keyState))
	if err != nil {
		return 0, fmt.Errorf("etcd: reading the rollout state: %w", err)
	}
	st, rev, err := decodeState(resp.Kvs)
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, m.apply(ctx, st, rev)
}

func (m *Member) apply(ctx context.Context, st rollout.State, rev int64) error {
	err := m.follower.Sync(ctx, st, m.store.LoadRuleset, func() bool {
		if rev < m.store.revision() {
			return false
		}
		m.store.adopt(rev)
		return true
	})
	if err != nil {
		m.log.Error("cannot serve the fleet's rulesets; serving the previous ones", "state_revision", rev, "error", err.Error())
	}
	m.publish()
	return err
}

// follow watches the state key and applies every change.
func (m *Member) follow(ctx context.Context) {
	for ctx.Err() == nil {
		at, err := m.sync(ctx)
		if err != nil {
			m.setUp(err)
			sleep(ctx, time.Second)
			continue
		}
		wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), m.store.key(keyState), clientv3.WithRev(at+1))
		for resp := range wch {
			if err := resp.Err(); err != nil {
				m.log.Warn("state watch interrupted; reading the state again", "error", err.Error())
				break
			}
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				st, rev, err := decodeState([]*mvccpb.KeyValue{ev.Kv})
				if err != nil {
					m.log.Error("ignoring unreadable rollout state", "error", err.Error())
					continue
				}
				_ = m.apply(ctx, st, rev)
			}
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// check probes etcd every second: it is what status and metrics report,
// and on recovery the state is read again in case the watch missed a
// change while the connection was down.
func (m *Member) check(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	beat := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
		_, err := m.cli.Get(cctx, m.store.key(keyState), clientv3.WithCountOnly())
		cancel()
		wasUp := m.up.Load()
		if ctx.Err() != nil {
			return
		}
		m.setUp(err)
		if err == nil && !wasUp {
			_ = m.Sync(ctx)
		}
		if beat++; beat%5 == 0 && err == nil {
			m.publish() // a heartbeat: Updated shows the replica is alive
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// campaign runs elections until ctx is done: one session (lease) at a
// time, leadership held until the session ends.
func (m *Member) campaign(ctx context.Context) {
	ttl := int(m.cfg.LeaseTTL / time.Second)
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(m.cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		m.mu.Lock()
		m.lease = sess.Lease()
		m.mu.Unlock()
		m.publish()
		m.lead(ctx, sess)
		sess.Close()
		sleep(ctx, 200*time.Millisecond)
	}
}

func (m *Member) lead(ctx context.Context, sess *concurrency.Session) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	el := concurrency.NewElection(sess, m.store.key(keyLeader))
	go func() {
		for resp := range el.Observe(cctx) {
			if len(resp.Kvs) > 0 {
				m.leader.Store(string(resp.Kvs[0].Value))
			}
		}
	}()
	if err := el.Campaign(cctx, m.name()); err != nil {
		return
	}
	// Decisions build on the newest state, not on what the watch has
	// delivered so far.
	if err := m.Sync(cctx); err != nil {
		m.log.Error("elected but cannot read the state; resigning", "error", err.Error())
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.RequestTimeout)
		_ = el.Resign(rctx)
		rcancel()
		return
	}
	m.store.setFence(clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()), true)
	m.leading.Store(true)
	m.leader.Store(m.name())
	m.log.Info("leading the fleet's rollout", "replica", m.id)
	m.report()
	m.publish()
	<-cctx.Done()
	m.leading.Store(false)
	m.store.setFence(clientv3.Cmp{}, false)
	m.report()
	if ctx.Err() == nil {
		m.log.Warn("leadership lost (lease expired: etcd unreachable or this process stalled)", "replica", m.id)
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.RequestTimeout)
	_ = el.Resign(rctx) // lets another replica take over now, not after the lease
	rcancel()
}

// publish writes this replica's record on its lease.
func (m *Member) publish() {
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	if lease == 0 {
		return
	}
	r := Replica{ID: m.id, Admin: m.admin, Served: m.served(), StateRevision: m.store.revision(),
		Leader: m.leading.Load(), Updated: time.Now().UTC()}
	b, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.RequestTimeout)
	defer cancel()
	if _, err := m.cli.Put(ctx, m.store.key(keyReplicas+m.id), string(b), clientv3.WithLease(lease)); err != nil && !errors.Is(err, context.Canceled) {
		m.log.Debug("replica record not published", "error", err.Error())
	}
}

// Replicas lists every live replica's record, by ID.
func (m *Member) Replicas(ctx context.Context) ([]Replica, error) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	resp, err := m.cli.Get(cctx, m.store.key(keyReplicas), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: replicas: %w", err)
	}
	out := make([]Replica, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r Replica
		if json.Unmarshal(kv.Value, &r) == nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
