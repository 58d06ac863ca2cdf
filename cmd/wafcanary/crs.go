package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/ruleset"
)

func newCRSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "crs",
		Short: "Compare the Core Rule Sets of two rulesets (crs diff)",
	}
	cmd.AddCommand(newCRSDiffCmd())
	return cmd
}

func newCRSDiffCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "diff BASE CAND",
		Short: "List the rules a candidate adds, removes or changes, and the baseline exclusions that affects",
		Long: `Compile two rulesets (files, or embedded:NAME) and compare their rules by
ID: the rules only the candidate loads (added) or only the baseline loads
(removed), and the rules both load whose paranoia level (the
paranoia-level/N tag), disruptive action (pass, block, deny...), phase,
severity, targets or operator (of the first link), or chained links
changed. Then the baseline's
exclusions (SecRuleRemove*, SecRuleUpdateTarget*, ctl:ruleRemove*) that
dangle in the candidate (an ID, range or tag it has no rule for) or that
cover a rule that is new or changed there.

It is meant for a CRS upgrade: the baseline reads one CRS, the candidate
another (a "# wafcanary: crs DIR" line names a CRS directory; without it
the CRS embedded in the binary). No request is evaluated; it takes the
time of the two compiles.

Exit codes: 0 compared (whatever differs); 3 a ruleset does not compile;
64 bad arguments, or a file that is not there.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return errUsage{fmt.Errorf("want BASE and CAND, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return errUsage{fmt.Errorf("--output: want text or json, got %q", output)}
			}
			loaded, err := loadRulesets(args[0], args[1])
			defer retire(loaded)
			if err != nil {
				return err
			}
			d := ruleset.Diff(loaded[0], loaded[1])
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(crsDiff{Baseline: args[0], Candidate: args[1], Summary: d.Summary(), RuleDiff: d})
			}
			printCRSDiff(out, args[0], args[1], d)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// crsDiff is crs diff's JSON output.
type crsDiff struct {
	Baseline  string `json:"baseline"`
	Candidate string `json:"candidate"`
	Summary   string `json:"summary"`
	ruleset.RuleDiff
}

// printCRSDiff prints the diff as crs diff shows it, one section per
// kind of change, a rule a line.
func printCRSDiff(out io.Writer, base, cand string, d ruleset.RuleDiff) {
	fmt.Fprintf(out, "baseline   %s  %s\n", base, d.Baseline)
	fmt.Fprintf(out, "candidate  %s  %s\n", cand, d.Candidate)
	fmt.Fprintf(out, "summary    %s\n", d.Summary())
	printRuleDiff(out, d)
}

// printRuleDiff prints the rule and exclusion sections of a diff, which
// validate prints too.
func printRuleDiff(out io.Writer, d ruleset.RuleDiff) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	refs := func(title string, rs []ruleset.RuleRef) {
		if len(rs) == 0 {
			return
		}
		fmt.Fprintf(tw, "%s (%d)\n", title, len(rs))
		for _, r := range rs {
			pl := "PL-" // untagged: bookkeeping, or not the CRS's
			if r.Paranoia > 0 {
				pl = fmt.Sprintf("PL%d", r.Paranoia)
			}
			fmt.Fprintf(tw, "  %d\t%s\tphase %d\t%s\t%s:%d\n", r.ID, pl, r.Phase, actionOf(r.Action), r.File, r.Line)
		}
	}
	refs("added", d.Added)
	refs("removed", d.Removed)
	if len(d.Changed) > 0 {
		fmt.Fprintf(tw, "changed (%d)\n", len(d.Changed))
		for _, c := range d.Changed {
			// The changes last: their width varies most.
			fmt.Fprintf(tw, "  %d\t%s:%d\t%s\n", c.ID, c.File, c.Line, c)
		}
	}
	if len(d.Exclusions) > 0 {
		fmt.Fprintf(tw, "exclusions of the baseline affected (%d)\n", len(d.Exclusions))
		for _, e := range d.Exclusions {
			fmt.Fprintf(tw, "  %s\n", e)
		}
	}
	tw.Flush()
}

func actionOf(a string) string {
	if a == "" {
		return "default"
	}
	return a
}
