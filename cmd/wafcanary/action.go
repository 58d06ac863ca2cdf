package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/fleet"
)

func newActionCmd(action admin.Action, short string) *cobra.Command {
	o := &clientOptions{}
	var reason, to, ticket string
	var full, emergency bool
	var direct etcdOptions
	cmd := &cobra.Command{
		Use:   string(action),
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			direct.config = o.config
			if direct.set() {
				return viaEtcd(cmd, direct, action, to, reason, ticket)
			}
			if action == admin.Undo && reason == "" {
				return errUsage{errors.New("--reason is required: it is journalled with the undo")}
			}
			start := time.Now()
			if emergency && reason == "" {
				return errUsage{errors.New("--emergency needs --reason: it is journalled and notified with the promotion")}
			}
			req := admin.ActionRequest{Reason: reason, Actor: actor(), To: to, Full: full, Ticket: ticket, Emergency: emergency}
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Do(cmd.Context(), action, req) })
			if err != nil {
				return err
			}
			if o.output != "json" {
				switch action {
				case admin.Rollback:
					fmt.Fprintf(cmd.OutOrStdout(), "rolled back: the baseline judges every request from now on (round trip %s)\n", time.Since(start).Round(time.Microsecond))
				case admin.Undo:
					if st.Unchanged != "" {
						// Asked again (a double click, a retry): success, and
						// nothing changed or recorded.
						fmt.Fprintf(cmd.OutOrStdout(), "nothing to undo: %s\n", st.Unchanged)
						break
					}
					fmt.Fprintf(cmd.OutOrStdout(), "undone: baseline %s judges every request from now on (round trip %s)\n", st.Baseline.Version, time.Since(start).Round(time.Microsecond))
				}
			}
			return printStatus(cmd.OutOrStdout(), st, o.output)
		},
	}
	addClientFlags(cmd, o)
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "why: recorded in the journal")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	if action != admin.Pause && action != admin.Resume {
		f.StringVar(&ticket, "ticket", "", "the change ticket: journalled and notified (required for promote and undo with rollout.approvals.require_ticket)")
	}
	if action == admin.Promote {
		f.BoolVar(&full, "full", false, "make the candidate the baseline now, skipping the remaining steps (journalled as such); without it, promote moves one step")
		f.BoolVar(&emergency, "emergency", false, "an admin's promotion of a rollout they started, past four-eyes (rollout.approvals.distinct); needs --reason, journalled and notified as an emergency")
	}
	if action == admin.Undo {
		f.StringVar(&to, "to", "", "the baseline version to serve again, or a unique prefix (default: the one before the current; `wafcanary history` lists them)")
	}
	if action == admin.Rollback || action == admin.Undo {
		f.StringSliceVar(&direct.endpoints, "etcd", nil, "act on the fleet through etcd (comma-separated endpoints), with no replica's admin API")
		f.StringVar(&direct.prefix, "etcd-prefix", fleet.DefaultConfig.Prefix, "the fleet's key prefix in etcd, with --etcd")
		f.BoolVar(&direct.viaEtcd, "via-etcd", false, "act through the etcd of --config's state.etcd section (or --etcd), needing no replica: no role is checked, whoever can write to etcd can, and the journal names via-etcd")
	}
	return cmd
}
