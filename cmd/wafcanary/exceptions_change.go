package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/exclusion"
	"github.com/wafcanary/wafcanary/gates"
)

func newExceptionsRetireCmd() *cobra.Command {
	// With --start the server runs the gates before it answers.
	o := &clientOptions{timeout: 10 * time.Minute}
	var output, cases, reason, ticket string
	var start, force bool
	cmd := &cobra.Command{
		Use:   "retire ID [--output FILE] [--cases FILE] [--start --reason TEXT]",
		Short: "Write the served baseline without one exception, the requests it let through as must_pass cases; --start rolls it out",
		Long: `retire writes a candidate: the served baseline (as the server keeps it) with the
lines of exception ID commented out, every other line where it was, so every
other rule keeps its file:line. The files the baseline includes are written
beside it. It checks that the candidate compiles and is the baseline without
that exception alone.

The requests the exception let through that the baseline would have blocked
without it (its would-be blocks, exceptions.sample_percent), as the server
kept them (capture.enabled, redacted: no cookie, credential or redacted
value; headers whose values were redacted are left out), become must_pass
cases in --cases: start checks them, and refuses the candidate if one is
still blocked. Would-be blocks known by their line only are listed.

--start starts an ordinary rollout of it, journalled as a retire (start
--retire ID): the candidate drops an exclusion, which start otherwise
refuses. Its new blocks are the risk the policy judges: an exception still
needed is rolled back naming the rules it held off.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if start && reason == "" {
				return errUsage{errors.New("--start needs --reason: it is journalled")}
			}
			if output == "" {
				output = "retire-" + id + ".conf"
			}
			if cases == "" {
				cases = strings.TrimSuffix(output, filepath.Ext(output)) + ".cases.yaml"
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
			r, err := planRetire(cmd.Context(), c, id, time.Now().UTC())
			if err != nil {
				return err
			}
			wrote, err := writeRetire(output, cases, r, force)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !start {
				printRetire(out, output, wrote, r, "")
				return nil
			}
			req := admin.StartRequest{Candidate: output, Retire: id, Reason: reason, Actor: actor(), Ticket: ticket}
			if wrote != "" {
				req.Cases = wrote
			}
			for _, p := range []*string{&req.Candidate, &req.Cases} {
				if *p != "" {
					if *p, err = filepath.Abs(*p); err != nil {
						return err
					}
				}
			}
			if o.output != "json" {
				printRetire(out, output, wrote, r, "starting")
			}
			stop := gateProgress(cmd, o)
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Start(cmd.Context(), req) })
			stop()
			if err != nil {
				return err
			}
			return printStatus(out, st, o.output)
		},
	}
	addClientFlags(cmd, o)
	f := cmd.Flags()
	f.StringVar(&output, "output", "", "the candidate ruleset file to write (default retire-ID.conf)")
	f.StringVar(&cases, "cases", "", "the cases file to write when requests it let through are known (default beside --output, .cases.yaml)")
	f.BoolVar(&start, "start", false, "start the candidate's rollout on the server (paths as the server sees them: run it where the server reads the files)")
	f.StringVar(&reason, "reason", "", "why, for --start: journalled")
	f.StringVar(&ticket, "ticket", "", "the change ticket, for --start (required with rollout.approvals.require_ticket)")
	f.BoolVar(&force, "force", false, "replace --output and --cases if they exist")
	f.StringVarP(&o.output, "output-format", "o", "text", "text or json (the start's status, with --start)")
	return cmd
}

// retirement is what exceptions retire writes: the candidate's files, the
// exception as the server measured it, and the cases of the requests it
// let through.
type retirement struct {
	exception.Retirement
	Served string // the served baseline's version
	// Listed is the exception as the server lists it: status, would-be
	// blocks; zero when the server's list does not hold it.
	Listed exception.Exception
	Cases  gates.Cases
	// Unkept are would-be blocks the server keeps no request of, by line.
	Unkept []string
}

// planRetire builds the retirement of exception id from the served
// baseline's bundle, and its must_pass cases from the would-be blocks the
// server keeps.
func planRetire(ctx context.Context, c *admin.Client, id string, now time.Time) (retirement, error) {
	served, err := c.ServedBaseline(ctx)
	if err != nil {
		return retirement{}, exitError(err)
	}
	base, err := served.Compile(nil)
	if err != nil {
		return retirement{}, fmt.Errorf("the served baseline %s: %w", served.Version, err)
	}
	defer base.Retire()
	r, err := exception.Retire(base, id, now)
	if errors.Is(err, exception.ErrNoSuchException) {
		return retirement{}, errUsage{err}
	}
	if err != nil {
		return retirement{}, err
	}
	out := retirement{Retirement: r, Served: served.Version}
	l, err := c.Exceptions(ctx)
	if err != nil {
		return retirement{}, exitError(err)
	}
	if l.Baseline != served.Version {
		return retirement{}, fmt.Errorf("baseline %s came into service while retire read %s: run it again", short(l.Baseline), short(served.Version))
	}
	listed, err := exception.Find(l.Exceptions, id)
	if err != nil {
		return retirement{}, err
	}
	out.Listed = listed
	for _, rid := range listed.WouldBlockRequests {
		e, err := c.Explain(ctx, rid)
		switch {
		case err != nil:
			out.Unkept = append(out.Unkept, fmt.Sprintf("request %s: no longer kept", rid))
		case e.Capture == nil:
			out.Unkept = append(out.Unkept, fmt.Sprintf("request %s at %s: %s %s%s, blocked without it by %s", rid, e.Time.UTC().Format(time.RFC3339),
				e.Method, e.Host, e.Path, ruleIDs(e.Rules)))
		default:
			out.Cases.MustPass = append(out.Cases.MustPass, exclusion.CaseOf(*e.Capture, fmt.Sprintf("request %s, let through by exception %s", rid, id)))
		}
	}
	return out, nil
}

func ruleIDs(rules []admin.ExplainedRule) string {
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = strconv.Itoa(r.ID)
	}
	return strings.Join(ids, ", ")
}

// writeRetire writes the candidate's main file to output, the files it
// includes beside it, and, when there are cases, the cases file; it
// returns the cases file written, "" for none. Each file is written whole
// or not at all, mode 0600 (writeFile): the cases hold captured requests.
func writeRetire(output, cases string, r retirement, replace bool) (string, error) {
	for name, b := range r.Files {
		if strings.HasPrefix(name, "@") {
			continue // a CRS read from a directory: the main file's marker serves it
		}
		if name == r.Main {
			if err := writeFile(output, b); err != nil {
				return "", err
			}
			continue
		}
		if err := writeBeside(output, name, b, replace); err != nil {
			return "", err
		}
	}
	if len(r.Cases.MustPass) == 0 {
		return "", nil
	}
	var doc yaml.Node
	if err := doc.Encode(r.Cases); err != nil {
		return "", fmt.Errorf("cases: %w", err)
	}
	quoteHidden(&doc)
	var y bytes.Buffer
	fmt.Fprintf(&y, "# Cases for %s, written by `wafcanary exceptions retire %s`.\n", filepath.Base(output), r.Exception.ID)
	fmt.Fprintf(&y, "# must_pass: the requests exception %s let through that the baseline would\n", r.Exception.ID)
	y.WriteString("# have blocked without it, as the server kept them (redacted; headers whose\n")
	y.WriteString("# values were redacted are left out). start refuses the candidate while one\n")
	y.WriteString("# is blocked: the exception is still needed for it.\n")
	enc := yaml.NewEncoder(&y)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", fmt.Errorf("cases: %w", err)
	}
	return cases, writeFile(cases, []byte(yamlVisible(y.String())))
}

// printRetire says what retire wrote and, unless starting, what to run.
func printRetire(out io.Writer, output, cases string, r retirement, starting string) {
	v := visible
	e := r.Exception
	fmt.Fprintf(out, "wrote %s: baseline %s without exception %s (%s), its lines commented out; every other rule keeps its file:line\n",
		v(output), short(r.Served), e.ID, e.Where())
	removes := strings.Join(e.Kinds, ", ") + " " + strings.Join(e.Rules, " ")
	if len(e.Targets) > 0 {
		removes += ", targets " + strings.Join(e.Targets, " ")
	}
	fmt.Fprintf(out, "  it removed %s\n", v(removes))
	if l := r.Listed; l.ID != "" {
		fmt.Fprintf(out, "  status %s; %s\n", l.Status, measuredText(l))
	}
	if cases != "" {
		fmt.Fprintf(out, "wrote %s: %d must_pass (the requests it let through, as kept)\n", v(cases), len(r.Cases.MustPass))
	} else {
		fmt.Fprintln(out, "no cases file: no request it let through is kept (exceptions.sample_percent and capture.enabled keep them)")
	}
	for _, u := range r.Unkept {
		fmt.Fprintf(out, "  known by its line only: %s\n", v(u))
	}
	if starting != "" {
		return
	}
	fmt.Fprintln(out, "next:")
	casesFlag := ""
	if cases != "" {
		casesFlag = " --cases " + v(cases)
	}
	fmt.Fprintf(out, "  wafcanary start --candidate %s%s --retire %s --reason %q\n", v(output), casesFlag, e.ID,
		fmt.Sprintf("retire exception %s (%s): %s", e.ID, e.Where(), r.Listed.Status))
}

func newExceptionsRenewCmd() *cobra.Command {
	o := &clientOptions{}
	var until, reason, owner, ticket string
	cmd := &cobra.Command{
		Use:   "renew ID --until YYYY-MM-DD --reason TEXT [--owner NAME] [--ticket REF]",
		Short: "Change an exception's expiry (owner, ticket) through a journalled change that alters no verdict",
		Long: `renew changes only the metadata of exception ID of the served baseline: its
tag:'wafcanary/expires=...' (owner, ticket) on a rule, or the comment line
right above a directive. The server writes the change, proves that the result
judges every request as the served baseline does (the same directives in the
same order and the same compiled rules, wafcanary/ tags aside, and no
exclusion removing rules by such a tag), and puts it in service at once:
journalled as renew (who, why, what changed, the proof), then start and
promote, so undo goes back over it as over any change. A rollout through the
steps would measure nothing: no verdict can differ. Under four-eyes
(rollout.approvals.distinct) its starter cannot promote it: it then waits,
as a rollout, for another approver's wafcanary promote --full.

--until takes a date or a number of days from today (90d).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if until == "" || reason == "" {
				return errUsage{errors.New("--until and --reason are required")}
			}
			exp, err := expiryOf(until, time.Now())
			if err != nil {
				return errUsage{fmt.Errorf("--until: %w", err)}
			}
			meta := exception.Meta{Owner: owner, Expires: exp, Ticket: ticket}
			if err := meta.Validate(); err != nil {
				return errUsage{err}
			}
			// The exception's ticket is the change's too
			// (rollout.approvals.require_ticket).
			req := admin.StartRequest{Renew: &admin.Renewal{Exception: args[0], Meta: meta}, Reason: reason, Actor: actor(), Ticket: ticket}
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Start(cmd.Context(), req) })
			if err != nil {
				return err
			}
			if text, err := printJSON(cmd.OutOrStdout(), o.output, st); !text {
				return err
			}
			printRenewed(cmd.OutOrStdout(), st)
			return nil
		},
	}
	addClientFlags(cmd, o)
	f := cmd.Flags()
	f.StringVar(&until, "until", "", "the new expiry: YYYY-MM-DD (in force through that day, UTC), or a number of days from today (90d)")
	f.StringVar(&reason, "reason", "", "why: journalled")
	f.StringVar(&owner, "owner", "", "a new owner")
	f.StringVar(&ticket, "ticket", "", "a new ticket reference, written on the exception and journalled as the change's ticket")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	return cmd
}

