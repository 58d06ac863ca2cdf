package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/exception"
)

func newExceptionsCmd() *cobra.Command {
	o := &clientOptions{}
	var file string
	cmd := &cobra.Command{
		Use:   "exceptions [--ruleset FILE]",
		Short: "List the served baseline's exceptions: where, what they remove and when, owner, expiry, origin, dangling references",
		Long: `exceptions lists every exception of the baseline in service: each rule or
directive of its own files that takes rules or targets away (ctl:ruleRemove*,
SecRuleRemove*, SecRuleUpdateTarget*). For each: its ID, file:line, the rules
it names (IDs, ranges, tag:TAG) and the targets it changes, the conditions
under which it runs (Host, path, other), its owner, expiry date and ticket
(tag:'wafcanary/owner=NAME', tag:'wafcanary/expires=YYYY-MM-DD',
tag:'wafcanary/ticket=REF' on a rule; the same words on a comment line right
above a directive), where it came from (the rollout that brought it, from
the kept baselines and the journal), the rules or tags it names that the
ruleset does not load (dangling), and its status: active, stale, expired
or dangling.

With exceptions.sample_percent above 0 the server judges that share of
the baseline's requests again without each exception, off the request path,
and says per exception: requests judged, how many it let through that the
baseline would have blocked without it (would-be blocks), the rules behind
them, and the last one's time and request ID (wafcanary explain ID shows
it). One that lets nothing through over exceptions.stale_after_requests
judged requests and exceptions.stale_after is stale.

With --ruleset FILE it reads a ruleset file instead, without a server:
nothing is known then of where its exceptions came from, nor what they
let through.

exceptions retire ID writes (and with --start rolls out) the baseline
without one exception; exceptions renew ID --until DATE changes its expiry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				l   admin.ExceptionList
				err error
			)
			if file != "" {
				l, err = offlineExceptions(file, time.Now().UTC())
			} else {
				l, err = do(o, func(c *admin.Client) (admin.ExceptionList, error) { return c.Exceptions(cmd.Context()) })
			}
			if err != nil {
				return err
			}
			if text, err := printJSON(cmd.OutOrStdout(), o.output, l); !text {
				return err
			}
			printExceptions(cmd.OutOrStdout(), l, file != "")
			return nil
		},
	}
	cmd.AddCommand(newExceptionsRetireCmd(), newExceptionsRenewCmd())
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&file, "ruleset", "", "read this ruleset file (or embedded:NAME) instead of asking the server")
	return cmd
}

// offlineExceptions lists the exceptions of a ruleset file judged at now.
func offlineExceptions(file string, now time.Time) (admin.ExceptionList, error) {
	loaded, err := loadRulesets(file)
	defer retire(loaded)
	if err != nil {
		return admin.ExceptionList{}, err
	}
	return admin.ExceptionList{Baseline: loaded[0].Version, Now: now, Exceptions: exception.List(loaded[0], now)}, nil
}

// printExceptions writes a small block per exception.
func printExceptions(out io.Writer, l admin.ExceptionList, offline bool) {
	count := map[exception.Status]int{}
	for _, e := range l.Exceptions {
		count[e.Status]++
	}
	fmt.Fprintf(out, "baseline %s: %d exceptions", l.Baseline, len(l.Exceptions))
	if n := count[exception.Dangling] + count[exception.Expired] + count[exception.Stale]; n > 0 {
		fmt.Fprintf(out, " (%d dangling, %d expired, %d stale)", count[exception.Dangling], count[exception.Expired], count[exception.Stale])
	}
	fmt.Fprintln(out)
	for _, e := range l.Exceptions {
		fmt.Fprintf(out, "\n%s  %s  %s\n", e.ID, e.Status, e.Where())
		removes := strings.Join(e.Kinds, ", ") + " " + strings.Join(e.Rules, " ")
		if len(e.Targets) > 0 {
			removes += ", targets " + strings.Join(e.Targets, " ")
		}
		fmt.Fprintf(out, "  removes   %s\n", removes)
		fmt.Fprintf(out, "  when      %s\n", e.When())
		if len(e.Dangling) > 0 {
			fmt.Fprintf(out, "  dangling  %s: not loaded by this ruleset\n", strings.Join(e.Dangling, ", "))
		}
		expires := or(e.Expires, "none")
		if e.Expired {
			expires += " (expired)"
		}
		fmt.Fprintf(out, "  owner     %s, expires %s, ticket %s\n", or(e.Owner, "none"), expires, or(e.Ticket, "none"))
		fmt.Fprintf(out, "  origin    %s\n", originText(e.Origin, offline))
		if !offline {
			fmt.Fprintf(out, "  measured  %s\n", measuredText(e))
		}
		for _, n := range e.Notes {
			fmt.Fprintf(out, "  note      %s\n", n)
		}
	}
}

// measuredText says what the exception still lets through.
func measuredText(e exception.Exception) string {
	if !e.Measured && e.Judged == 0 {
		return "not measured (exceptions.sample_percent is 0, past exceptions.max_variants, or it removes nothing loaded)"
	}
	s := fmt.Sprintf("%d requests judged without it (%d in full), %d would have been blocked", e.Judged, e.Evaluated, e.WouldBlock)
	if len(e.WouldBlockRules) > 0 {
		var rules []string
		for _, r := range e.WouldBlockRules {
			rules = append(rules, fmt.Sprintf("%d (%d)", r.ID, r.Count))
		}
		s += " by rules " + strings.Join(rules, ", ")
	}
	if l := e.LastWouldBlock; l != nil {
		s += fmt.Sprintf("; last %s, request %s %s %s%s (wafcanary explain %s)", l.Time.Format(time.RFC3339), l.RequestID, l.Method, l.Host, l.Path, l.RequestID)
	}
	if e.Stale {
		s += "; stale: it lets nothing through, retire it"
	}
	return s
}

func originText(o *exception.Origin, offline bool) string {
	switch {
	case o == nil && offline:
		return "not known (read from a file, not a server)"
	case o == nil:
		return "in no kept baseline"
	case o.BeforeHistory:
		return fmt.Sprintf("before the kept history: the oldest baseline kept, %s (serving from %s), has it already", o.Baseline, o.Since.Format(time.RFC3339))
	}
	s := fmt.Sprintf("%s of %s at %s", o.By, o.Baseline, o.Since.Format(time.RFC3339))
	if o.Actor != "" {
		s += fmt.Sprintf(", asked by %s (%q)", o.Actor, o.Reason)
	}
	if o.PromotedBy != "" && o.PromotedBy != o.Actor {
		s += ", promoted by " + o.PromotedBy
	}
	return s
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
