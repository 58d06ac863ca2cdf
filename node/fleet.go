package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/rollout"
)

// replicaID names this replica in the fleet: state.replica_id, or the
// host name and proxy port.
func (s *Node) replicaID() string {
	if s.cfg.State.ReplicaID != "" {
		return s.cfg.State.ReplicaID
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(s.cfg.Listen)
	return host + ":" + port
}

// joinFleet wires the controller to the shared state in etcd. The
// replica serves the fleet's routing before it takes traffic when etcd
// answers; when it does not, it serves the configured baseline and
// follows as soon as etcd is back.
func (s *Node) joinFleet(opts rollout.Options, reporter *rollout.Metrics) error {
	st := s.fleetStore
	s.store = st
	s.member = fleet.NewMember(fleet.MemberOptions{
		Client: s.etcd, Config: s.cfg.State.Etcd, Store: st, ID: s.replicaID(), Admin: s.cfg.Admin.Listen,
		Served: s.served, Reporter: fleet.NewMetrics(s.reg, reporter), Logger: s.log,
	})
	opts.Store, opts.Leadership = st, s.member
	var err error
	if s.rollout, err = rollout.New(opts); err != nil {
		return err
	}
	s.member.SetFollower(s.rollout)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.State.Etcd.DialTimeout)
	defer cancel()
	if err := s.member.Sync(ctx); err != nil {
		s.log.Error("cannot read the fleet's state yet; serving the configured baseline until etcd answers", "error", err.Error())
	}
	return nil
}

// served is what this replica serves, for its fleet record.
func (s *Node) served() fleet.Served {
	snap := s.router.Snapshot()
	out := fleet.Served{Baseline: snap.Baseline.Version, CandidatePercent: snap.Share.Percent()}
	if snap.Candidate != nil {
		out.Candidate, out.ShadowSamplePercent = snap.Candidate.Version, snap.ShadowSample.Percent()
	}
	return out
}

// routingSecret is the sticky-assignment secret: configured, or kept in
// state_dir; a fleet shares one from etcd (cached in state_dir, so a
// replica restarting while etcd is down still puts clients on their arm).
func (s *Node) routingSecret() (string, error) {
	if s.cfg.Routing.HashSecret != "" {
		return s.cfg.Routing.HashSecret, nil
	}
	if s.etcd == nil {
		return stateValue(s.cfg.StateDir, "routing.secret")
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.State.Etcd.DialTimeout)
	defer cancel()
	cache := filepath.Join(s.cfg.StateDir, "fleet-routing.secret")
	secret, err := s.fleetStore.RoutingSecret(ctx)
	if err == nil {
		if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
			return "", fmt.Errorf("state_dir: %w", err)
		}
		return secret, os.WriteFile(cache, []byte(secret), 0o600)
	}
	if b, rerr := os.ReadFile(cache); rerr == nil && len(b) >= 16 {
		s.log.Warn("etcd unreachable; using the fleet's routing secret cached in state_dir", "error", err.Error())
		return string(b), nil
	}
	return "", fmt.Errorf("state.etcd: the fleet's routing secret is in etcd, which does not answer, and none is cached in %s: %w", cache, err)
}

// fleetStatus is the fleet part of the status: who leads, whether etcd
// answers, and what every replica serves, so a stuck one is visible.
func (s *Node) fleetStatus() *admin.FleetStatus {
	if s.member == nil {
		return nil
	}
	up, why := s.member.StoreUp()
	v := &admin.FleetStatus{Replica: s.member.ID(), Leader: s.member.Leader(), Leading: s.member.Leading(), StoreUp: up, StoreError: why}
	if up {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v.Replicas, _ = s.member.Replicas(ctx)
	}
	if v.Replicas == nil {
		v.Replicas = []fleet.Replica{}
	}
	return v
}
