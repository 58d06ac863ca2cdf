package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/evidence"
)

func newStartCmd() *cobra.Command {
	// The server runs the gates, CRS suite included, before it answers.
	o := &clientOptions{timeout: 10 * time.Minute}
	var candidate, exclusionFile, reason, override, forceBase, cases, preset, ticket, retireID string
	var rules []int
	var paths, hosts, only, replayFiles []string
	cmd := &cobra.Command{
		Use:   "start (--candidate FILE | --exclusion FILE) --reason TEXT",
		Short: "Start a rollout of a candidate ruleset on a running wafcanary",
		Long: `start gates a candidate and starts its rollout. --candidate is a whole ruleset;
--exclusion a file of exclusion directives only, applied to the baseline that
serves when the rollout starts. A candidate tune wrote records the baseline it
was written from: if another serves now, start carries its exclusions over to
it (rebase), or refuses naming both versions and the promotions in between.
A candidate that drops exclusions the served baseline has is refused too.
--force-base REASON starts either anyway, journalling what it undoes.
--retire ID starts a candidate that is the served baseline without exactly
that exception (exceptions retire writes one), journalled as a retire.

--preset NAME takes the steps and max_duration of rollout.presets.NAME
instead of rollout.steps; a candidate that changes the CRS version takes the
crs-upgrade preset (a week in shadow, then a day at each share) unless
--preset says otherwise (--preset default for rollout.steps).

Without --scope-* flags the scope is read from what the candidate takes away;
start prints it, or why none was inferred.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (candidate == "") == (exclusionFile == "") || reason == "" {
				return errUsage{errors.New("--reason and one of --candidate or --exclusion are required")}
			}
			for _, p := range []*string{&candidate, &exclusionFile, &cases} {
				if *p != "" && !strings.HasPrefix(*p, "embedded:") {
					abs, err := filepath.Abs(*p)
					if err != nil {
						return errUsage{err}
					}
					*p = abs
				}
			}
			for i := range hosts {
				hosts[i] = evidence.HostName(hosts[i])
			}
			for i := range only {
				only[i] = evidence.HostName(only[i])
			}
			req := admin.StartRequest{Candidate: candidate, Exclusion: exclusionFile, Reason: reason, Actor: actor(),
				Scope: evidence.Scope{RuleIDs: rules, Paths: paths, Hosts: hosts}, Hosts: only, Cases: cases, Replay: replayFiles, OverrideGates: override, ForceBase: forceBase, Preset: preset, Ticket: ticket, Retire: retireID}
			stop := gateProgress(cmd, o)
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Start(cmd.Context(), req) })
			stop()
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), st, o.output)
		},
	}
	addClientFlags(cmd, o)
	f := cmd.Flags()
	f.StringVar(&candidate, "candidate", "", "candidate ruleset file (as the server sees it), or embedded:NAME")
	f.StringVar(&exclusionFile, "exclusion", "", "instead of --candidate: a file (as the server sees it) of exclusion directives only, applied to the baseline serving when the rollout starts")
	f.StringVar(&reason, "reason", "", "why: recorded in the journal")
	f.IntSliceVar(&rules, "scope-rule", nil, "rule ID the change is meant to affect (repeatable)")
	f.StringSliceVar(&paths, "scope-path", nil, "path prefix the change is meant to affect (repeatable)")
	f.StringSliceVar(&hosts, "scope-host", nil, "host name the change is meant to affect (repeatable); a disagreement is in scope only on a declared host, path and rule, every dimension given")
	f.StringSliceVar(&only, "hosts", nil, "the only hosts the candidate judges (comma-separated, at most 50); every other host is served by the baseline and is not evidence")
	f.StringVar(&cases, "cases", "", "the candidate's cases file (must_pass, must_block): checked now and probed at every analysis")
	f.StringSliceVar(&replayFiles, "replay", nil, "recorded traffic on the server (audit log, HAR, captures; file or directory, repeatable) replayed through both rulesets before the first step: a failed replay refuses the start, as gates.replay does")
	f.StringVar(&override, "override-gates", "", "start despite failed gates (forbidden edits, failing cases); the reason is journalled")
	f.StringVar(&forceBase, "force-base", "", "start a candidate not built on the served baseline (written from another and not rebased, or dropping its exclusions); the reason is journalled with what it undoes")
	f.StringVar(&preset, "preset", "", "the steps and max_duration to take: a name in rollout.presets, crs-upgrade, or default (rollout.steps); a CRS upgrade takes crs-upgrade unless this says otherwise")
	f.StringVar(&ticket, "ticket", "", "the change ticket: journalled, kept in the rollout's state, notified (required with rollout.approvals.require_ticket)")
	f.StringVar(&retireID, "retire", "", "the exception of the served baseline the candidate takes away (wafcanary exceptions retire wrote it): started and journalled as a retire, where dropping an exclusion is otherwise refused")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	return cmd
}

// gateProgress shows on stderr, every 2 s, what the server's gates are
// doing while start waits for them (the CRS suite takes tens of seconds);
// the returned func stops it.
func gateProgress(cmd *cobra.Command, o *clientOptions) (stop func()) {
	errOut := cmd.ErrOrStderr()
	poll := *o
	poll.timeout = 5 * time.Second
	c, err := poll.client()
	if err != nil || o.output == "json" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		last := ""
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			g, err := c.Gates(cmd.Context())
			if err != nil || !g.Running {
				continue
			}
			line := "gates: " + g.Stage
			switch {
			case g.Stage == "":
				line = "gates: compiling"
			case g.Total > 0 && g.Stage == "crs_suite":
				line = fmt.Sprintf("gates: CRS regression suite, %d of %d cases sent", g.Done, g.Total)
			case g.Total > 0:
				line = fmt.Sprintf("gates: %s (%d)", g.Stage, g.Total)
			}
			line += fmt.Sprintf(" (%.0f s)", g.Seconds)
			if line != last {
				fmt.Fprintln(errOut, line)
				last = line
			}
		}
	}()
	return func() { close(done); <-finished }
}
