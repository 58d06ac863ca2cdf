package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/metrics"
)

// buildVersion is what this binary says it is: main.version as
// metrics.ReadBuild reads it, the same as wafcanary_build_info's label.
func buildVersion() string { return metrics.ReadBuild(version).Version }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, and those of Go, Coraza and the embedded CRS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := metrics.ReadBuild(version)
			fmt.Fprintf(cmd.OutOrStdout(), "wafcanary %s\n  go          %s\n  coraza      %s\n  coreruleset %s\n", b.Version, b.Go, b.Coraza, b.CoreRuleSet)
			return nil
		},
	}
}
