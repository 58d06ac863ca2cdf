package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
)

func newExplainCmd() *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "explain REQUEST_ID|SIGNATURE",
		Short: "Say why a request was blocked: the rules, what they matched, the score, and its capture",
		Long: "explain takes the X-Request-ID of a blocked request (it is in the response's headers and in the\n" +
			"\"request blocked\" log line) and shows which ruleset blocked it, every rule that matched with its\n" +
			"message, tags, paranoia level and the variables it matched, the anomaly score, and the request as\n" +
			"captured (redacted) when capture.enabled is on, with its signature's counts and signals.\n" +
			"Given a signature (sig:3f2a9c1b, as `wafcanary blocks` lists them) it explains the newest\n" +
			"request the signature keeps, and says so.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := do(o, func(c *admin.Client) (admin.Explanation, error) { return c.Explain(cmd.Context(), args[0]) })
			if err != nil {
				return err
			}
			return printExplanation(cmd.OutOrStdout(), e, o.output)
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	return cmd
}

// printExplanation prints e as text or JSON. Every string in it may be the
// client's (a captured header, a JSON key in a target, the data a rule's
// message quotes) and is printed through visible.
func printExplanation(out io.Writer, e admin.Explanation, format string) error {
	if text, err := printJSON(out, format, e); !text {
		return err
	}
	v := visible
	if e.Chosen != "" {
		fmt.Fprintf(out, "%s\n", v(e.Chosen))
	}
	if e.Exception != "" {
		fmt.Fprintf(out, "request %s: let through by exception %s; without it the baseline would have blocked it (%d) by rule %d, inbound anomaly score %d\n", v(e.ID), v(e.Exception), e.Status, e.InterruptedBy, e.Score)
	} else if e.Shadow {
		fmt.Fprintf(out, "request %s: served by the baseline; the candidate, judging it in shadow, would have blocked it (%d) by rule %d, inbound anomaly score %d\n", v(e.ID), e.Status, e.InterruptedBy, e.Score)
	} else {
		fmt.Fprintf(out, "request %s: blocked (%d) by rule %d, inbound anomaly score %d\n", v(e.ID), e.Status, e.InterruptedBy, e.Score)
	}
	fmt.Fprintf(out, "  %s %s %s%s from %s, by the %s ruleset %s\n", e.Time.Format("2006-01-02 15:04:05Z07:00"), v(e.Method), v(e.Host), v(e.Path), v(e.ClientIP), v(e.Arm), v(e.Version))
	fmt.Fprintln(out, "rules that matched:")
	for _, r := range e.Rules {
		fmt.Fprintf(out, "  %d  %s\n", r.ID, v(r.Message))
		if len(r.Targets) > 0 || r.Omitted > 0 {
			parts := visibleAll(r.Targets)
			if r.Omitted > 0 {
				parts = append(parts, fmt.Sprintf("%d more not shown (too many, too long, or not printable)", r.Omitted))
			}
			fmt.Fprintf(out, "        matched: %s\n", strings.Join(parts, ", "))
		}
		if r.File != "" {
			where := v(r.File)
			if r.Line > 0 {
				where += fmt.Sprintf(":%d", r.Line)
			}
			fmt.Fprintf(out, "        %s, paranoia level %d\n", where, r.Paranoia)
		}
		if len(r.Tags) > 0 {
			fmt.Fprintf(out, "        tags: %s\n", strings.Join(visibleAll(r.Tags), ", "))
		}
	}
	if g := e.Group; g != nil {
		fmt.Fprintf(out, "signature %s: %s since %s, from %s\n", g.Sig, plural64(g.Count, "block"), g.First.Format("2006-01-02 15:04:05Z07:00"), plural(g.Clients, "client"))
		for _, sg := range g.Signals {
			fmt.Fprintf(out, "  %s: %s\n", leansText[sg.Leans], v(sg.Fact))
		}
	}
	if e.Capture == nil {
		switch {
		case e.Group != nil && len(e.Group.Captures) > 0:
			fmt.Fprintf(out, "capture: none of this request: its signature keeps its first %s; wafcanary explain %s shows the newest\n", plural(len(e.Group.Captures), "capture"), e.Group.Sig)
		default:
			fmt.Fprintln(out, "capture: none (capture.enabled is off, or the capture is past its limits)")
		}
		return nil
	}
	c := e.Capture
	fmt.Fprintf(out, "capture (redacted): %s %s %s\n", v(c.Method), v(c.URI), v(c.Proto))
	names := make([]string, 0, len(c.Header))
	for k := range c.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, hv := range c.Header[k] {
			fmt.Fprintf(out, "  %s: %s\n", v(k), v(hv))
		}
	}
	switch {
	case c.BinaryBody():
		// Bytes, not text: kept for the replay, never printed (-o json
		// has them in base64).
		fmt.Fprintf(out, "  body: %d bytes, not text (kept as sent; -o json has them in base64)\n", len(c.Body))
	case c.Body != "":
		fmt.Fprintf(out, "  body: %s\n", v(c.Body))
	}
	if c.BodyNote != "" {
		fmt.Fprintf(out, "  (%s)\n", v(c.BodyNote))
	}
	return nil
}
