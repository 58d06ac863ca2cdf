package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset"
)

func newChangelogCmd() *cobra.Command {
	o := &clientOptions{}
	var since string
	cmd := &cobra.Command{
		Use:   "changelog [--since DATE] [-o markdown|json]",
		Short: "List the changes that reached production: who proposed and approved them, why, their measured impact and back-out",
		Long: `changelog reads the journal and lists, oldest first, each change that reached
production: a promotion, an undo, a rollback after the candidate served
clients. Each says what changed (the versions), who proposed it and who
approved it, the tickets and the rationale, the evidence measured before it
(the last analysis: requests judged, new and lost blocks with their rules,
block rate, latency, each check's verdict and reason) and how to back it out.
Markdown reads well pasted into a ticket; JSON is for a compliance export.
--since takes a date (2006-01-02), a time (RFC 3339) or a duration ago (720h).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince(since, time.Now())
			if err != nil {
				return errUsage{err}
			}
			format := o.output
			if format != "markdown" && format != "json" {
				return errUsage{fmt.Errorf("--output: want markdown or json, got %q", format)}
			}
			o.output = "" // the client checks text or json; this command prints its own
			c, err := o.client()
			if err != nil {
				return err
			}
			entries, err := c.History(cmd.Context(), 0)
			if err != nil {
				return exitError(err)
			}
			changes := rollout.Changes(entries, from)
			withExceptions(cmd.Context(), c, changes)
			return printChangelog(cmd.OutOrStdout(), changes, format)
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVar(&since, "since", "", "only changes from this date (2006-01-02), time (RFC 3339) or duration ago (720h)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "markdown", "markdown or json")
	return cmd
}

// withExceptions fills each promotion's and undo's exceptions added,
// removed and altered, from the two baselines' bundles the server keeps
// (rollout.keep_baselines), each compiled once; a version no longer kept
// is said so.
func withExceptions(ctx context.Context, c *admin.Client, changes []rollout.Change) {
	lists := map[string][]exception.Exception{}
	failed := map[string]error{}
	listOf := func(version string) ([]exception.Exception, error) {
		if l, ok := lists[version]; ok {
			return l, nil
		}
		if err, ok := failed[version]; ok {
			return nil, err
		}
		b, err := c.Ruleset(ctx, version)
		if err == nil {
			var rs *ruleset.Ruleset
			if rs, err = b.Compile(nil); err == nil {
				lists[version] = exception.List(rs, time.Time{})
				rs.Retire()
				return lists[version], nil
			}
		}
		failed[version] = err
		return nil, err
	}
	for i, ch := range changes {
		if ch.Kind == rollout.ActionRollback || ch.From == "" || ch.To == "" {
			continue
		}
		ec := &rollout.ExceptionChanges{Added: []string{}, Removed: []string{}, Altered: []string{}}
		from, err := listOf(ch.From)
		var to []exception.Exception
		if err == nil {
			to, err = listOf(ch.To)
		}
		if err != nil {
			ec.Unknown = err.Error()
		} else {
			d := exception.Diff(from, to)
			for _, l := range []struct {
				out *[]string
				in  []exception.Exception
			}{{&ec.Added, d.Added}, {&ec.Removed, d.Removed}, {&ec.Altered, d.Altered}} {
				for _, e := range l.in {
					*l.out = append(*l.out, e.Summary())
				}
			}
		}
		changes[i].Exceptions = ec
	}
}

// parseSince reads --since: a date, a time, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since: want a date (2006-01-02), a time (RFC 3339) or a duration (720h), got %q", s)
}

// printChangelog writes changes as markdown or JSON.
func printChangelog(out io.Writer, changes []rollout.Change, format string) error {
	if format == "json" {
		if changes == nil {
			changes = []rollout.Change{}
		}
		b, err := json.MarshalIndent(changes, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, jsonVisible(string(b)))
		return err
	}
	if len(changes) == 0 {
		_, err := fmt.Fprintln(out, "No change reached production in the journal's span.")
		return err
	}
	for i, c := range changes {
		if i > 0 {
			fmt.Fprintln(out)
		}
		writeChange(out, c)
	}
	return nil
}

// mdEscaper escapes the characters that would start markdown markup.
var mdEscaper = strings.NewReplacer("\\", "\\\\", "`", "\\`", "*", "\\*", "_", "\\_", "[", "\\[", "]", "\\]", "<", "&lt;", ">", "&gt;", "|", "\\|", "\n", " ")

// md is s made safe for one markdown line: control characters shown
// escaped (visible), no line break, no markup.
func md(s string) string { return mdEscaper.Replace(visible(strings.ReplaceAll(s, "\n", " "))) }

func writeChange(out io.Writer, c rollout.Change) {
	when := c.Time.UTC().Format("2006-01-02 15:04 UTC")
	switch c.Kind {
	case rollout.ActionPromote:
		fmt.Fprintf(out, "## %s: promotion of %s (baseline was %s)\n\n", when, short(c.To), short(c.From))
	case rollout.ActionRollback:
		fmt.Fprintf(out, "## %s: rollback of %s after it served clients (baseline %s kept)\n\n", when, short(c.Candidate), short(c.From))
	case rollout.ActionUndo:
		fmt.Fprintf(out, "## %s: undo to %s (baseline was %s)\n\n", when, short(c.To), short(c.From))
	}
	fmt.Fprintf(out, "- **Proposed by** %s: %s\n", md(c.ProposedBy), md(c.Rationale))
	if len(c.ApprovedBy) > 0 {
		fmt.Fprintf(out, "- **Approved by** %s\n", md(strings.Join(c.ApprovedBy, ", ")))
	} else if c.Kind == rollout.ActionPromote {
		fmt.Fprintln(out, "- **Approved by** nobody by hand: the evidence promoted it")
	}
	if c.Kind != rollout.ActionUndo || c.By != c.ProposedBy {
		fmt.Fprintf(out, "- **%s by** %s: %s\n", kindVerb(c.Kind), md(c.By), md(c.Reason))
	}
	if c.Emergency {
		fmt.Fprintln(out, "- **Emergency**: promoted past four-eyes by an admin")
	}
	tickets := "none"
	if len(c.Tickets) > 0 {
		tickets = md(strings.Join(c.Tickets, ", "))
	}
	fmt.Fprintf(out, "- **Ticket** %s\n", tickets)
	if a := c.Impact; a != nil {
		fmt.Fprintf(out, "- **Measured impact** (the last analysis before it: %s)\n", a.Status)
		for _, oc := range a.Outcomes {
			line := fmt.Sprintf("  - %s %s: %s", oc.Check, oc.Status, md(oc.Reason))
			if len(oc.Rules) > 0 {
				var rules []string
				for _, r := range oc.Rules {
					rules = append(rules, fmt.Sprintf("%d (%d)", r.ID, r.Count))
				}
				line += "; rules " + strings.Join(rules, ", ")
			}
			fmt.Fprintln(out, line)
		}
	} else if c.Kind != rollout.ActionUndo {
		fmt.Fprintln(out, "- **Measured impact** no analysis was journalled before it")
	}
	if e := c.Exceptions; e != nil {
		switch {
		case e.Unknown != "":
			fmt.Fprintf(out, "- **Exceptions** not read: %s\n", md(e.Unknown))
		case len(e.Added)+len(e.Removed)+len(e.Altered) == 0:
			fmt.Fprintln(out, "- **Exceptions** none added, removed or altered")
		default:
			fmt.Fprintln(out, "- **Exceptions**")
			for _, l := range []struct {
				what string
				list []string
			}{{"added", e.Added}, {"removed", e.Removed}, {"altered", e.Altered}} {
				for _, s := range l.list {
					fmt.Fprintf(out, "  - %s %s\n", l.what, md(s))
				}
			}
		}
	}
	if c.BackOut != "" {
		fmt.Fprintf(out, "- **Back-out** `wafcanary undo --to %s`\n", c.BackOut)
	}
}

func kindVerb(k rollout.Action) string {
	switch k {
	case rollout.ActionRollback:
		return "Rolled back"
	case rollout.ActionUndo:
		return "Undone"
	}
	return "Promoted"
}