// printRenewed says what a renewal changed and what serves now.
func printRenewed(out io.Writer, st admin.Status) {
	r := st.Composed
	if r == nil {
		fmt.Fprintln(out, "renewed")
		return
	}
	if r.Renewed == nil {
		fmt.Fprintf(out, "renewal started, not in service: %s\n", visible(r.Base))
		fmt.Fprintln(out, "  journalled as renew and start (wafcanary history)")
		return
	}
	e := r.Renewed
	fmt.Fprintf(out, "renewed: %s\n", visible(r.Base))
	fmt.Fprintf(out, "  exception %s (%s) now: owner %s, expires %s, ticket %s; status %s\n", e.ID, e.Where(), or(e.Owner, "none"), or(e.Expires, "none"), or(e.Ticket, "none"), e.Status)
	if st.Baseline != nil {
		fmt.Fprintf(out, "  in service as baseline %s, promoted without steps: it %s\n", short(st.Baseline.Version), r.Proof)
	}
	fmt.Fprintln(out, "  journalled as renew, start and promote (wafcanary history)")
}

// expiryOf reads an expiry flag: "" for none, YYYY-MM-DD, or a number of
// days from now (90d). A date before now's is refused: it would be
// written expired.
func expiryOf(s string, now time.Time) (string, error) {
	if s == "" {
		return "", nil
	}
	today := now.UTC().Truncate(24 * time.Hour)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 3660 {
			return "", fmt.Errorf("want YYYY-MM-DD or a number of days up to 3660 (90d), got %q", s)
		}
		return today.AddDate(0, 0, n).Format(time.DateOnly), nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return "", fmt.Errorf("want YYYY-MM-DD or a number of days (90d), got %q", s)
	}
	if d.Before(today) {
		return "", fmt.Errorf("%s is before today (%s): it would be written expired", s, today.Format(time.DateOnly))
	}
	return s, nil
}
