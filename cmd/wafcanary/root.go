package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/wafcanary/wafcanary/admin"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "wafcanary",
		Short:         "Roll out WAF rule changes as a measured canary",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion(),
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return errUsage{err} })
	root.AddCommand(newServeCmd(), newValidateCmd(), newDemoCmd(),
		newStartCmd(), newStatusCmd(), newHistoryCmd(), newExplainCmd(), newBlocksCmd(), newTuneCmd(), newReplayCmd(), newCRSCmd(), newVersionCmd(),
		newActionCmd(admin.Pause, "Hold the rollout's share; analysis goes on and a failure still rolls back"),
		newActionCmd(admin.Resume, "Continue a paused rollout at its step"),
		newActionCmd(admin.Promote, "Move the rollout on one step whatever the evidence (past an approval), or to 100% and promoted with --full"),
		newActionCmd(admin.Rollback, "Take the candidate out of service now, from any rollout state (idempotent)"),
		newActionCmd(admin.Undo, "Serve an earlier baseline again, from the next request (after a promotion: the way back)"))
	root.AddCommand(newExceptionsCmd())
	root.AddCommand(newTokenCmd(), newChangelogCmd())
	for _, c := range root.Commands() {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return errUsage{err}
				}
				return nil
			}
		}
	}
	return root
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated with the config
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
