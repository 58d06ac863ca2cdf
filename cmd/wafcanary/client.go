package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/node"
	"github.com/wafcanary/wafcanary/rollout"
)

// clientOptions are the flags every command that talks to a running
// wafcanary shares.
type clientOptions struct {
	admin     string
	tokenFile string
	config    string
	// caFile verifies an https:// admin listener; certFile and keyFile
	// are the client certificate one that requires them asks for.
	caFile, certFile, keyFile string
	output                    string
	// timeout bounds the whole call; 0 means 30 seconds.
	timeout time.Duration
	flags   *pflag.FlagSet
}

// defaultAdmin is admin.listen's default, as a URL.
const defaultAdmin = "http://127.0.0.1:9090"

func addClientFlags(cmd *cobra.Command, o *clientOptions) {
	f := cmd.Flags()
	o.flags = f
	f.StringVar(&o.admin, "admin", defaultAdmin, "admin URL of the running wafcanary (default: WAFCANARY_ADMIN, else admin.listen of --config, else this)")
	f.StringVar(&o.tokenFile, "token-file", "state/admin.token", "file holding the admin token, used when WAFCANARY_ADMIN_TOKEN is unset (default with --config: admin.token, else state_dir/admin.token)")
	f.StringVarP(&o.config, "config", "c", "", "the server's configuration file: the admin address and token come from it")
	f.DurationVar(&o.timeout, "timeout", o.timeout, "give up on an unresponsive server after this long (default 30s; start waits for the gates)")
	f.StringVar(&o.caFile, "ca-file", "", "CA certificates (PEM) that sign an https:// admin listener's certificate")
	f.StringVar(&o.certFile, "cert-file", "", "client certificate (PEM) for an admin listener with admin.tls.client_ca_file")
	f.StringVar(&o.keyFile, "key-file", "", "the client certificate's key (PEM)")
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

// target says where the admin API is and where its token comes from: a
// flag given wins, then the environment, then the server's configuration
// file, then the defaults.
type target struct {
	url, token, tokenFrom string
}

func (o *clientOptions) target() (target, error) {
	var cfg *node.Config
	if o.config != "" {
		c, err := loadConfig(o.config, nil)
		if err != nil {
			return target{}, errUsage{err}
		}
		cfg = &c
	}
	changed := func(name string) bool { return o.flags != nil && o.flags.Changed(name) }
	var t target
	switch {
	case changed("admin"):
		t.url = o.admin
	case os.Getenv("WAFCANARY_ADMIN") != "":
		t.url = os.Getenv("WAFCANARY_ADMIN")
	case cfg != nil:
		t.url = adminURL(cfg.Admin.Listen)
		if cfg.Admin.TLS.Enabled() {
			t.url = "https" + strings.TrimPrefix(t.url, "http")
		}
	default:
		t.url = o.admin
	}
	u, err := normalURL(t.url)
	if err != nil {
		return target{}, errUsage{err}
	}
	t.url = u
	file := o.tokenFile
	switch {
	case os.Getenv("WAFCANARY_ADMIN_TOKEN") != "":
		t.token, t.tokenFrom = os.Getenv("WAFCANARY_ADMIN_TOKEN"), "WAFCANARY_ADMIN_TOKEN"
		return t, nil
	case changed("token-file"):
	case cfg != nil && cfg.Admin.Token != "":
		t.token, t.tokenFrom = cfg.Admin.Token, "admin.token in "+o.config
		return t, nil
	case cfg != nil:
		file = filepath.Join(cfg.StateDir, "admin.token")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return target{}, errUnauthorized{fmt.Errorf("no admin token: set WAFCANARY_ADMIN_TOKEN, or give --token-file or -c with the server's configuration (the server keeps a generated token in state_dir/admin.token): %w", err)}
	}
	t.token, t.tokenFrom = strings.TrimSpace(string(b)), file
	return t, nil
}

// adminURL turns admin.listen into the URL a client on this machine
// reaches it at: an unspecified address is reached on loopback.
func adminURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// normalURL accepts host:port as http://host:port and refuses anything
// that is not an http(s) URL, saying what was wanted.
func normalURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--admin %q: want the admin listener's URL, such as http://127.0.0.1:9090", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// client is the admin API client these options describe.
func (o *clientOptions) client() (*admin.Client, error) {
	// Before anything is asked: an action must not be carried out and
	// then fail on how to print its answer.
	if o.output != "" && o.output != "text" && o.output != "json" {
		return nil, errUsage{fmt.Errorf("--output: want text or json, got %q", o.output)}
	}
	t, err := o.target()
	if err != nil {
		return nil, err
	}
	timeout := o.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	c := &admin.Client{URL: t.url, Token: t.token, TokenFrom: t.tokenFrom, Timeout: timeout}
	if o.caFile != "" || o.certFile != "" || o.keyFile != "" {
		tc, err := o.tlsConfig()
		if err != nil {
			return nil, errUsage{err}
		}
		c.HTTP = &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	}
	return c, nil
}

// tlsConfig trusts --ca-file (with the system's roots) and presents
// --cert-file, for an https:// admin listener.
func (o *clientOptions) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", o.caFile)
		}
		tc.RootCAs = pool
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("--cert-file and --key-file go together")
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file, --key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// exitError maps what the admin client returned to the error kinds that
// pick the exit code.
func exitError(err error) error {
	var e *admin.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrUnreachable), errors.Is(err, admin.ErrNotWafcanary):
		return errUnreachable{err}
	case !errors.As(err, &e):
		return errUsage{err}
	}
	if e.Kind == admin.KindInvalidRuleset {
		return errInvalidRuleset{err}
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
	var candidate, exclusionFile, reason, override, forceBase, cases string
	var rules []int
	var paths, hosts, only []string
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
				Scope: evidence.Scope{RuleIDs: rules, Paths: paths, Hosts: hosts}, Hosts: only, Cases: cases, OverrideGates: override, ForceBase: forceBase}
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
	f.StringVar(&override, "override-gates", "", "start despite failed gates (forbidden edits, failing cases); the reason is journalled")
	f.StringVar(&forceBase, "force-base", "", "start a candidate not built on the served baseline (written from another and not rebased, or dropping its exclusions); the reason is journalled with what it undoes")
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

