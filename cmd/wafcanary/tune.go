package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/exclusion"
	"github.com/wafcanary/wafcanary/ruleset"
)

func newTuneCmd() *cobra.Command {
	o := &clientOptions{}
	var output, cases, host, path string
	var force, acceptOpened bool
	cmd := &cobra.Command{
		Use:   "tune REQUEST_ID... --output FILE --cases FILE",
		Short: "Write the narrowest exclusion that lets blocked requests through, with cases that prove it",
		Long: `tune takes the X-Request-IDs of blocked requests whose captures the server kept
(capture.enabled), and writes a candidate: the served baseline verbatim plus
one exclusion rule that removes, from each rule the requests need removed, only
the variable it matched (ctl:ruleRemoveTargetById=RULE;VARIABLE), only on the
requests' path and Host. It writes a cases file beside it: must_pass are the
requests as captured (redacted), must_block are attacks in each excluded
variable on the same path, and the same requests on another host and path.

Every exclusion is compiled and judged in process before it is written: the
requests pass, the attacks stay blocked. tune refuses (exit code 7) when no
narrow exclusion exists: a protocol-enforcement rule (920xxx), a variable the
rule inspects whole (REQUEST_BODY, REQUEST_FILENAME), a variable no attack
can be sent in, or an exclusion that lets through the variable an attack of
an excluded rule's own family that the baseline blocks (--accept-opened
writes it anyway, saying so), or every attack of another family.

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
				for _, p := range []string{output, cases} {
					if _, err := os.Stat(p); err == nil {
						return errUsage{fmt.Errorf("%s exists; give --force to replace it", p)}
					}
				}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var recs []capture.Record
			for _, id := range ids {
				e, err := c.Explain(ctx, id)
				if err != nil {
					return exitError(err)
				}
				if e.Capture == nil {
					return fmt.Errorf("request %s: no capture (capture.enabled is off, or the capture is past capture.max_age or max_requests): tune replays the request, so it needs one", id)
				}
				recs = append(recs, *e.Capture)
			}
			bundle, err := c.ServedBaseline(ctx)
			if err != nil {
				return exitError(err)
			}
			base, err := bundle.Compile(nil)
			if err != nil {
				return fmt.Errorf("the served baseline %s: %w", bundle.Version, err)
			}
			defer base.Retire()
			res, err := exclusion.Tune(ctx, base, bundle, recs, exclusion.Options{Host: host, Path: path, Output: filepath.Base(output), Now: time.Now(), AcceptOpened: acceptOpened})
			if errors.Is(err, exclusion.ErrRefused) {
				return errRefused{err}
			}
			if err != nil {
				return err
			}
			baseline, err := writeTuned(output, cases, bundle, res)
			if err != nil {
				return err
			}
			if text, err := printJSON(cmd.OutOrStdout(), o.output, res); !text {
				return err
			}
			printTuned(cmd.OutOrStdout(), output, cases, baseline, bundle, res)
			return nil
		},
	}
	addClientFlags(cmd, o)
	f := cmd.Flags()
	f.StringVar(&output, "output", "", "the candidate ruleset file to write")
	f.StringVar(&cases, "cases", "", "the cases file to write (must_pass, must_block)")
	f.StringVar(&host, "host", "", "the Host the exclusion applies to (default: the requests'; '*' for every host)")
	f.StringVar(&path, "path", "", "apply the exclusion to this path and below (default: exactly the requests' path)")
	f.BoolVar(&force, "force", false, "replace --output and --cases if they exist")
	f.BoolVar(&acceptOpened, "accept-opened", false, "write the exclusion although an attack of an excluded rule's own family gets through (listed in the candidate's comment)")
	f.StringVarP(&o.output, "output-format", "o", "text", "text or json")
	return cmd
}

// writeTuned writes the candidate, the baseline's other local files beside
// it (they are included by relative name), and the cases file. It returns
// the baseline to validate against: the file the server loaded when it is
// here unchanged, else a copy written beside the candidate.
func writeTuned(output, cases string, bundle ruleset.Bundle, res exclusion.Result) (string, error) {
	dir := filepath.Dir(output)
	write := func(name string, b []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if old, err := os.ReadFile(p); err == nil {
			if bytes.Equal(old, b) {
				return nil
			}
			if name != res.Main {
				return fmt.Errorf("%s exists with other content; the candidate includes it by that name: write the candidate into another directory", p)
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	}
	for name, b := range res.Files {
		if err := write(name, b); err != nil {
			return "", err
		}
	}
	var y bytes.Buffer
	fmt.Fprintf(&y, "# Cases for %s, written by `wafcanary tune` for request(s) %s.\n", filepath.Base(output), strings.Join(res.Requests, ", "))
	y.WriteString("# must_pass: the blocked requests as captured (redacted; headers whose values\n")
	y.WriteString("# were redacted are left out). must_block: attacks in each excluded variable on\n")
	y.WriteString("# the same path, and the same request on another host and path.\n")
	enc := yaml.NewEncoder(&y)
	enc.SetIndent(2)
	if err := enc.Encode(res.Cases); err != nil {
		return "", err
	}
	if err := os.WriteFile(cases, y.Bytes(), 0o644); err != nil {
		return "", err
	}
	if strings.HasPrefix(bundle.Source, "embedded:") {
		return bundle.Source, nil
	}
	if b, err := os.ReadFile(bundle.Source); err == nil && bytes.Equal(b, bundle.Files[bundle.Main]) {
		return bundle.Source, nil
	}
	copyName := strings.TrimSuffix(filepath.Base(output), filepath.Ext(output)) + ".baseline.conf"
	if err := write(copyName, bundle.Files[bundle.Main]); err != nil {
		return "", err
	}
	return filepath.Join(dir, copyName), nil
}

func printTuned(out io.Writer, output, cases, baseline string, bundle ruleset.Bundle, res exclusion.Result) {
	where := res.Host
	if where == "" {
		where = "every host"
	}
	path := res.Path
	if res.Prefix {
		path += " and below"
	}
	fmt.Fprintf(out, "wrote %s: the served baseline %s plus exclusion %d, on %s, path %s:\n", output, short(bundle.Version), res.RuleID, where, path)
	for _, rm := range res.Removals {
		fmt.Fprintf(out, "  ctl:ruleRemoveTargetById=%s\n", rm)
	}
	fmt.Fprintf(out, "wrote %s: %d must_pass (the requests), %d must_block\n", cases, len(res.Cases.MustPass), len(res.Cases.MustBlock))
	for _, c := range res.Cases.MustBlock {
		fmt.Fprintf(out, "  must_block: %s\n", c.Name)
	}
	for _, o := range res.Opened {
		fmt.Fprintf(out, "warning: let through by the candidate, blocked by the baseline: %s\n", o)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	fmt.Fprintln(out, "next:")
	fmt.Fprintf(out, "  wafcanary validate --baseline %s --candidate %s --cases %s\n", baseline, output, cases)
	fmt.Fprintf(out, "  wafcanary start --candidate %s --cases %s --reason %q\n", output, cases, "false positive on "+res.Host+res.Path+" (requests "+strings.Join(res.Requests, ", ")+")")
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}
