package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/rollout"
)

// etcdOptions reach a fleet's state in etcd directly.
type etcdOptions struct {
	endpoints []string
	prefix    string
	config    string // the client's --config
	viaEtcd   bool
}

func (o etcdOptions) set() bool { return len(o.endpoints) > 0 || o.viaEtcd }

// etcdActor is the actor journalled for an action written into etcd: no
// admin API checked an identity or a role, so it is whoever can write to
// the fleet's etcd keys; the name the client gives is kept beside it.
const etcdActor = "via-etcd"

// viaEtcd writes a rollback or an undo into etcd; every replica watching
// the state serves it within a second. It needs no replica to answer,
// only etcd, and so no identity: it is journalled as etcdActor.
func viaEtcd(cmd *cobra.Command, o etcdOptions, action admin.Action, to, reason, ticket string) error {
	cfg := fleet.DefaultConfig
	if o.viaEtcd && o.config == "" && len(o.endpoints) == 0 {
		return errUsage{errors.New("--via-etcd needs --config (its state.etcd section) or --etcd endpoints")}
	}
	if o.config != "" {
		c, err := loadConfig(o.config, nil)
		if err != nil {
			return errUsage{err}
		}
		if c.State.Backend != "etcd" {
			return errUsage{fmt.Errorf("%s: state.backend is %q, not etcd: use the admin API", o.config, c.State.Backend)}
		}
		cfg = c.State.Etcd
	}
	if len(o.endpoints) > 0 {
		cfg.Endpoints = o.endpoints
	}
	if cmd.Flags().Changed("etcd-prefix") || o.config == "" {
		cfg.Prefix = o.prefix
	}
	if err := cfg.Validate(); err != nil {
		return errUsage{fmt.Errorf("etcd: %w", err)}
	}
	if action == admin.Undo && reason == "" {
		return errUsage{errors.New("--reason is required: it is journalled with the undo")}
	}
	cli, err := cfg.Client()
	if err != nil {
		return errUnreachable{err}
	}
	defer cli.Close()
	start := time.Now()
	store := fleet.NewStore(cli, cfg, "")
	ctx := rollout.WithAttribution(cmd.Context(), rollout.Attribution{Ticket: ticket, Claimed: actor()})
	out := cmd.OutOrStdout()
	if action == admin.Undo {
		st, err := store.Undo(ctx, to, etcdActor, reason, time.Now())
		switch {
		case errors.Is(err, rollout.ErrAlreadyUndone):
			// Idempotent, as through the admin API: a second undo (two
			// operators, a retry) changes nothing and is not a failure.
			fmt.Fprintf(out, "nothing to undo: %v; every replica serves baseline %s\n", err, st.Baseline.Version)
			return nil
		case errors.Is(err, rollout.ErrConflict):
			return errConflict{err}
		case errors.Is(err, rollout.ErrBadRequest):
			return errUsage{err}
		case err != nil:
			return errUnreachable{err}
		}
		fmt.Fprintf(out, "undone in etcd (%s): %s; every replica serves baseline %s as it sees the change\n",
			time.Since(start).Round(time.Microsecond), st.LastDecision.Reason, st.Baseline.Version)
		return nil
	}
	prev, did, err := store.Rollback(ctx, etcdActor, reason, time.Now())
	if err != nil {
		return errUnreachable{err}
	}
	if !did {
		return errConflict{fmt.Errorf("nothing to roll back: the fleet's rollout is %s; to serve an earlier baseline again, use `wafcanary undo`", prev.Phase)}
	}
	fmt.Fprintf(out, "rolled back %s in etcd (%s); every replica serves baseline %s alone as it sees the change\n",
		prev.Candidate.Version, time.Since(start).Round(time.Microsecond), prev.Baseline.Version)
	return nil
}
