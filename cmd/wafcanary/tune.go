package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/exclusion"
	"github.com/wafcanary/wafcanary/ruleset"
)

func newTuneCmd() *cobra.Command {
	o := &clientOptions{}
	var output, cases, host, path, exclusionOut string
	var force, acceptOpened bool
	var owner, expires, ticket string
	cmd := &cobra.Command{
		Use:   "tune REQUEST_ID|SIGNATURE... --output FILE --cases FILE",
		Short: "Write the narrowest exclusion that lets blocked requests through, with cases that prove it",
		Long: `tune takes the X-Request-IDs of blocked requests whose captures the server kept
(capture.enabled), or signatures (sig:3f2a9c1b, as wafcanary blocks lists
them: every request a signature keeps), and writes a candidate: the served baseline verbatim plus
one exclusion rule per Host and path of the requests, each removing, from each
rule its requests need removed, only the variable it matched
(ctl:ruleRemoveTargetById=RULE;VARIABLE), only on that exact path and Host. The
candidate records the baseline it was written from: if another serves when it
is started, start carries the exclusions over to it, or refuses naming both.
It writes a cases file beside it: must_pass are the
requests as captured (redacted), must_block are attacks in each excluded
variable on the same path, and the same requests on another host and path.

The attacks are, for every rule removed from a variable, that rule's own
CRS regression-test payloads (up to 20 the baseline blocks with the rule
matching the variable) re-sent in the variable, and hand-picked attacks of
the rule's family, SQL injection and XSS. tune prints, per rule, how many it
checked, how many stay blocked and how many get through; the cases file
keeps up to 5 per rule, those held by a single remaining rule first.

Where the request was blocked by CRS policy that crs-setup.conf documents
changing (920420 content type, 911100 method, 920440 file extension), tune
writes an allowance instead: a rule before the CRS include that sets the
policy list, on the requests' path and Host only, to the baseline's plus
the request's value; its cases check that another value on the same path,
and the same value on another path and host, stay blocked.

Every exclusion is compiled and judged in process before it is written: the
requests pass, the attacks stay blocked. tune refuses (exit code 7) when no
narrow exclusion exists: a protocol-enforcement rule (920xxx) other than
the policies above, a variable the rule inspects whole (REQUEST_BODY,
REQUEST_FILENAME), a variable no attack can be sent in, or an exclusion
that lets through the variable one of an excluded rule's own CRS payloads
that a rule the requests do not need caught, or an attack of its family,
that the baseline blocks (--accept-opened writes it anyway, saying so), or
every attack of a family. A payload caught in the variable only by rules
the requests trip there too is listed as let through as the requests are:
no exclusion that lets them through keeps it blocked.

Each rule tune writes carries its metadata for the exceptions inventory
(wafcanary exceptions): tag:'wafcanary/owner=NAME' (--owner, default $USER),
tag:'wafcanary/expires=YYYY-MM-DD' (--expires, default 90 days from today)
and tag:'wafcanary/ticket=REF' (--ticket); an empty flag leaves its tag out.

--host '*' drops the host condition; --path P applies the exclusion to P and
the paths below it instead of the exact path.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, ids []string) error {
			if o.output != "text" && o.output != "json" {
				return errUsage{fmt.Errorf("-o: want text or json, got %q", o.output)}
			}
			if output == "" || cases == "" {
				return errUsage{errors.New("--output and --cases are required: the candidate and its cases file")}
			}
			if !force {
				for _, p := range []string{output, cases, exclusionOut} {
					if p == "" {
						continue
					}
					if _, err := os.Stat(p); err == nil {
						return errUsage{fmt.Errorf("%s exists; give --force to replace it", p)}
					}
				}
			}
			now := time.Now()
			until, err := expiryOf(expires, now)
			if err != nil {
				return errUsage{fmt.Errorf("--expires: %w", err)}
			}
			meta := exception.Meta{Owner: owner, Expires: until, Ticket: ticket}
			if err := meta.Validate(); err != nil {
				return errUsage{err}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			recs, err := tuneRecords(ctx, c, ids)
			if err != nil {
				return err
			}
			served, err := c.ServedBaseline(ctx)
			if err != nil {
				return exitError(err)
			}
			bundle, onCandidate, err := c.RulesetOfBlocks(ctx, served, recs)
			switch {
			case errors.Is(err, admin.ErrMixedRulesets):
				return errUsage{err}
			case err != nil:
				return exitError(err)
			}
			base, err := bundle.Compile(nil)
			if err != nil {
				return fmt.Errorf("the ruleset %s: %w", bundle.Version, err)
			}
			defer base.Retire()
			res, err := exclusion.Tune(ctx, base, bundle, recs, exclusion.Options{Host: host, Path: path, Output: filepath.Base(output), Now: now, Meta: meta, AcceptOpened: acceptOpened, Candidate: onCandidate})
			switch {
			case errors.Is(err, exclusion.ErrRefused):
				return errRefused{err}
			case errors.Is(err, exclusion.ErrOptions):
				return errUsage{err}
			}
			if err != nil {
				return err
			}
			if err := writeTuned(output, cases, res); err != nil {
				return err
			}
			baseline, err := baselineFile(output, served)
			if err != nil {
				return err
			}
			if exclusionOut != "" {
				if err := writeFile(exclusionOut, exclusionsFile(res)); err != nil {
					return err
				}
			}
			if text, err := printJSON(cmd.OutOrStdout(), o.output, res); !text {
				return err
			}
			printTuned(cmd.OutOrStdout(), output, cases, baseline, res)
			if exclusionOut != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: the exclusions alone; or start them on whatever baseline serves then:\n  wafcanary start --exclusion %s --cases %s --reason ...\n", visible(exclusionOut), visible(exclusionOut), visible(cases))
			}
			return nil
		},
	}
	addClientFlags(cmd, o)
	f := cmd.Flags()
	f.StringVar(&output, "output", "", "the candidate ruleset file to write")
	f.StringVar(&cases, "cases", "", "the cases file to write (must_pass, must_block)")
	f.StringVar(&host, "host", "", "the Host the exclusion applies to (default: the requests'; '*' for every host)")
	f.StringVar(&path, "path", "", "apply the exclusion to this path and below (default: exactly the requests' path)")
	f.StringVar(&exclusionOut, "exclusion-output", "", "also write the exclusion rules alone to this file, for `start --exclusion`")
	f.BoolVar(&force, "force", false, "replace --output and --cases (and --exclusion-output) if they exist")
	f.StringVar(&owner, "owner", os.Getenv("USER"), "the exclusions' owner, written as tag:'wafcanary/owner=NAME' (default $USER; '' for none)")
	f.StringVar(&expires, "expires", "90d", "the exclusions' expiry, tag:'wafcanary/expires=YYYY-MM-DD': a date, or a number of days from today (90d); '' for none")
	f.StringVar(&ticket, "ticket", "", "a ticket reference written as tag:'wafcanary/ticket=REF'")
	f.BoolVar(&acceptOpened, "accept-opened", false, "write the exclusion although an attack of an excluded rule's own family gets through (listed in the candidate's comment)")
	f.StringVarP(&o.output, "output-format", "o", "text", "text or json")
	return cmd
}

// writeTuned writes the candidate, the tuned ruleset's other local files
// beside it (they are included by relative name; a CRS from a directory is
// not written, its marker line serves it), and the cases file. Every file
// is written mode 0600 (the candidate's comments and the cases hold
// captured requests, as the captures do) and whole or not at all
// (writeFile).
func writeTuned(output, cases string, res exclusion.Result) error {
	for name, b := range res.Files {
		if strings.HasPrefix(name, "@") {
			// A CRS read from a directory: the marker line, copied
			// into the candidate, serves it from there.
			continue
		}
		if err := writeBeside(output, name, b, name == res.Main); err != nil {
			return err
		}
	}
	y, err := casesFile(filepath.Base(output), res)
	if err != nil {
		return err
	}
	return writeFile(cases, y)
}

// writeBeside writes a file the candidate output includes by name into
// its directory; an existing one with other content is an error unless
// replace.
func writeBeside(output, name string, b []byte, replace bool) error {
	p := filepath.Join(filepath.Dir(output), filepath.FromSlash(name))
	if old, err := os.ReadFile(p); err == nil {
		if bytes.Equal(old, b) {
			return nil
		}
		if !replace {
			return fmt.Errorf("%s exists with other content; the candidate includes it by that name: write the candidate into another directory", p)
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeFile(p, b)
}

// baselineFile is the served baseline to validate the candidate against:
// the file the server loaded when it is here unchanged, else a copy
// written beside the candidate.
func baselineFile(output string, served ruleset.Bundle) (string, error) {
	if strings.HasPrefix(served.Source, "embedded:") {
		return served.Source, nil
	}
	if b, err := os.ReadFile(served.Source); err == nil && bytes.Equal(b, served.Files[served.Main]) {
		return served.Source, nil
	}
	copyName := strings.TrimSuffix(filepath.Base(output), filepath.Ext(output)) + ".baseline.conf"
	if err := writeBeside(output, copyName, served.Files[served.Main], false); err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(output), copyName), nil
}

// exclusionsFile is the rules of res alone, for start --exclusion, which
// applies them to the baseline serving at start time.
func exclusionsFile(res exclusion.Result) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# wafcanary exclusions, written by `wafcanary tune` for request(s) %s.\n", strings.Join(res.Requests, ", "))
	b.WriteString("# `wafcanary start --exclusion FILE` puts them before the CRS rules include of\n")
	b.WriteString("# the baseline that serves then.\n\n")
	for _, e := range res.Exclusions {
		b.WriteString(e.SecLang)
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// writeFile replaces p with b, mode 0600, in one step: b goes to a new
// file in p's directory, synced, then renamed over p, so a crash or a full
// disk leaves the old p or the new one, never half a candidate.
func writeFile(p string, b []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*.tmp") // 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err = os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil { // the rename itself, on disk
		d.Sync()
		d.Close()
	}
	return nil
}

// casesFile is the cases file for res: a comment, then the cases as YAML.
// The cases are the captured requests as sent: a control or bidirectional
// character in a body or a header stays, but written as an escape of a
// double-quoted scalar (\u202e), never raw, so no editor, terminal or
// `git diff` acts on it, and the file reads back the same.
func casesFile(output string, res exclusion.Result) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(res.Cases); err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	quoteHidden(&doc)
	var y bytes.Buffer
	fmt.Fprintf(&y, "# Cases for %s, written by `wafcanary tune` for request(s) %s.\n", output, strings.Join(res.Requests, ", "))
	y.WriteString("# must_pass: the blocked requests as captured (redacted; headers whose values\n")
	y.WriteString("# were redacted are left out). must_block: attacks in each excluded variable on\n")
	y.WriteString("# the same path, and the same request on another host and path.\n")
	enc := yaml.NewEncoder(&y)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	return []byte(yamlVisible(y.String())), nil
}

// quoteHidden makes every scalar that holds a character yamlVisible
// escapes double-quoted: the YAML encoder writes C0, DEL and C1 controls
// as escapes, but bidirectional and other format characters raw, and only
// a double-quoted scalar can hold them as escapes.
func quoteHidden(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.ContainsFunc(n.Value, func(r rune) bool { return r != '\n' && !strconv.IsPrint(r) }) {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		quoteHidden(c)
	}
}

// yamlVisible escapes what the YAML encoder wrote raw that is not
// printable: in a double-quoted scalar (quoteHidden put every such one
// there) \uXXXX is the same character; in a comment, the request IDs', it
// is text.
func yamlVisible(y string) string {
	var b strings.Builder
	for i := 0; i < len(y); {
		r, n := utf8.DecodeRuneInString(y[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02X`, y[i])
		case r == '\n' || strconv.IsPrint(r):
			b.WriteString(y[i : i+n])
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02X`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			fmt.Fprintf(&b, `\U%08X`, r)
		}
		i += n
	}
	return b.String()
}

// printTuned says what tune wrote. The hosts and paths are the requests',
// and the cases' names hold their paths and variables: all through
// visible.
func printTuned(out io.Writer, output, cases, baseline string, res exclusion.Result) {
	v := visible
	excls := res.Exclusions
	if len(excls) == 0 { // a Result built by hand: its one exclusion
		excls = []exclusion.Exclusion{res.Exclusion}
	}
	what := func(e exclusion.Exclusion) string {
		var added []string
		if len(e.Allowances) > 0 {
			added = append(added, fmt.Sprintf("allowance %d", e.Allowances[0].RuleID))
		}
		if len(e.Removals) > 0 {
			added = append(added, fmt.Sprintf("exclusion %d", e.RuleID))
		}
		host := v(e.Host)
		if host == "" {
			host = "every host"
		}
		path := v(e.Path)
		if e.Prefix {
			path += " and below"
		}
		return fmt.Sprintf("%s, on %s, path %s", strings.Join(added, " and "), host, path)
	}
	lines := func(e exclusion.Exclusion, indent string) {
		for _, a := range e.Allowances {
			fmt.Fprintf(out, "%s%s\n", indent, v(a.String()))
		}
		for _, rm := range e.Removals {
			fmt.Fprintf(out, "%sctl:ruleRemoveTargetById=%s\n", indent, v(rm.String()))
		}
	}
	tuned := "the served baseline"
	if res.Candidate {
		tuned = "the candidate"
	}
	if len(excls) == 1 {
		fmt.Fprintf(out, "wrote %s: %s %s plus %s:\n", v(output), tuned, short(res.On), what(excls[0]))
		lines(excls[0], "  ")
	} else {
		fmt.Fprintf(out, "wrote %s: %s %s plus, for each host and path:\n", v(output), tuned, short(res.On))
		for _, e := range excls {
			fmt.Fprintf(out, "  %s (requests %s):\n", what(e), v(strings.Join(e.Requests, ", ")))
			lines(e, "    ")
		}
	}
	fmt.Fprintf(out, "wrote %s: %d must_pass (the requests), %d must_block\n", v(cases), len(res.Cases.MustPass), len(res.Cases.MustBlock))
	for _, c := range res.Cases.MustBlock {
		fmt.Fprintf(out, "  must_block: %s\n", v(c.Name))
	}
	printChecks(out, res)
	for _, o := range res.Inherent {
		fmt.Fprintf(out, "let through as the requests are: %s\n", v(o))
	}
	for _, o := range res.Opened {
		fmt.Fprintf(out, "warning: let through by the candidate, blocked by the baseline: %s\n", v(o))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(out, "note: %s\n", v(n))
	}
	var on []string
	for _, e := range excls {
		on = append(on, e.Host+e.Path)
	}
	fmt.Fprintln(out, "next:")
	fmt.Fprintf(out, "  wafcanary validate --baseline %s --candidate %s --cases %s\n", v(baseline), v(output), v(cases))
	if res.Candidate {
		fmt.Fprintf(out, "  wafcanary start --candidate %s --cases %s --reason %q\n", v(output), v(cases), "candidate "+short(res.On)+" with exceptions for its new blocks on "+strings.Join(on, ", ")+" (requests "+strings.Join(res.Requests, ", ")+")")
		fmt.Fprintf(out, "  (the candidate %s with the exceptions its new blocks need: it goes out as one change)\n", short(res.On))
		return
	}
	fmt.Fprintf(out, "  wafcanary start --candidate %s --cases %s --reason %q\n", v(output), v(cases), "false positive on "+strings.Join(on, ", ")+" (requests "+strings.Join(res.Requests, ", ")+")")
	fmt.Fprintf(out, "  (written from baseline %s: if another serves by then, start carries the exclusions over to it, or refuses naming both)\n", short(res.On))
}

// printChecks says what the attacks in the excluded variables found: per
// removed rule, how many of its CRS regression-test payloads the baseline
// blocks and the candidate still does; per family, its hand-picked ones.
func printChecks(out io.Writer, res exclusion.Result) {
	for _, c := range res.Checks {
		fmt.Fprintf(out, "checked: %s\n", visible(c.String()))
	}
	for _, c := range res.Families {
		if c.Checked > 0 {
			fmt.Fprintf(out, "checked: %s\n", visible(c.String()))
		}
	}
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}
