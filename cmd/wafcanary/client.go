package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wafcanary/wafcanary/fleet"
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

// call sends one API request and decodes the JSON answer into out.
func (o *clientOptions) call(ctx context.Context, method, path string, body, out any) error {
	token, err := o.token()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(o.admin, "/")+path, rd)
	if err != nil {
		return errUsage{fmt.Errorf("--admin: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	timeout := o.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return errUnreachable{fmt.Errorf("cannot reach wafcanary at %s: %w", o.admin, err)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		err := fmt.Errorf("%s %s: %s", method, path, msg)
		switch resp.StatusCode {
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
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
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
	var paths []string
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
			var st statusView
			body := map[string]any{"candidate": candidate, "reason": reason, "actor": actor(),
				"scope": map[string]any{"rule_ids": rules, "paths": paths}, "cases": cases, "override_gates": override}
			if err := o.call(cmd.Context(), "POST", "/api/v1/rollout/start", body, &st); err != nil {
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
	f.StringVar(&cases, "cases", "", "the candidate's cases file (must_pass, must_block): checked now and probed at every analysis")
	f.StringVar(&override, "override-gates", "", "start despite failed gates (forbidden edits, failing cases); the reason is journalled")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	return cmd
}

func newActionCmd(action, short string) *cobra.Command {
	o := &clientOptions{}
	var reason string
	var direct etcdOptions
	cmd := &cobra.Command{
		Use:   action,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if action == "rollback" && direct.set() {
				return rollbackViaEtcd(cmd, direct, reason)
			}
			var st statusView
			start := time.Now()
			if err := o.call(cmd.Context(), "POST", "/api/v1/rollout/"+action, map[string]string{"reason": reason, "actor": actor()}, &st); err != nil {
				return err
			}
			if action == "rollback" && o.output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "rolled back: the baseline judges every request from now on (round trip %s)\n", time.Since(start).Round(time.Microsecond))
			}
			return printStatus(cmd.OutOrStdout(), st, o.output)
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVar(&reason, "reason", "", "why: recorded in the journal")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	if action == "rollback" {
		f := cmd.Flags()
		f.StringSliceVar(&direct.endpoints, "etcd", nil, "roll the fleet back through etcd (comma-separated endpoints), with no replica's admin API")
		f.StringVar(&direct.prefix, "etcd-prefix", fleet.DefaultConfig.Prefix, "the fleet's key prefix in etcd, with --etcd")
		f.StringVarP(&direct.config, "config", "c", "", "roll back through the etcd named in this config file's state.etcd section")
	}
	return cmd
}

// etcdOptions reach a fleet's state in etcd directly.
type etcdOptions struct {
	endpoints []string
	prefix    string
	config    string
}

func (o etcdOptions) set() bool { return len(o.endpoints) > 0 || o.config != "" }

// rollbackViaEtcd writes the rolled-back state into etcd; every replica
// watching it serves the baseline alone within a second. It needs no
// replica to answer, only etcd.
func rollbackViaEtcd(cmd *cobra.Command, o etcdOptions, reason string) error {
	cfg := fleet.DefaultConfig
	if o.config != "" {
		c, err := loadConfig(o.config, nil)
		if err != nil {
			return errUsage{err}
		}
		if c.State.Backend != "etcd" {
			return errUsage{fmt.Errorf("%s: state.backend is %q, not etcd: roll back through the admin API", o.config, c.State.Backend)}
		}
		cfg = c.State.Etcd
	}
	if len(o.endpoints) > 0 {
		cfg.Endpoints = o.endpoints
	}
	if cmd.Flags().Changed("etcd-prefix") || o.config == "" {
		cfg.Prefix = o.prefix
	}
	if err := cfg.Validate(); err != nil {
		return errUsage{fmt.Errorf("etcd: %w", err)}
	}
	cli, err := cfg.Client()
	if err != nil {
		return errUnreachable{err}
	}
	defer cli.Close()
	start := time.Now()
	prev, did, err := fleet.NewStore(cli, cfg, "").Rollback(actor(), reason, time.Now())
	if err != nil {
		return errUnreachable{err}
	}
	if !did {
		fmt.Fprintf(cmd.OutOrStdout(), "nothing to roll back: the fleet's rollout is %s\n", prev.Phase)
		return nil
	}
	fmt.Fprintf(cmd.OutOrStdout(), "rolled back %s in etcd (%s); every replica serves baseline %s alone as it sees the change\n",
		prev.Candidate.Version, time.Since(start).Round(time.Microsecond), prev.Baseline.Version)
	return nil
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
				var st statusView
				if err := o.call(cmd.Context(), "GET", "/api/v1/status", nil, &st); err != nil {
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
			var entries []map[string]any
			if err := o.call(cmd.Context(), "GET", fmt.Sprintf("/api/v1/rollout/history?n=%d", n), nil, &entries); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if o.output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			for _, e := range entries {
				fmt.Fprintf(out, "%s  %-9s %-11s by %-10s step %v at %v%%  %s\n",
					e["time"], e["action"], e["state"], e["actor"], e["step"], e["candidate_percent"], e["reason"])
			}
			return nil
		},
	}
	addClientFlags(cmd, o)
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.Flags().IntVarP(&n, "n", "n", 50, "last N entries (0: all)")
	return cmd
}

// printStatus renders a status document as text or JSON.
func printStatus(out io.Writer, st statusView, format string) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	if format != "text" {
		return errUsage{fmt.Errorf("--output: want text or json, got %q", format)}
	}
	fmt.Fprintf(out, "state       %s", st.State)
	if st.State == "shadow" || st.State == "progressing" || st.State == "paused" {
		fmt.Fprintf(out, " (step %d of %d)", st.Step+1, st.Steps)
	}
	fmt.Fprintf(out, "\nshare       candidate on %g%% of clients, shadow on %g%% of requests\n", st.CandidatePercent, st.ShadowSamplePercent)
	if st.Baseline != nil {
		fmt.Fprintf(out, "baseline    %s  %s\n", st.Baseline.Version, st.Baseline.Path)
	}
	if st.Candidate != nil {
		fmt.Fprintf(out, "candidate   %s  %s\n", st.Candidate.Version, st.Candidate.Path)
	}
	if f := st.Fleet; f != nil {
		store := "etcd up"
		if !f.StoreUp {
			store = "etcd UNREACHABLE (" + f.StoreError + "): serving the last routing, no decisions"
		}
		fmt.Fprintf(out, "fleet       replica %s, leader %s; %s\n", f.Replica, f.Leader, store)
		for _, r := range f.Replicas {
			cand := "-"
			if r.Candidate != "" {
				cand = fmt.Sprintf("%s at %g%%", r.Candidate, r.CandidatePercent)
			}
			lead := ""
			if r.Leader {
				lead = " (leader)"
			}
			fmt.Fprintf(out, "  %-20s baseline %s, candidate %s, state revision %d%s\n", r.ID, r.Baseline, cand, r.StateRevision, lead)
		}
	}
	if d := st.LastDecision; d != nil {
		fmt.Fprintf(out, "last        %s by %s, %s ago: %s\n", d.Action, d.Actor, time.Since(d.Time).Round(time.Second), d.Reason)
		if d.Analysis != nil {
			fmt.Fprintln(out, "evidence")
			for _, oc := range d.Analysis.Outcomes {
				req := " "
				if oc.Required {
					req = "*"
				}
				fmt.Fprintf(out, "  %s %-16s %-12s %-8s %s\n", req, oc.Check, oc.Verdict, oc.Window, oc.Reason)
			}
			fmt.Fprintln(out, "  (* must pass to advance; window: rollout = since the rollout started, step = since the step started)")
		}
	}
	return nil
}
