package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Compile ruleset files and report their version and rule count",
		Long: `Compile each ruleset file (with everything it includes, local or from the
embedded CRS) and print its version and rule counts. A ruleset that does not
compile is reported with its file and line; the exit code is then 3.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			failed := 0
			for _, file := range args {
				rs, err := loadRuleset(file)
				if err != nil {
					failed++
					fmt.Fprintf(out, "FAIL %v\n", err)
					continue
				}
				fmt.Fprintf(out, "ok   %s version %s, %d rules (%d that log), %d files\n",
					file, rs.Version, len(rs.Rules), len(rs.LoggingRuleIDs()), len(rs.Files))
				rs.Retire()
			}
			if failed > 0 {
				return errInvalidRuleset{fmt.Errorf("%d of %d rulesets do not compile", failed, len(args))}
			}
			return nil
		},
	}
}