func newActionCmd(action admin.Action, short string) *cobra.Command {
	o := &clientOptions{}
	var reason, to string
	var full bool
	var direct etcdOptions
	cmd := &cobra.Command{
		Use:   string(action),
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			direct.config = o.config
			if direct.set() {
				return viaEtcd(cmd, direct, action, to, reason)
			}
			if action == admin.Undo && reason == "" {
				return errUsage{errors.New("--reason is required: it is journalled with the undo")}
			}
			start := time.Now()
			req := admin.ActionRequest{Reason: reason, Actor: actor(), To: to, Full: full}
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Do(cmd.Context(), action, req) })
			if err != nil {
				return err
			}
			if o.output != "json" {
				switch action {
				case admin.Rollback:
					fmt.Fprintf(cmd.OutOrStdout(), "rolled back: the baseline judges every request from now on (round trip %s)\n", time.Since(start).Round(time.Microsecond))
				case admin.Undo:
					if st.Unchanged != "" {
						// Asked again (a double click, a retry): success, and
						// nothing changed or recorded.
						fmt.Fprintf(cmd.OutOrStdout(), "nothing to undo: %s\n", st.Unchanged)
						break
					}
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
	if action == admin.Promote {
		f.BoolVar(&full, "full", false, "make the candidate the baseline now, skipping the remaining steps (journalled as such); without it, promote moves one step")
	}
	if action == admin.Undo {
		f.StringVar(&to, "to", "", "the baseline version to serve again, or a unique prefix (default: the one before the current; `wafcanary history` lists them)")
	}
	if action == admin.Rollback || action == admin.Undo {
		f.StringSliceVar(&direct.endpoints, "etcd", nil, "act on the fleet through etcd (comma-separated endpoints), with no replica's admin API")
		f.StringVar(&direct.prefix, "etcd-prefix", fleet.DefaultConfig.Prefix, "the fleet's key prefix in etcd, with --etcd")
		f.BoolVar(&direct.viaEtcd, "via-etcd", false, "act through the etcd of --config's state.etcd section (or --etcd), needing no replica")
	}
	return cmd
}

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

func newHistoryCmd() *cobra.Command {
	o := &clientOptions{}
	var n int
	var all bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show the rollout journal: who decided what, why, on what evidence",
		Long: `history shows the journal's decisions, oldest first, in local time: starts,
advances, promotions, rollbacks, undos, reloads, pauses. The analyses that
changed nothing (hold, and await_approval after the first) are left out
unless --all is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fetch := n
			if !all {
				fetch = 0 // holds are filtered here, so the last n decisions need the whole journal
			}
			entries, err := do(o, func(c *admin.Client) ([]rollout.Entry, error) { return c.History(cmd.Context(), fetch) })
			if err != nil {
				return err
			}
			hidden := 0
			if !all {
				entries, hidden = decisionsOnly(entries)
				if n > 0 && len(entries) > n {
					entries = entries[len(entries)-n:]
				}
			}
			st, err := do(o, func(c *admin.Client) (admin.Status, error) { return c.Status(cmd.Context()) })
			if err != nil {
				return err
			}
			if err := printHistory(cmd.OutOrStdout(), entries, st.Baselines, o.output); err != nil {
				return err
			}
			if hidden > 0 && o.output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "(%d analyses that changed nothing are not shown; --all shows them)\n", hidden)
			}
			return nil
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.Flags().IntVarP(&n, "n", "n", 50, "last N entries (0: all)")
	cmd.Flags().BoolVar(&all, "all", false, "also the analyses that changed nothing (hold)")
	return cmd
}

// decisionsOnly drops the analyses that changed nothing: holds, and an
// await_approval that repeats the one before it.
func decisionsOnly(entries []rollout.Entry) ([]rollout.Entry, int) {
	var out []rollout.Entry
	hidden := 0
	for i, e := range entries {
		repeat := e.Action == rollout.ActionAwait && i > 0 && entries[i-1].Action == rollout.ActionAwait
		if e.Action == rollout.ActionHold || repeat {
			hidden++
			continue
		}
		out = append(out, e)
	}
	return out, hidden
}
