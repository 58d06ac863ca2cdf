package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
)

func newBlocksCmd() *cobra.Command {
	o := &clientOptions{}
	var n int
	cmd := &cobra.Command{
		Use:   "blocks",
		Short: "List blocked requests grouped by signature, with what hints at a false positive or an attack",
		Long: `blocks lists the signatures of the requests blocked recently, most recently
seen first (capture.enabled must be on). A signature is the host, the path,
the rules that matched and the variables they matched: a scanner's thousands
of probes fall into a few signatures, a false positive on a page of the site
into one of its own. Each shows its count, clients, the requests kept, and
the signals: facts that hint at a false positive (a Cookie or Authorization
header, a score of one critical rule, one rule family, several clients) or
at an attack (scanner detection, several families, one client sending
many, the same rules on other paths). They are facts to weigh, not a verdict.

explain and tune take a signature as they take a request ID; blocks pin
keeps a signature (never evicted, kept past max_age) until blocks unpin.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 || n > admin.MaxBlocks {
				return errUsage{fmt.Errorf("-n: want 1 to %d, got %d", admin.MaxBlocks, n)}
			}
			l, err := do(o, func(c *admin.Client) (admin.BlockList, error) { return c.Blocks(cmd.Context(), n) })
			if err != nil {
				return err
			}
			return printBlocks(cmd.OutOrStdout(), l, o.output)
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.Flags().IntVarP(&n, "n", "n", 20, "the N signatures seen most recently")
	cmd.AddCommand(newPinCmd(true), newPinCmd(false))
	return cmd
}

func newPinCmd(pin bool) *cobra.Command {
	o := &clientOptions{}
	use, short := "unpin SIGNATURE", "Let a signature be evicted and expire again"
	if pin {
		use, short = "pin SIGNATURE", "Keep a signature and its captures (never evicted, kept past max_age) until unpinned"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			sum, err := do(o, func(c *admin.Client) (capture.Summary, error) { return c.Pin(cmd.Context(), args[0], pin) })
			if err != nil {
				return err
			}
			if text, err := printJSON(cmd.OutOrStdout(), o.output, sum); !text {
				return err
			}
			state := "unpinned: evicted and expired as any other"
			if sum.Pinned {
				state = "pinned: kept until unpinned"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s%s: %s\n", sum.Sig, visible(sum.Host), visible(sum.Path), state)
			return nil
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	return cmd
}

// usageArgs makes an argument count error a usage error (exit 64), as
// the root does for its own commands' arguments.
func usageArgs(args cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := args(cmd, a); err != nil {
			return errUsage{err}
		}
		return nil
	}
}

// leansText is how a signal's leaning reads.
var leansText = map[string]string{capture.LeansFalsePositive: "hints at a false positive", capture.LeansAttack: "hints at an attack"}

// printBlocks prints the signatures as text or JSON. Hosts, paths,
// variable names and request IDs are the clients': through visible.
func printBlocks(out io.Writer, l admin.BlockList, format string) error {
	if text, err := printJSON(out, format, l); !text {
		return err
	}
	st := l.Store
	evicted := int64(0)
	for _, n := range st.EvictedSignatures {
		evicted += n
	}
	fmt.Fprintf(out, "%s of blocked requests, most recently seen first; the store holds %d of %d signatures, %d of %d requests, %s of %s, %d pinned; %d signatures evicted since start-up\n",
		plural(len(l.Signatures), "signature"), st.Signatures, st.MaxSignatures, st.Requests, st.MaxRequests, mib(st.Bytes), mib(st.MaxBytes), st.Pinned, evicted)
	for _, s := range l.Signatures {
		fmt.Fprintln(out)
		clients := plural(s.Clients, "client")
		if s.ClientsMore {
			clients = fmt.Sprintf("%d or more clients", s.Clients)
		}
		pinned := ""
		if s.Pinned {
			pinned = "  pinned"
		}
		if s.Shadow {
			pinned += "  shadow: the candidate's, judged in shadow; clients were served"
		}
		fmt.Fprintf(out, "%s  %s%s  %s from %s, last %s, first %s%s\n", s.Sig, visible(s.Host), visible(s.Path), plural64(s.Count, "block"), clients,
			s.Last.Format("2006-01-02 15:04:05Z07:00"), s.First.Format("2006-01-02 15:04:05Z07:00"), pinned)
		ids := make([]string, len(s.Rules))
		for i, id := range s.Rules {
			ids[i] = strconv.Itoa(id)
		}
		score := fmt.Sprintf("score %d", s.ScoreMax)
		if s.ScoreMin != s.ScoreMax {
			score = fmt.Sprintf("score %d to %d", s.ScoreMin, s.ScoreMax)
		}
		matched := ""
		if len(s.Targets) > 0 {
			matched = " matched " + strings.Join(visibleAll(s.Targets), ", ")
		}
		fmt.Fprintf(out, "  rules %s%s; %s\n", orNothing(strings.Join(ids, ", ")), matched, score)
		kept := make([]string, len(s.Captures))
		for i, c := range s.Captures {
			kept[i] = visible(c.ID)
		}
		fmt.Fprintf(out, "  kept: %s\n", orNothing(strings.Join(kept, ", ")))
		for _, sg := range s.Signals {
			fmt.Fprintf(out, "  %s: %s\n", leansText[sg.Leans], visible(sg.Fact))
		}
	}
	if len(l.Signatures) > 0 {
		fmt.Fprintln(out, "\nnext: wafcanary explain SIGNATURE (its newest capture); wafcanary tune SIGNATURE --output c.conf --cases c.cases.yaml (an exclusion from all it keeps); wafcanary blocks pin SIGNATURE")
	}
	return nil
}

func plural(n int, word string) string { return plural64(int64(n), word) }

func plural64(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func orNothing(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
