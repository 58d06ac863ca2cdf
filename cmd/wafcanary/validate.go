package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/node"
	"github.com/wafcanary/wafcanary/ruleset"
)

func newValidateCmd() *cobra.Command {
	var file, baseline, candidate, cases, output string
	var crsSuite bool
	cmd := &cobra.Command{
		Use:   "validate FILE... | validate --baseline FILE --candidate FILE [--cases FILE]",
		Short: "Compile rulesets, or check a candidate against a baseline with every gate",
		Long: `With files as arguments: compile each ruleset file (with everything it
includes, local or from the embedded CRS) and print its version and rule
counts. A ruleset that does not compile is reported with its file and line.

With --baseline and --candidate: compile both and run the gates a rollout
start runs, printing a summary (or JSON with -o json):
  - the forbidden-edit guard (949110, 949111, 959100, 980170, the rule
    engine, the inbound threshold ceiling), naming each line;
  - the candidate's own cases (--cases): must_pass and must_block requests;
  - the CRS regression suite (about 4,700 cases) through two wafcanary
    proxies on loopback, one per ruleset, listing every case whose outcome
    differs (rule, test, before, after), and the cost gate: the candidate's
    median time inside the WAF over the suite against the baseline's.

Both forms warn (on stderr) of exceptions that name a rule or tag the
ruleset does not load, or have no owner or no expiry date (wafcanary
exceptions); with gates.strict_exceptions they fail instead.

Exit codes: 0 all gates pass; 3 a ruleset does not compile; 7 the
candidate fails a gate (or, with gates.strict_exceptions, a file's
exceptions do); 64 bad flags or configuration, or a file that is
not there. Limits (gates.*) come from --config, WAFCANARY_GATES_* or
their defaults.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return errUsage{fmt.Errorf("--output: want text or json, got %q", output)}
			}
			if baseline == "" && candidate == "" {
				if len(args) == 0 || cases != "" {
					return errUsage{errors.New("give ruleset files to compile, or --baseline and --candidate")}
				}
				cfg, err := loadConfig(file, nil)
				if err != nil {
					return errUsage{err}
				}
				return compileOnly(cmd.OutOrStdout(), cmd.ErrOrStderr(), args, cfg.Gates)
			}
			if baseline == "" || candidate == "" || len(args) > 0 {
				return errUsage{errors.New("--baseline and --candidate go together, without file arguments")}
			}
			cfg, err := loadConfig(file, nil)
			if err != nil {
				return errUsage{err}
			}
			cfg.Gates.CRSSuite = crsSuite
			return validatePair(cmd, cfg.Gates, baseline, candidate, cases, output)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "YAML configuration file, for the gates section")
	f.StringVar(&baseline, "baseline", "", "baseline ruleset file, or embedded:NAME")
	f.StringVar(&candidate, "candidate", "", "candidate ruleset file, or embedded:NAME")
	f.StringVar(&cases, "cases", "", "the candidate's cases file (must_pass, must_block), or embedded:NAME")
	f.BoolVar(&crsSuite, "crs-suite", true, "run the CRS regression suite and the cost gate (about 20 s)")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func compileOnly(out, warn io.Writer, files []string, gcfg gates.Config) error {
	failed, missing, refused := 0, 0, 0
	for _, file := range files {
		rs, err := node.LoadRuleset(file)
		if errors.Is(err, fs.ErrNotExist) {
			// Not a ruleset that does not compile: a path to check.
			missing++
			fmt.Fprintf(out, "FAIL %s: no such file\n", file)
			continue
		}
		if err != nil {
			failed++
			fmt.Fprintf(out, "FAIL %v\n", err)
			continue
		}
		fmt.Fprintf(out, "ok   %s version %s, %d rules (%d that log), %d files, %s\n",
			file, rs.Version, len(rs.Rules), len(rs.LoggingRuleIDs()), len(rs.Files), rs.CRS)
		problems, notes := gates.AuditExceptions(rs, gcfg)
		warnExceptions(warn, file, notes)
		for _, p := range problems {
			fmt.Fprintf(out, "FAIL %s: %s (gates.strict_exceptions)\n", file, p)
		}
		if len(problems) > 0 {
			refused++
		}
		rs.Retire()
	}
	if failed > 0 {
		return errInvalidRuleset{fmt.Errorf("%d of %d rulesets do not compile", failed, len(files))}
	}
	if missing > 0 {
		return errUsage{fmt.Errorf("%d of %d files not found", missing, len(files))}
	}
	if refused > 0 {
		return errRefused{fmt.Errorf("%d of %d rulesets %w: their exceptions (gates.strict_exceptions)", refused, len(files), gates.ErrRefused)}
	}
	return nil
}

// warnExceptions writes what the exceptions' audit notes, one warning a
// line: exit codes do not change for them.
func warnExceptions(warn io.Writer, file string, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(warn, "warning: %s: %s\n", file, n)
	}
}

// loadRulesets compiles files (or embedded:NAME) in order: a file that is
// not there is a usage error, one that does not compile an invalid
// ruleset. The caller retires what it returns, also on error.
func loadRulesets(files ...string) ([]*ruleset.Ruleset, error) {
	var loaded []*ruleset.Ruleset
	for _, file := range files {
		rs, err := node.LoadRuleset(file)
		if errors.Is(err, fs.ErrNotExist) {
			return loaded, errUsage{fmt.Errorf("%s: no such file", file)}
		}
		if err != nil {
			return loaded, errInvalidRuleset{err}
		}
		loaded = append(loaded, rs)
	}
	return loaded, nil
}

func retire(rs []*ruleset.Ruleset) {
	for _, r := range rs {
		r.Retire()
	}
}

// validation is validate's JSON output.
type validation struct {
	Baseline  string       `json:"baseline"`
	Candidate string       `json:"candidate"`
	Pass      bool         `json:"pass"`
	Problems  []string     `json:"problems"`
	Report    gates.Report `json:"report"`
	// Rules is how the candidate's rules differ from the baseline's
	// (crs diff), which gates nothing: it says what an upgrade changes.
	Rules ruleset.RuleDiff `json:"rules"`
}

func validatePair(cmd *cobra.Command, cfg gates.Config, baseline, candidate, cases, output string) error {
	loaded, err := loadRulesets(baseline, candidate)
	defer retire(loaded)
	if err != nil {
		return err
	}
	var cs *gates.Cases
	if cases != "" {
		c, err := gates.LoadCases(cases, configs.Rulesets)
		if err != nil {
			return errUsage{err}
		}
		cs = &c
	}
	rep, err := node.EvaluateGates(cmd.Context(), loaded[0], loaded[1], cs, cfg)
	if err != nil {
		return err
	}
	v := validation{Baseline: baseline, Candidate: candidate, Report: rep, Problems: rep.Problems(), Rules: ruleset.Diff(loaded[0], loaded[1])}
	v.Pass = len(v.Problems) == 0
	if v.Problems == nil {
		v.Problems = []string{}
	}
	out := cmd.OutOrStdout()
	warnExceptions(cmd.ErrOrStderr(), candidate, rep.ExceptionNotes)
	if output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		printValidation(out, v, loaded)
	}
	if !v.Pass {
		return errRefused{fmt.Errorf("candidate %s %w: %d problems", candidate, gates.ErrRefused, len(v.Problems))}
	}
	return nil
}

func printValidation(out io.Writer, v validation, rs []*ruleset.Ruleset) {
	r := v.Report
	fmt.Fprintf(out, "baseline   %s  version %s, %d rules, %s\n", v.Baseline, rs[0].Version, len(rs[0].Rules), rs[0].CRS)
	fmt.Fprintf(out, "candidate  %s  version %s, %d rules, %s\n", v.Candidate, rs[1].Version, len(rs[1].Rules), rs[1].CRS)
	fmt.Fprintf(out, "rules      %s\n", v.Rules.Summary())
	if v.Rules.Baseline.Version != v.Rules.Candidate.Version {
		// An upgrade: what it changes, as crs diff lists it.
		printRuleDiff(out, v.Rules)
	}
	fmt.Fprintf(out, "guard      %s\n", verdict(len(r.Guard), "forbidden edit"))
	for _, g := range r.Guard {
		fmt.Fprintf(out, "  %s\n", g)
	}
	if r.CasesChecked > 0 {
		fmt.Fprintf(out, "cases      %d checked, %s\n", r.CasesChecked, verdict(len(r.Cases), "failing case"))
		for _, f := range r.Cases {
			fmt.Fprintf(out, "  %s\n", f)
		}
	} else {
		fmt.Fprintln(out, "cases      none given (--cases)")
	}
	if len(r.Exceptions) > 0 {
		fmt.Fprintf(out, "exceptions %s (gates.strict_exceptions)\n", verdict(len(r.Exceptions), "problem"))
		for _, p := range r.Exceptions {
			fmt.Fprintf(out, "  %s\n", p)
		}
	}
	s := r.Suite
	if s == nil {
		fmt.Fprintln(out, "CRS suite  not run (--crs-suite=false)")
	} else {
		fmt.Fprintf(out, "CRS suite  %d cases in %.1f s: baseline passes %d (%.2f%%), candidate %d (%.2f%%), %d left out; %s\n",
			s.Baseline.Total, s.Seconds, s.Baseline.Passed, 100*s.Baseline.PassRate(),
			s.Candidate.Passed, 100*s.Candidate.PassRate(), s.Baseline.Ignored, verdict(len(s.Regressions()), "regression"))
		fmt.Fprintf(out, "  tests of %s\n", s.Tests)
		if len(s.Changes) > 0 {
			tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "  RULE\tTEST\tBEFORE\tAFTER\tWHY")
			for _, c := range s.Changes {
				fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", c.RuleID, c.Case, c.Before, c.After, c.Why)
			}
			tw.Flush()
		}
		status := "ok"
		if s.Cost.Ratio > s.Cost.Limit {
			status = "too slow"
		}
		fmt.Fprintf(out, "cost       median WAF time %s vs %s on the baseline: %.2fx (limit %.2fx), %s\n",
			s.Candidate.MedianWAFTime.Round(time.Microsecond), s.Baseline.MedianWAFTime.Round(time.Microsecond),
			s.Cost.Ratio, s.Cost.Limit, status)
	}
	if v.Pass {
		fmt.Fprintln(out, "result     PASS")
	} else {
		fmt.Fprintf(out, "result     FAIL, %d problems\n", len(v.Problems))
	}
}

func verdict(n int, what string) string {
	switch n {
	case 0:
		return "ok"
	case 1:
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
