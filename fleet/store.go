package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset"
)

// Keys under the prefix.
const (
	keyState    = "state"          // rollout.State, JSON: the routing every replica serves
	keyJournal  = "journal/"       // + time-ordered id: rollout.Entry, JSON
	keyRulesets = "rulesets/"      // + version: bundle, JSON
	keySecret   = "routing-secret" // shared sticky-assignment secret
	keyLeader   = "leader/"        // etcd election
	keyReplicas = "replicas/"      // + replica id: Replica, JSON, on the replica's lease
)

// Store keeps a fleet's rollout state, journal and ruleset bundles in etcd.
// It implements rollout.Store. Every write of the state is a transaction
// conditional on the state's revision being the one this replica last
// read or wrote (so no replica overwrites a decision it has not seen) and,
// except for rollbacks and undos (which any replica may take, as an
// operator reaching for them cannot choose the leader), on this replica
// holding the leadership (so a paused or cut-off former leader cannot
// decide).
type Store struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
	replica string

	mu    sync.Mutex
	rev   int64 // ModRevision of the state key behind this replica's state; 0: absent
	fence clientv3.Cmp
	led   bool // fence is set
}

var _ rollout.Store = (*Store)(nil)

// NewStore returns a store for replica under cfg's prefix.
func NewStore(cli *clientv3.Client, cfg Config, replica string) *Store {
	return &Store{cli: cli, prefix: cfg.Prefix, timeout: cfg.RequestTimeout, replica: replica}
}

func (s *Store) key(k string) string { return s.prefix + k }

// ctx bounds one etcd request by the store's request timeout, under the
// caller's context.
func (s *Store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.timeout)
}

// setFence makes decisions conditional on cmp (leadership held), or
// unfenced-refused when led is false.
func (s *Store) setFence(cmp clientv3.Cmp, led bool) {
	s.mu.Lock()
	s.fence, s.led = cmp, led
	s.mu.Unlock()
}

// Load implements rollout.Store: the shared state, idle if none was saved.
func (s *Store) Load(parent context.Context) (rollout.State, error) {
	ctx, cancel := s.ctx(parent)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.key(keyState))
	if err != nil {
		return rollout.State{}, fmt.Errorf("etcd: reading the rollout state: %w", err)
	}
	st, rev, err := decodeState(resp.Kvs)
	if err != nil {
		return rollout.State{}, err
	}
	s.mu.Lock()
	s.rev = rev
	s.mu.Unlock()
	return st, nil
}

func decodeState(kvs []*mvccpb.KeyValue) (rollout.State, int64, error) {
	if len(kvs) == 0 {
		return rollout.State{Phase: rollout.Idle}, 0, nil
	}
	var st rollout.State
	if err := json.Unmarshal(kvs[0].Value, &st); err != nil {
		return rollout.State{}, 0, fmt.Errorf("etcd: rollout state at %s: %w", kvs[0].Key, err)
	}
	return st, kvs[0].ModRevision, nil
}

// adopt records that this replica's state is now the one at rev.
func (s *Store) adopt(rev int64) {
	s.mu.Lock()
	if rev > s.rev {
		s.rev = rev
	}
	s.mu.Unlock()
}

// revision is the state revision this replica has adopted.
func (s *Store) revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Commit implements rollout.Store: state and journal entry in one
// transaction, fenced as the type's comment says.
func (s *Store) Commit(parent context.Context, st rollout.State, e rollout.Entry) error {
	sb, err := json.Marshal(st)
	if err != nil {
		return err
	}
	eb, err := rollout.MarshalEntry(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	rev, fence, led := s.rev, s.fence, s.led
	s.mu.Unlock()
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.key(keyState)), "=", rev)}
	if e.Action != rollout.ActionRollback && e.Action != rollout.ActionUndo {
		if !led {
			return fmt.Errorf("etcd: %w", rollout.ErrNotLeader)
		}
		cmps = append(cmps, fence)
	}
	ctx, cancel := s.ctx(parent)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(cmps...).
		Then(clientv3.OpPut(s.key(keyState), string(sb)), clientv3.OpPut(s.journalKey(e.Time), string(eb))).
		Else(clientv3.OpGet(s.key(keyState))).Commit()
	if err != nil {
		return fmt.Errorf("etcd: recording the rollout state: %w", err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if _, now, _ := decodeState(kvs); now != rev {
			return fmt.Errorf("etcd: state at revision %d, this replica's is %d: %w", now, rev, rollout.ErrStale)
		}
		return fmt.Errorf("etcd: leadership lost: %w", rollout.ErrNotLeader)
	}
	s.adopt(resp.Header.Revision)
	return nil
}

// journalKey orders entries by time, then by a random suffix so two
// replicas writing in the same nanosecond do not collide.
func (s *Store) journalKey(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%s%020d-%s", s.prefix, keyJournal, t.UnixNano(), hex.EncodeToString(b[:]))
}

// Append implements rollout.Store.
func (s *Store) Append(parent context.Context, e rollout.Entry) error {
	b, err := rollout.MarshalEntry(e)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(parent)
	defer cancel()
	if _, err := s.cli.Put(ctx, s.journalKey(e.Time), string(b)); err != nil {
		return fmt.Errorf("etcd: journal: %w", err)
	}
	return nil
}

