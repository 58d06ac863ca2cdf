package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/metrics"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// server is one wafcanary process: the proxy, its admin endpoints and the
// state they share.
type server struct {
	cfg        Config
	log        *slog.Logger
	reg        *prometheus.Registry
	metrics    *metrics.Metrics
	router     *router.Router
	adminToken string

	reloadMu sync.Mutex // one reload at a time
}

// loadRuleset loads a file, or a shipped ruleset named "embedded:NAME".
func loadRuleset(spec string) (*ruleset.Ruleset, error) {
	if name, ok := strings.CutPrefix(spec, "embedded:"); ok {
		return ruleset.LoadFS(configs.Rulesets, name, spec)
	}
	return ruleset.Load(spec)
}

// newServer loads the rulesets and builds the router. A baseline that does
// not compile is fatal: there is nothing to serve. A candidate that does
// not compile is refused, logged with its file and line, and the baseline
// serves alone.
func newServer(cfg Config, log *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = metrics.New(s.reg, version)

	secret := cfg.Routing.HashSecret
	var err error
	if secret == "" {
		if secret, err = stateValue(cfg.StateDir, "routing.secret"); err != nil {
			return nil, err
		}
	}
	s.adminToken = cfg.Admin.Token
	if s.adminToken == "" {
		if s.adminToken, err = stateValue(cfg.StateDir, "admin.token"); err != nil {
			return nil, err
		}
	}
	snap, err := s.buildSnapshot(false)
	if err != nil {
		return nil, err
	}
	up, _ := url.Parse(cfg.Upstream) // validated with the config
	s.router, err = router.New(snap, router.Options{
		Upstream: up, Routing: cfg.Routing, Shadow: cfg.Shadow, Proxy: cfg.Proxy,
		Secret: []byte(secret), Observer: s.metrics, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// buildSnapshot compiles the configured rulesets into a routing snapshot.
// A candidate that does not compile is always refused; strict makes that
// an error (a reload keeps what serves), otherwise the baseline serves
// alone (start-up: a broken candidate must not take production down).
func (s *server) buildSnapshot(strict bool) (*router.Snapshot, error) {
	base, err := loadRuleset(s.cfg.Rulesets.Baseline)
	if err != nil {
		s.metrics.RulesetLoadFailed("baseline")
		return nil, errInvalidRuleset{err}
	}
	s.log.Info("ruleset loaded", "arm", "baseline", "path", base.Path, "version", base.Version, "rules", len(base.Rules))
	snap := &router.Snapshot{Baseline: base}
	if s.cfg.Rulesets.Candidate == "" {
		return snap, nil
	}
	cand, err := loadRuleset(s.cfg.Rulesets.Candidate)
	if err != nil {
		s.metrics.RulesetLoadFailed("candidate")
		if strict {
			base.Retire()
			return nil, errInvalidRuleset{err}
		}
		s.log.Error("candidate ruleset refused; the baseline serves alone", "error", err.Error())
		return snap, nil
	}
	s.log.Info("ruleset loaded", "arm", "candidate", "path", cand.Path, "version", cand.Version, "rules", len(cand.Rules))
	snap.Candidate = cand
	snap.Share, _ = router.ParseShare(s.cfg.Routing.CandidatePercent)    // validated
	snap.ShadowSample, _ = router.ParseShare(s.cfg.Shadow.SamplePercent) // validated
	return snap, nil
}

// reload recompiles the ruleset files and swaps them in. Whatever fails,
// the rulesets in service keep serving.
func (s *server) reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	snap, err := s.buildSnapshot(true)
	if err != nil {
		s.log.Error("reload refused; rulesets in service keep serving", "error", err.Error())
		return err
	}
	if err := s.router.Swap(snap); err != nil {
		snap.Baseline.Retire()
		if snap.Candidate != nil {
			snap.Candidate.Retire()
		}
		return err
	}
	s.log.Info("rulesets reloaded", "baseline", snap.Baseline.Version, "candidate", versionOf(snap.Candidate))
	return nil
}

func versionOf(rs *ruleset.Ruleset) string {
	if rs == nil {
		return ""
	}
	return rs.Version
}

// status is what GET /api/v1/status shows.
func (s *server) status() any {
	snap := s.router.Snapshot()
	return map[string]any{
		"baseline":              map[string]any{"path": snap.Baseline.Path, "version": snap.Baseline.Version},
		"candidate":             candidateStatus(snap.Candidate),
		"candidate_percent":     snap.Share.Percent(),
		"shadow_sample_percent": snap.ShadowSample.Percent(),
	}
}

func candidateStatus(rs *ruleset.Ruleset) any {
	if rs == nil {
		return nil
	}
	return map[string]any{"path": rs.Path, "version": rs.Version}
}

// run serves the proxy on proxyLn and the admin endpoints on adminLn until
// ctx is done, then drains in-flight requests and stops the shadow workers.
func (s *server) run(ctx context.Context, proxyLn, adminLn net.Listener) error {
	proxy := &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	adm := &http.Server{
		Handler:           admin.Handler(s.reg, s.adminToken, s.status),
		ReadHeaderTimeout: 10 * time.Second,
	}
	shadowCtx, stopShadow := context.WithCancel(context.WithoutCancel(ctx))
	shadowDone := make(chan struct{})
	go func() { s.router.Run(shadowCtx); close(shadowDone) }()

	errc := make(chan error, 2)
	go func() { errc <- proxy.Serve(proxyLn) }()
	go func() { errc <- adm.Serve(adminLn) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("listener stopped: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if e := proxy.Shutdown(shutdownCtx); e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	_ = adm.Shutdown(shutdownCtx)
	stopShadow()
	<-shadowDone
	return err
}

// errInvalidRuleset marks a ruleset that failed to compile, for the exit code.
type errInvalidRuleset struct{ error }

func (e errInvalidRuleset) Unwrap() error { return e.error }
