package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/rollout"
)

func newHistoryCmd() *cobra.Command {
	o := &clientOptions{}
	var n int
	var all bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show the rollout journal: who decided what, why, on what evidence",
		Long: `history shows the journal's decisions, oldest first, in local time: starts,
advances, promotions, rollbacks, undos, reloads, pauses. The analyses that
changed nothing (hold, and await_approval after the first) are left out
unless --all is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fetch := n
			if !all {
				fetch = 0 // holds are filtered here, so the last n decisions need the whole journal
			}
			entries, err := do(o, func(c *admin.Client) ([]rollout.Entry, error) { return c.History(cmd.Context(), fetch) })
			if err != nil {
				return err
			}
			hidden := 0
			if !all {
				entries, hidden = decisionsOnly(entries)
				if n > 0 && len(entries) > n {
					entries = entries[len(entries)-n:]
				}
			}
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Status(cmd.Context()) })
			if err != nil {
				return err
			}
			if err := printHistory(cmd.OutOrStdout(), entries, st.Baselines, o.output); err != nil {
				return err
			}
			if hidden > 0 && o.output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "(%d analyses that changed nothing are not shown; --all shows them)\n", hidden)
			}
			return nil
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.Flags().IntVarP(&n, "n", "n", 50, "last N entries (0: all)")
	cmd.Flags().BoolVar(&all, "all", false, "also the analyses that changed nothing (hold)")
	return cmd
}

// decisionsOnly drops the analyses that changed nothing: holds, and an
// await_approval that repeats the one before it.
func decisionsOnly(entries []rollout.Entry) ([]rollout.Entry, int) {
	var out []rollout.Entry
	hidden := 0
	for i, e := range entries {
		repeat := e.Action == rollout.ActionAwait && i > 0 && entries[i-1].Action == rollout.ActionAwait
		if e.Action == rollout.ActionHold || repeat {
			hidden++
			continue
		}
		out = append(out, e)
	}
	return out, hidden
}