// History returns the last n journal entries (all if n <= 0), oldest first.
func (s *Store) History(n int) ([]rollout.Entry, error) {
	ctx, cancel := s.ctx(context.Background())
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if n > 0 {
		opts = append(opts, clientv3.WithLimit(int64(n)))
	}
	resp, err := s.cli.Get(ctx, s.key(keyJournal), opts...)
	if err != nil {
		return nil, fmt.Errorf("etcd: journal: %w", err)
	}
	out := make([]rollout.Entry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e rollout.Entry
		if json.Unmarshal(kv.Value, &e) == nil {
			out = append(out, e)
		}
	}
	slices.Reverse(out)
	return out, nil
}

// SaveRuleset implements rollout.Store: the ruleset's bundle as one JSON
// value. Bundles are immutable: a version already stored is left as it is.
func (s *Store) SaveRuleset(parent context.Context, rs *ruleset.Ruleset) error {
	b, err := rs.Bundle()
	if err != nil {
		return err
	}
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	k := s.key(keyRulesets + rs.Version)
	ctx, cancel := s.ctx(parent)
	defer cancel()
	if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(v))).Commit(); err != nil {
		return fmt.Errorf("etcd: saving ruleset %s: %w", rs.Version, err)
	}
	return nil
}

// LoadRuleset implements rollout.Store: it compiles the stored bytes and
// refuses them unless they hash to the version asked for, so every
// replica serves exactly what the leader validated.
func (s *Store) LoadRuleset(parent context.Context, version string) (*ruleset.Ruleset, error) {
	ctx, cancel := s.ctx(parent)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.key(keyRulesets+version))
	if err != nil {
		return nil, fmt.Errorf("etcd: ruleset bundle %s: %w", version, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("etcd: ruleset bundle %s: %w", version, fs.ErrNotExist)
	}
	var b ruleset.Bundle
	if err := json.Unmarshal(resp.Kvs[0].Value, &b); err != nil {
		return nil, fmt.Errorf("etcd: ruleset bundle %s: %w", version, err)
	}
	if b.Version != version {
		return nil, fmt.Errorf("etcd: ruleset bundle %s names version %q", version, b.Version)
	}
	rs, err := b.Compile(nil)
	if err != nil {
		return nil, fmt.Errorf("etcd: ruleset bundle %s: %w", version, err)
	}
	return rs, nil
}

// RoutingSecret returns the fleet's sticky-assignment secret, creating it
// once: every replica must put a client on the same arm.
func (s *Store) RoutingSecret(ctx context.Context) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	k := s.key(keySecret)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, hex.EncodeToString(b[:]))).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return "", fmt.Errorf("etcd: routing secret: %w", err)
	}
	if resp.Succeeded {
		return hex.EncodeToString(b[:]), nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return "", errors.New("etcd: routing secret vanished")
	}
	return string(kvs[0].Value), nil
}

// Rollback takes the candidate off every replica with only etcd
// reachable: it writes the rolled-back state (unfenced, conditional on the
// state it read) and the replicas, watching, serve the baseline alone.
// It returns the state before, and whether there was anything to roll back.
func (s *Store) Rollback(ctx context.Context, actor, reason string, now time.Time) (rollout.State, bool, error) {
	if reason == "" {
		reason = "manual rollback"
	}
	for attempt := 0; attempt < 5; attempt++ {
		st, err := s.Load(ctx)
		if err != nil {
			return st, false, err
		}
		if !st.Phase.Active() {
			return st, false, nil
		}
		prev := st
		d := rollout.Attribute(ctx, rollout.Decision{Time: now, Action: rollout.ActionRollback, Reason: reason, Actor: actor})
		st = st.RolledBackBy(d)
		err = s.Commit(ctx, st, rollout.NewEntry(st, d, 0))
		if errors.Is(err, rollout.ErrStale) {
			continue
		}
		return prev, err == nil, err
	}
	return rollout.State{}, false, errors.New("etcd: the state kept changing; rollback not recorded")
}

// Undo makes an earlier baseline the fleet's baseline with only etcd
// reachable, as Rollback does for a candidate: the replicas, watching,
// serve it from its bundle. to is a version kept in the state (or a
// prefix of one); empty means the one before the current. It returns the
// state written.
func (s *Store) Undo(ctx context.Context, to, actor, reason string, now time.Time) (rollout.State, error) {
	for attempt := 0; attempt < 5; attempt++ {
		st, err := s.Load(ctx)
		if err != nil {
			return st, err
		}
		next, _, err := rollout.Undone(st, to, rollout.Attribute(ctx, rollout.Decision{Time: now, Action: rollout.ActionUndo, Reason: reason, Actor: actor}))
		if err != nil {
			return st, err
		}
		err = s.Commit(ctx, next, rollout.NewEntry(next, *next.LastDecision, 0))
		if errors.Is(err, rollout.ErrStale) {
			continue
		}
		return next, err
	}
	return rollout.State{}, errors.New("etcd: the state kept changing; undo not recorded")
}

// PruneRulesets implements rollout.Store: it deletes every bundle whose
// version is not in keep.
func (s *Store) PruneRulesets(parent context.Context, keep []string) error {
	ctx, cancel := s.ctx(parent)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.key(keyRulesets), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("etcd: ruleset bundles: %w", err)
	}
	var errs []error
	for _, kv := range resp.Kvs {
		if slices.Contains(keep, string(kv.Key[len(s.key(keyRulesets)):])) {
			continue
		}
		if _, err := s.cli.Delete(ctx, string(kv.Key)); err != nil {
			errs = append(errs, fmt.Errorf("etcd: deleting ruleset bundle %s: %w", kv.Key, err))
		}
	}
	return errors.Join(errs...)
}
