package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/rollout"
)

func newStatusCmd() *cobra.Command {
	o := &clientOptions{}
	var watch, wait bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the rollout's state, share, versions, progress, last decision and evidence",
		Long: `status shows the rollout's state once. --watch shows it every --interval until the
rollout ends (redrawn in place on a terminal; one JSON object per line with
-o json). --wait blocks until the rollout ends, for CI: exit 0 when it is
promoted, 8 when it is rolled back, 9 when --timeout passes first; a server
that restarts or cannot be reached meanwhile is asked again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !watch && !wait {
				st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Status(cmd.Context()) })
				if err != nil {
					return err
				}
				return printStatus(cmd.OutOrStdout(), st, o.output)
			}
			return follow(cmd, o, every, wait)
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "show the status every --interval until the rollout ends")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the rollout ends: exit 0 when promoted, 8 when rolled back, 9 on --timeout")
	cmd.Flags().DurationVar(&every, "interval", 2*time.Second, "how often --watch and --wait ask")
	return cmd
}

// Exit codes of status --wait.
type (
	errRolledBack  struct{ error }
	errWaitTimeout struct{ error }
)

func (e errRolledBack) Unwrap() error  { return e.error }
func (e errWaitTimeout) Unwrap() error { return e.error }

// follow polls the status until the rollout ends. Unreachable servers are
// asked again (a restart is not the rollout's end); --timeout bounds the
// whole wait, each call at most 30 s of it.
func follow(cmd *cobra.Command, o *clientOptions, every time.Duration, wait bool) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	ctx := cmd.Context()
	if o.flags.Changed("timeout") {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	call := *o
	call.timeout = min(30*time.Second, max(o.timeout, time.Second))
	if !o.flags.Changed("timeout") {
		call.timeout = 30 * time.Second
	}
	c, err := call.client()
	if err != nil {
		return err
	}
	redraw := !wait && o.output != "json" && isTerminal(out)
	var last, shown string
	for first := true; ; first = false {
		st, err := c.Status(ctx)
		switch {
		case ctx.Err() != nil:
			return errWaitTimeout{fmt.Errorf("the rollout did not end within --timeout %s (last state %s)", o.timeout, orNone(last))}
		case err != nil && errors.Is(err, admin.ErrUnreachable):
			fmt.Fprintf(errOut, "%s  %v; asking again in %s\n", time.Now().Format(time.TimeOnly), err, every)
		case err != nil:
			return exitError(err)
		default:
			last = st.State
			if err := show(out, st, o.output, redraw, wait, every, first, &shown); err != nil {
				return err
			}
			switch {
			case st.State == string(rollout.Promoted):
				return nil
			case st.State == string(rollout.RolledBack):
				reason := ""
				if st.LastDecision != nil {
					reason = st.LastDecision.Reason
				}
				if wait {
					return errRolledBack{fmt.Errorf("rolled back: %s", reason)}
				}
				return nil
			case st.State == string(rollout.Idle):
				return errConflict{errors.New("no rollout to follow (state idle): start one first")}
			}
		}
		select {
		case <-ctx.Done():
			return errWaitTimeout{fmt.Errorf("the rollout did not end within --timeout %s (last state %s)", o.timeout, orNone(last))}
		case <-time.After(every):
		}
	}
}

// show prints one look at the status: redrawn in place on a terminal,
// one JSON object a line under -o json, otherwise appended, and for
// --wait a line a change.
func show(out io.Writer, st admin.Status, format string, redraw, wait bool, every time.Duration, first bool, shown *string) error {
	if format == "json" {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	if wait {
		line := st.State
		if p := progress(st); p != "" {
			line += ", " + p
		}
		if d := st.LastDecision; d != nil && (st.State == string(rollout.Promoted) || st.State == string(rollout.RolledBack)) {
			line += ": " + d.Reason
		}
		if line != *shown {
			fmt.Fprintf(out, "%s  %s\n", time.Now().Format(time.TimeOnly), line)
			*shown = line
		}
		return nil
	}
	if redraw {
		fmt.Fprint(out, "\033[H\033[2J")
		fmt.Fprintf(out, "%s  (every %s, Ctrl-C to stop)\n\n", time.Now().Format(time.TimeOnly), every)
	} else if !first {
		fmt.Fprintln(out)
	}
	return printStatus(out, st, format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func orNone(s string) string {
	if s == "" {
		return "never read"
	}
	return s
}
