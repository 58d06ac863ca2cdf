package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/rollout"
)

// clientOptions are the flags every command that talks to a running
// wafcanary shares.
type clientOptions struct {
	admin     string
	tokenFile string
	output    string
	// timeout bounds the whole call; 0 means 30 seconds.
	timeout time.Duration
}

func addClientFlags(cmd *cobra.Command, o *clientOptions) {
	f := cmd.Flags()
	f.StringVar(&o.admin, "admin", "http://127.0.0.1:9090", "admin URL of the running wafcanary")
	f.StringVar(&o.tokenFile, "token-file", "state/admin.token", "file holding the admin token, used when WAFCANARY_ADMIN_TOKEN is unset")
}

// Errors mapped to exit codes.
type (
	errConflict     struct{ error }
	errUnauthorized struct{ error }
	errUnreachable  struct{ error }
)

func (e errConflict) Unwrap() error     { return e.error }
func (e errUnauthorized) Unwrap() error { return e.error }
func (e errUnreachable) Unwrap() error  { return e.error }

func (o *clientOptions) token() (string, error) {
	if t := os.Getenv("WAFCANARY_ADMIN_TOKEN"); t != "" {
		return t, nil
	}
	b, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return "", errUnauthorized{fmt.Errorf("no admin token: set WAFCANARY_ADMIN_TOKEN or --token-file (%w)", err)}
	}
	return strings.TrimSpace(string(b)), nil
}

// client is the admin API client these options describe.
func (o *clientOptions) client() (*admin.Client, error) {
	token, err := o.token()
	if err != nil {
		return nil, err
	}
	timeout := o.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &admin.Client{URL: o.admin, Token: token, Timeout: timeout}, nil
}

// exitError maps what the admin client returned to the error kinds that
// pick the exit code.
func exitError(err error) error {
	var e *admin.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrUnreachable):
		return errUnreachable{err}
	case !errors.As(err, &e):
		return errUsage{err}
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return errUnauthorized{err}
	case http.StatusConflict:
		return errConflict{err}
	case http.StatusUnprocessableEntity:
		return errRefused{err}
	case http.StatusBadRequest, http.StatusNotFound:
		return errUsage{err}
	}
	return err
}

// do runs one call with the client these options describe.
func do[T any](o *clientOptions, call func(*admin.Client) (T, error)) (T, error) {
	c, err := o.client()
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := call(c)
	return v, exitError(err)
}

func actor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "cli"
}

func newStartCmd() *cobra.Command {
	// The server runs the gates, CRS suite included, before it answers.
	o := &clientOptions{timeout: 10 * time.Minute}
	var candidate, reason, override, cases string
	var rules []int
	var paths, hosts, only []string
	cmd := &cobra.Command{
		Use:   "start --candidate FILE --reason TEXT",
		Short: "Start a rollout of a candidate ruleset on a running wafcanary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if candidate == "" || reason == "" {
				return errUsage{errors.New("--candidate and --reason are required")}
			}
			for _, p := range []*string{&candidate, &cases} {
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
			req := admin.StartRequest{Candidate: candidate, Reason: reason, Actor: actor(),
				Scope: evidence.Scope{RuleIDs: rules, Paths: paths, Hosts: hosts}, Hosts: only, Cases: cases, OverrideGates: override}
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Start(cmd.Context(), req) })
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), st, o.output)
		},
	}
	addClientFlags(cmd, o)
	f := cmd.Flags()
	f.StringVar(&candidate, "candidate", "", "candidate ruleset file (as the server sees it), or embedded:NAME")
	f.StringVar(&reason, "reason", "", "why: recorded in the journal")
	f.IntSliceVar(&rules, "scope-rule", nil, "rule ID the change is meant to affect (repeatable)")
	f.StringSliceVar(&paths, "scope-path", nil, "path prefix the change is meant to affect (repeatable)")
	f.StringSliceVar(&hosts, "scope-host", nil, "host name the change is meant to affect (repeatable); a disagreement is in scope only on a declared host, path and rule, every dimension given")
	f.StringSliceVar(&only, "hosts", nil, "the only hosts the candidate judges (comma-separated, at most 50); every other host is served by the baseline and is not evidence")
	f.StringVar(&cases, "cases", "", "the candidate's cases file (must_pass, must_block): checked now and probed at every analysis")
	f.StringVar(&override, "override-gates", "", "start despite failed gates (forbidden edits, failing cases); the reason is journalled")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	return cmd
}

func newActionCmd(action admin.Action, short string) *cobra.Command {
	o := &clientOptions{}
	var reason, to string
	var direct etcdOptions
	cmd := &cobra.Command{
		Use:   string(action),
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if direct.set() {
				return viaEtcd(cmd, direct, action, to, reason)
			}
			if action == admin.Undo && reason == "" {
				return errUsage{errors.New("--reason is required: it is journalled with the undo")}
			}
			start := time.Now()
			req := admin.ActionRequest{Reason: reason, Actor: actor(), To: to}
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Do(cmd.Context(), action, req) })
			if err != nil {
				return err
			}
			if o.output != "json" {
				switch action {
				case admin.Rollback:
					fmt.Fprintf(cmd.OutOrStdout(), "rolled back: the baseline judges every request from now on (round trip %s)\n", time.Since(start).Round(time.Microsecond))
				case admin.Undo:
					fmt.Fprintf(cmd.OutOrStdout(), "undone: baseline %s judges every request from now on (round trip %s)\n", st.Baseline.Version, time.Since(start).Round(time.Microsecond))
				}
			}
			return printStatus(cmd.OutOrStdout(), st, o.output)
		},
	}
	addClientFlags(cmd, o)
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "why: recorded in the journal")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	if action == admin.Undo {
		f.StringVar(&to, "to", "", "the baseline version to serve again, or a unique prefix (default: the one before the current; `wafcanary history` lists them)")
	}
	if action == admin.Rollback || action == admin.Undo {
		f.StringSliceVar(&direct.endpoints, "etcd", nil, "act on the fleet through etcd (comma-separated endpoints), with no replica's admin API")
		f.StringVar(&direct.prefix, "etcd-prefix", fleet.DefaultConfig.Prefix, "the fleet's key prefix in etcd, with --etcd")
		f.StringVarP(&direct.config, "config", "c", "", "act through the etcd named in this config file's state.etcd section")
	}
	return cmd
}

func newStatusCmd() *cobra.Command {
	o := &clientOptions{}
	var watch bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the rollout's state, share, versions, last decision and evidence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			for {
				st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Status(cmd.Context()) })
				if err != nil {
					return err
				}
				if watch {
					fmt.Fprint(out, "\033[H\033[2J") // redraw in place
					fmt.Fprintf(out, "%s  (every %s, Ctrl-C to stop)\n\n", time.Now().Format(time.TimeOnly), every)
				}
				if err := printStatus(out, st, o.output); err != nil || !watch {
					return err
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw until Ctrl-C")
	cmd.Flags().DurationVar(&every, "interval", 2*time.Second, "redraw interval with --watch")
	return cmd
}

func newHistoryCmd() *cobra.Command {
	o := &clientOptions{}
	var n int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show the rollout journal: who decided what, why, on what evidence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries, err := do(o, func(c *admin.Client) ([]rollout.Entry, error) { return c.History(cmd.Context(), n) })
			if err != nil {
				return err
			}
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Status(cmd.Context()) })
			if err != nil {
				return err
			}
			return printHistory(cmd.OutOrStdout(), entries, st.Baselines, o.output)
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.Flags().IntVarP(&n, "n", "n", 50, "last N entries (0: all)")
	return cmd
}
