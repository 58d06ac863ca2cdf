package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/replay"
)

// Exit codes of replay's outcomes, documented in the README.
const (
	exitReplayFail         = 10 // replay: the candidate fails the paired checks on the recorded traffic
	exitReplayInconclusive = 11 // replay: too few pairs (or too many disagreements in doubt) to conclude
)

// errReplayVerdict carries a replay that did not pass, for the exit code.
type errReplayVerdict struct{ verdict string }

func (e errReplayVerdict) Error() string { return "replay: verdict " + e.verdict }

func newReplayCmd() *cobra.Command {
	var baseline, candidate, format, output string
	var rules []int
	var paths, exactPaths, hosts []string
	var full bool
	var maxRecord int
	cmd := &cobra.Command{
		Use:   "replay --baseline FILE --candidate FILE [--format F] [-o text|json] FILE|DIR...",
		Short: "Judge recorded traffic (audit logs, HAR, captures) by the baseline and the candidate",
		Long: `Read the requests recorded in the files and directories given, judge each by
both rulesets in process (the derived-pair shortcut where the candidate only
takes away and nothing it touches matched), on every core, and report new
and lost blocks by rule, host and path with redacted examples and their
positions (file:line), and the controller's own paired checks (new_blocks,
lost_blocks) with the scope start would infer from the candidate, or the
one --scope-* declares.

Formats (--format, auto by default: detected per file): modsec3-json
(libmodsecurity v3, nginx: serial, or a concurrent log's index file or
storage directory), modsec2-json (mod_security2, Apache), coraza-json,
har (HTTP Archive 1.2), captures (wafcanary's state_dir/captures). Where the
log recorded a verdict, the report says how often the baseline on
wafcanary decides the same, with the rules behind each disagreement.

A record that cannot be read is counted and listed with its file and line;
reading goes on. Logs are streamed: a record is at most --max-record-bytes.

Exit codes: 0 pass; 10 fail; 11 inconclusive (too few pairs to conclude);
3 a ruleset does not compile; 64 bad flags, a file that is not there.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return errUsage{fmt.Errorf("--output: want text or json, got %q", output)}
			}
			if baseline == "" || candidate == "" {
				return errUsage{errors.New("--baseline and --candidate are required")}
			}
			f, err := replay.ParseFormat(format)
			if err != nil {
				return errUsage{fmt.Errorf("--format: %w", err)}
			}
			for _, a := range args {
				if _, err := os.Stat(a); err != nil {
					return errUsage{fmt.Errorf("%s: no such file or directory", a)}
				}
			}
			loaded, err := loadRulesets(baseline, candidate)
			defer retire(loaded)
			if err != nil {
				return err
			}
			o := replay.Options{Format: f, FullEvaluation: full, MaxRecordBytes: maxRecord}
			if len(rules)+len(paths)+len(exactPaths)+len(hosts) > 0 {
				o.Scope = &evidence.Scope{RuleIDs: rules, Paths: paths, ExactPaths: exactPaths, Hosts: hosts}
			}
			if isTerminal(cmd.ErrOrStderr()) {
				o.Progress = func(p replay.Progress) { printReplayProgress(cmd.ErrOrStderr(), p) }
			}
			rep, err := replay.Run(cmd.Context(), loaded[0], loaded[1], args, o)
			if err != nil {
				return err
			}
			if err := printReplay(cmd.OutOrStdout(), rep, output); err != nil {
				return err
			}
			if rep.Verdict != replay.Pass {
				return errReplayVerdict{rep.Verdict}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&baseline, "baseline", "", "baseline ruleset file, or embedded:NAME")
	fl.StringVar(&candidate, "candidate", "", "candidate ruleset file, or embedded:NAME")
	fl.StringVar(&format, "format", string(replay.Auto), "auto, modsec3-json, modsec2-json, coraza-json, har or captures")
	fl.StringVarP(&output, "output", "o", "text", "text or json")
	fl.IntSliceVar(&rules, "scope-rule", nil, "rule ID the change is meant to affect (repeatable); any --scope-* replaces the inferred scope")
	fl.StringSliceVar(&paths, "scope-path", nil, "path prefix the change is meant to affect (repeatable)")
	fl.StringSliceVar(&exactPaths, "scope-exact-path", nil, "exact path the change is meant to affect (repeatable)")
	fl.StringSliceVar(&hosts, "scope-host", nil, "host name the change is meant to affect (repeatable)")
	fl.BoolVar(&full, "full-evaluation", false, "judge every request by both rulesets, without the derived-pair shortcut")
	fl.IntVar(&maxRecord, "max-record-bytes", replay.DefaultMaxRecordBytes, "longest record read; a longer one is reported and skipped")
	return cmd
}

func printReplayProgress(w io.Writer, p replay.Progress) {
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Judged) / s
	}
	fmt.Fprintf(w, "\r%d requests judged, %d unreadable, %.0f/s   ", p.Judged, p.Unreadable, rate)
	if p.Done {
		fmt.Fprintln(w)
	}
}

// printReplay prints the report as text or JSON.
func printReplay(out io.Writer, r *replay.Report, format string) error {
	if text, err := printJSON(out, format, r); !text {
		return err
	}
	fmt.Fprintf(out, "verdict: %s\n", strings.ToUpper(r.Verdict))
	fmt.Fprintf(out, "baseline %s, candidate %s\n", r.Baseline, r.Candidate)
	fmt.Fprintf(out, "%s read, %s judged by both (%d derived), %d unreadable, %d errors, in %s\n",
		plural64(r.Requests, "request"), plural64(r.Pairs, "pair"), r.Derived, r.Unreadable, r.Errors, r.Elapsed.Round(1e6))
	fmt.Fprintf(out, "scope (%s): %s\n", r.ScopeFrom, r.Scope)
	for _, c := range r.Checks {
		fmt.Fprintf(out, "  %-12s %-12s %s\n", c.Name, c.Status, c.Reason)
	}
	for _, d := range []struct {
		name string
		d    replay.Disagreements
	}{{"new blocks (the candidate blocks, the baseline allows)", r.NewBlocks}, {"lost blocks (the baseline blocks, the candidate allows)", r.LostBlocks}} {
		fmt.Fprintf(out, "\n%s: %d, %d in scope, %d outside\n", d.name, d.d.Total, d.d.InScope, d.d.OutOfScope)
		for _, t := range []struct {
			by   string
			rows []replay.Count
		}{{"rule", d.d.Rules}, {"host", d.d.Hosts}, {"path", d.d.Paths}} {
			if len(t.rows) == 0 {
				continue
			}
			fmt.Fprintf(out, "  by %s:\n", t.by)
			for _, c := range t.rows {
				fmt.Fprintf(out, "    %-40s %6d  (%d in scope)\n", visible(c.Key), c.Count, c.InScope)
				if t.by != "rule" {
					continue // examples once, under their rules
				}
				for _, ex := range c.Examples {
					fmt.Fprintf(out, "      %s  %s %s%s rules %v\n", visible(ex.Pos.String()), ex.Method, visible(ex.Host), visible(ex.URI), ex.Rules)
					if ex.Body != "" {
						fmt.Fprintf(out, "        body: %s\n", visible(ex.Body))
					}
					if ex.BodyNote != "" {
						fmt.Fprintf(out, "        (%s)\n", ex.BodyNote)
					}
				}
			}
		}
	}
	if a := r.Agreement; a.Compared > 0 {
		fmt.Fprintf(out, "\nengine agreement with the logged verdicts: %d of %d (%.2f%%)\n", a.Agree, a.Compared, 100*a.Share)
		for _, c := range a.Cases {
			fmt.Fprintf(out, "  %s  %s %s%s: logged %s, baseline %s; only logged %v, only baseline %v\n", visible(c.Pos.String()), c.Method,
				visible(c.Host), visible(c.Path), blockedWord(c.Logged), blockedWord(c.Baseline), c.OnlyLogged, c.OnlyBaseline)
		}
	}
	if len(r.Limits) > 0 {
		fmt.Fprintln(out, "\nwhat this input cannot show:")
		for _, l := range r.Limits {
			fmt.Fprintf(out, "  - %s\n", l)
		}
	}
	if r.Unreadable > 0 {
		fmt.Fprintf(out, "\nunreadable: %d\n", r.Unreadable)
		for _, p := range r.Problems {
			fmt.Fprintf(out, "  %s\n", visible(p.String()))
		}
	}
	for _, p := range r.JudgeErrors {
		fmt.Fprintf(out, "  error judging %s\n", visible(p.String()))
	}
	return nil
}

func blockedWord(b bool) string {
	if b {
		return "blocked"
	}
	return "allowed"
}
