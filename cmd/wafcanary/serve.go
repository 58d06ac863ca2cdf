package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/wafcanary/wafcanary/gc"
	"github.com/wafcanary/wafcanary/node"
)

func newServeCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy with the configured baseline and candidate rulesets",
		Long: `Run the proxy. Configuration comes from --config (YAML), WAFCANARY_*
environment variables (WAFCANARY_ROUTING_CANDIDATE_PERCENT for
routing.candidate_percent) and flags, each overriding the one before.
SIGHUP recompiles the ruleset files; a ruleset that fails to compile is
refused and the rulesets in service keep serving. It also reads the
configuration file again: a changed rollout section (steps, policy,
max_duration) applies to the next rollout, journalled, and is refused
while one runs; other changed keys are logged as needing a restart. After a promotion or an
undo the state's baseline keeps serving while rulesets.baseline is
unchanged; a changed file is a new baseline, journalled. Refused while a
rollout runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(file, cmd.Flags())
			if err != nil {
				return errUsage{err}
			}
			log := newLogger(cfg.Log.Level)
			// Before the rulesets compile: their allocations are the
			// first the collector's settings govern.
			g, err := cfg.GC.Apply(gc.ProcessEnv)
			if err != nil {
				return errUsage{fmt.Errorf("gc.%w", err)}
			}
			log.Info("garbage collector", "percent", g.Percent, "percent_from", g.PercentFrom,
				"memory_limit_bytes", g.Limit, "memory_limit_from", g.LimitFrom)
			s, err := node.New(cfg, log, buildVersion())
			if err != nil {
				return err
			}
			// ruleset.Load hands each compile's garbage back; what New
			// did after the last one (state, kept bundles, the gates'
			// cases) is handed back here, one collection at start rather
			// than an idle process holding it.
			debug.FreeOSMemory()
			ln, err := listen(cfg)
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					// The file again, for the rollout section (steps,
					// policy) of the next rollout; the rulesets' files
					// again too. Each is logged inside, and what serves
					// keeps serving when either is refused.
					if c, err := loadConfig(file, cmd.Flags()); err != nil {
						log.Error("configuration not reloaded", "error", err.Error())
					} else {
						_ = s.Reconfigure(cmd.Context(), c)
					}
					_ = s.Reload()
				}
			}()
			log.Info("serving", "listen", addrOf(ln.Proxy), "upstream", cfg.Upstream, "spoa_listen", addrOf(ln.SPOA),
				"admin", ln.Admin.Addr().String(), "admin_token_file", tokenHint(cfg))
			return s.RunListeners(cmd.Context(), ln)
		},
	}
	addConfigFlags(cmd, &file)
	return cmd
}

// addConfigFlags declares the flags that override config keys (flagKeys).
func addConfigFlags(cmd *cobra.Command, file *string) {
	f := cmd.Flags()
	f.StringVarP(file, "config", "c", "", "YAML configuration file (see configs/wafcanary.yaml)")
	f.String("listen", "", "proxy listen address (listen)")
	f.String("upstream", "", "upstream URL (upstream)")
	f.String("state-dir", "", "state directory (state_dir)")
	f.String("admin-listen", "", "admin listen address (admin.listen)")
	f.String("spoa-listen", "", "HAProxy SPOE agent listen address, beside or instead of the proxy (spoa.listen)")
	f.String("baseline", "", "baseline ruleset file, or embedded:NAME (rulesets.baseline)")
	f.String("candidate", "", "candidate ruleset file, or embedded:NAME (rulesets.candidate)")
	f.Float64("candidate-percent", 0, "share of clients on the candidate, 0-100 (routing.candidate_percent)")
	f.Float64("shadow-percent", 0, "share of requests evaluated in shadow, 0-100 (shadow.sample_percent)")
	f.String("log-level", "", "debug, info, warn or error (log.level)")
}

// listen opens the configured listeners: the proxy's and the agent's,
// each when set, and the admin API's.
func listen(cfg node.Config) (node.Listeners, error) {
	var ln node.Listeners
	closeAll := func() {
		for _, l := range []net.Listener{ln.Proxy, ln.SPOA, ln.Admin} {
			if l != nil {
				l.Close()
			}
		}
	}
	var err error
	if cfg.Listen != "" {
		if ln.Proxy, err = net.Listen("tcp", cfg.Listen); err != nil {
			return ln, fmt.Errorf("listen: %w (set listen or --listen to a free address)", err)
		}
	}
	if cfg.SPOA.Listen != "" {
		if ln.SPOA, err = net.Listen("tcp", cfg.SPOA.Listen); err != nil {
			closeAll()
			return ln, fmt.Errorf("spoa.listen: %w (set spoa.listen or --spoa-listen to a free address)", err)
		}
	}
	if ln.Admin, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
		closeAll()
		return ln, fmt.Errorf("admin.listen: %w (set admin.listen or --admin-listen to a free loopback address)", err)
	}
	return ln, nil
}

// addrOf is a listener's address for the log, "" for none.
func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// tokenHint says where the admin token is without printing it.
func tokenHint(cfg node.Config) string {
	if cfg.Admin.Token != "" {
		return "(from configuration)"
	}
	return cfg.StateDir + "/admin.token"
}
