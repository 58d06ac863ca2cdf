// Package node is one wafcanary process: it builds the router, the
// rollout controller, the fleet member and the admin API from a validated
// configuration, runs them and shuts them down in order, reloads the
// configured rulesets, and implements the admin API. It is the only
// package that wires the others together; cmd/wafcanary binds flags and
// files to its Config and prints what it returns.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/certificate"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/metrics"
	"github.com/wafcanary/wafcanary/notification"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/spoa"
	"github.com/wafcanary/wafcanary/spop"
)

// Node is one wafcanary process: the proxy, its admin endpoints and the
// state they share. Build it with New, serve with Run. Every change of
// what it serves goes through its rollout controller, recorded first.
type Node struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	router  *router.Router
	// agent is the SPOE front-end on the router's engine; nil without
	// spoa.listen.
	agent      *spoa.Agent
	collector  *evidence.Collector
	store      store
	rollout    *rollout.Controller
	adminToken string
	// blocks remembers the last blocked requests' verdicts for explain;
	// capture, when capture.enabled, keeps the requests themselves.
	blocks  *recentBlocks
	capture *capture.Store
	// exceptions measures what the baseline's exceptions let through.
	exceptions *exception.Monitor
	// notifier tells the webhooks of each rollout event.
	notifier *notification.Notifier
	// proxyTLS and adminTLS serve the listeners' certificates, nil for
	// plain HTTP; SIGHUP loads them again.
	proxyTLS, adminTLS *certificate.Source
	// gates is what a start's gates are doing; nil when none runs.
	gates atomic.Pointer[admin.GateProgress]
	// kept reads the kept baselines' directives, for the exceptions' origins.
	kept keptDirectives

	// A fleet's replica (state.backend etcd); nil on a single node.
	etcd       *clientv3.Client
	fleetStore *fleet.Store
	member     *fleet.Member

	reloadMu sync.Mutex // one reload's compile at a time
	unlock   func()     // releases state_dir

	// beforeReload, if set, runs between a reload's compile and its
	// application, so a test can land a start in between.
	beforeReload func()
}

// store is what the node needs of the state store: the controller's
// part, and the journal for history.
type store interface {
	rollout.Store
	History(n int) ([]rollout.Entry, error)
}

// InvalidRulesetError is a ruleset that does not compile, with its file
// and line: the configured baseline at start-up, or a reload's.
type InvalidRulesetError struct{ Err error }

func (e InvalidRulesetError) Error() string { return e.Err.Error() }
func (e InvalidRulesetError) Unwrap() error { return e.Err }

// New loads the configured rulesets, builds the router and the
// controller, and puts back in service what the state says should serve:
// a rollout under way, a promotion or an undo. A baseline that does not
// compile is fatal (InvalidRulesetError): there is nothing to serve. A
// candidate that does not compile is refused, logged with its file and
// line, and the baseline serves alone. version is the build's, for
// wafcanary_build_info.
func New(cfg Config, log *slog.Logger, version string) (n *Node, err error) {
	s := &Node{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	if s.unlock, err = lockStateDir(cfg.StateDir, "listen "+cfg.Listen+", admin "+cfg.Admin.Listen); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.unlock()
		}
	}()
	// A kill between a temporary file's creation and its rename leaves it
	// behind; repeated crashes would pile them up.
	if n, err := (rollout.FileStore{Dir: cfg.StateDir}).RemoveTemp(); err != nil {
		return nil, err
	} else if n > 0 {
		log.Info("removed temporary files a crash left in state_dir", "files", n)
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = metrics.New(s.reg, version)

	if cfg.State.Backend == "etcd" {
		if s.etcd, err = cfg.State.Etcd.Client(); err != nil {
			return nil, fmt.Errorf("state.etcd: %w", err)
		}
		s.fleetStore = fleet.NewStore(s.etcd, cfg.State.Etcd, s.replicaID())
	}
	secret, err := s.routingSecret()
	if err != nil {
		return nil, err
	}
	s.adminToken = cfg.Admin.Token
	if s.adminToken == "" && len(cfg.Admin.Users) == 0 {
		// With admin.users each person brings their own credential: a
		// token anyone reading state_dir could use would be an admin
		// outside four-eyes.
		if s.adminToken, err = stateValue(cfg.StateDir, "admin.token"); err != nil {
			return nil, err
		}
	}
	conf, err := s.configured(false)
	if err != nil {
		return nil, err
	}
	if cfg.TLS.Enabled() {
		if s.proxyTLS, err = certificate.New(cfg.TLS); err != nil {
			return nil, err
		}
	}
	if cfg.Admin.TLS.Enabled() {
		if s.adminTLS, err = certificate.New(cfg.Admin.TLS); err != nil {
			return nil, fmt.Errorf("admin.%w", err)
		}
	}
	up, _ := url.Parse(cfg.Upstream) // validated with the config
	s.collector = evidence.NewCollector(evidence.NewCounters(s.reg))
	s.blocks = newRecentBlocks(1000)
	blocks := []router.BlockObserver{s.blocks}
	if cfg.Capture.Enabled {
		if s.capture, err = capture.Open(filepath.Join(cfg.StateDir, "captures"), cfg.Capture, log, nil); err != nil {
			return nil, err
		}
		s.reg.MustRegister(s.capture.Collectors()...)
		blocks = append(blocks, s.capture)
	}
	s.exceptions = exception.NewMonitor(cfg.Exceptions, s.reg, log, s.exceptionChanged)
	if cfg.Capture.Enabled {
		// Would-be blocks keep their requests as blocks do: explain shows
		// them, exceptions retire makes must_pass cases of them.
		redact := cfg.Capture
		s.exceptions.Capture = &redact
	}
	// Until the controller has decided, the router holds the configured
	// rulesets; no listener is open yet, so nothing is served from them.
	s.router, err = router.New(snapshotOf(conf), router.Options{
		Upstream: up, Routing: cfg.Routing, Shadow: cfg.Shadow, Proxy: cfg.Proxy,
		Secret: []byte(secret), Observe: router.Observers{
			Requests: []router.RequestObserver{s.metrics, s.collector},
			Shadows:  []router.ShadowObserver{s.metrics, s.collector},
			Serving:  []router.ServingObserver{s.metrics, s.exceptions},
			Blocks:   blocks,
			Samplers: []router.RequestSampler{s.exceptions},
		}, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if cfg.SPOA.Listen != "" {
		if s.agent, err = spoa.New(s.router.Engine(), cfg.SPOA, s.reg, log); err != nil {
			return nil, err
		}
	}
	sample, _ := router.ParseShare(cfg.Shadow.SamplePercent) // validated
	var source rollout.EvidenceSource = s.collector
	if cfg.Rollout.MetricsSource == "prometheus" {
		if source, err = evidence.NewPrometheusEvidence(cfg.Rollout.Prometheus, s.collector); err != nil {
			return nil, err
		}
	}
	reporter := rollout.NewMetrics(s.reg)
	s.notifier = notification.New(cfg.Notifications, s.reg, log)
	opts := rollout.Options{
		// The engine holds the routing state the controller swaps; every
		// front-end serves from it.
		Config: cfg.Rollout, Router: s.router.Engine(), Evidence: source,
		Reporter: reporter, Notify: s.decided, Probe: s.probe, Logger: log, ShadowSample: sample,
	}
	if s.etcd != nil {
		err = s.joinFleet(opts, reporter)
	} else {
		err = s.startNode(opts, conf)
	}
	if err != nil {
		return nil, err
	}
	s.logServing("start-up")
	return s, nil
}

// startNode builds a single node's controller on its state_dir and serves
// what the state and the configuration say.
func (s *Node) startNode(opts rollout.Options, conf rollout.Configured) error {
	ctx := context.Background() // start-up
	st := rollout.FileStore{Dir: s.cfg.StateDir}
	s.store = st
	opts.Store = st
	var err error
	if s.rollout, err = rollout.New(opts); err != nil {
		return err
	}
	if phase := s.rollout.State().Phase; phase.Active() {
		// A rollout under way owns the rulesets: they come back from
		// their bundles, at the saved share.
		if conf.Candidate != nil {
			s.log.Warn("rulesets.candidate is not served: a rollout is under way and owns the rulesets", "state", string(phase))
		}
		if err := s.rollout.Restore(ctx, st.LoadRuleset); err != nil {
			// Left "progressing" with nothing of it served, the rollout
			// would only end at max_duration: end it now, recorded.
			s.log.Error("cannot restore the rollout's rulesets; rolling it back", "error", err.Error())
			if _, rerr := s.rollout.Rollback(ctx, "startup", "the rollout's rulesets cannot be served after a restart: "+err.Error(), time.Now); rerr != nil {
				return fmt.Errorf("rolling back a rollout whose rulesets cannot be served: %w", rerr)
			}
		}
		return nil
	}
	// The state's baseline (a promotion, an undo) outlives an unchanged
	// configured file; a changed file is a new baseline, journalled.
	if _, err := s.rollout.Reload(ctx, conf, "startup", time.Now); err != nil {
		return fmt.Errorf("serving the configured rulesets: %w", err)
	}
	return nil
}

// logServing says what serves and why: the first line an operator reads
// after a restart or a reload.
func (s *Node) logServing(when string) {
	snap, st := s.router.Snapshot(), s.rollout.State()
	source := "rulesets.baseline"
	switch {
	case st.Phase.Active():
		source = "the rollout under way"
	case s.member != nil && st.Baseline.Version == snap.Baseline.Version:
		source = "the fleet's state (" + decisionOf(st) + ")"
	case st.Baseline.Version == snap.Baseline.Version && st.Configured != "" && st.Configured != snap.Baseline.Version:
		source = "the rollout state (" + decisionOf(st) + "); rulesets.baseline, unchanged, is version " + st.Configured
	}
	s.log.Info("serving", "when", when, "baseline", snap.Baseline.Version, "baseline_path", snap.Baseline.Path,
		"baseline_from", source, "candidate", versionOf(snap.Candidate), "candidate_percent", snap.Share.Percent(), "state", string(st.Phase))
}

func decisionOf(st rollout.State) string {
	if st.LastDecision == nil {
		return string(st.Phase)
	}
	return string(st.LastDecision.Action) + " by " + st.LastDecision.Actor + " at " + st.LastDecision.Time.Format(time.RFC3339)
}

func versionOf(rs *ruleset.Ruleset) string {
	if rs == nil {
		return ""
	}
	return rs.Version
}

// Close releases what New took without Run: state_dir's lock. Run
// releases it itself when it returns.
func (s *Node) Close() { s.unlock() }

// Metrics is the node's registry: what /metrics serves.
func (s *Node) Metrics() prometheus.Gatherer { return s.reg }

// Handler is the proxy: what the listen address serves.
func (s *Node) Handler() http.Handler { return s.router }

// Run serves the proxy on proxyLn and the admin endpoints on adminLn until
// ctx is done (RunListeners).
func (s *Node) Run(ctx context.Context, proxyLn, adminLn net.Listener) error {
	return s.RunListeners(ctx, Listeners{Proxy: proxyLn, Admin: adminLn})
}

// Listeners are what a node serves on. Proxy or SPOA may be nil: a node
// serves the HTTP proxy, the SPOE agent (spoa.listen), or both, on one
// engine.
type Listeners struct {
	Proxy, Admin, SPOA net.Listener
}

// RunListeners serves the front-ends and the admin endpoints until ctx is
// done, then stops deciding, drains in-flight requests and stops the
// shadow workers, in that order.
func (s *Node) RunListeners(ctx context.Context, ln Listeners) error {
	proxyLn, adminLn := ln.Proxy, ln.Admin
	proxy := &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.Proxy.ReadTimeout,
		MaxHeaderBytes:    s.cfg.Proxy.MaxHeaderBytes,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// The admin API's requests are small; a start may take minutes to
	// answer (the gates), which is the handler's time, not the read's.
	adm := &http.Server{
		Handler: admin.Handler(admin.Options{Gatherer: s.reg, Token: s.adminToken, Users: s.cfg.Admin.Users, Status: s.Status, Rollouts: s, Explain: s, Rulesets: s, Blocks: s, Exceptions: s,
			AllowedHosts: s.cfg.Admin.Hosts()}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug), // TLS handshake refusals, at debug
	}
	shadowCtx, stopShadow := context.WithCancel(context.WithoutCancel(ctx))
	shadowDone := make(chan struct{})
	go func() { s.router.Run(shadowCtx); close(shadowDone) }()
	exceptionsDone := make(chan struct{})
	go func() { s.exceptions.Run(shadowCtx); close(exceptionsDone) }()
	captureDone := make(chan struct{})
	if s.capture != nil {
		// Writes until the proxy has stopped, then saves its index.
		go func() { s.capture.Run(shadowCtx); close(captureDone) }()
	} else {
		close(captureDone)
	}
	notifyDone := make(chan struct{})
	go func() { s.notifier.Run(shadowCtx); close(notifyDone) }()
	controlCtx, stopControl := context.WithCancel(ctx)
	controlDone := make(chan struct{})
	go func() { s.rollout.Run(controlCtx); close(controlDone) }()
	memberDone := make(chan struct{})
	if s.member != nil {
		go func() { s.member.Run(controlCtx); close(memberDone) }()
	} else {
		close(memberDone)
	}

	errc := make(chan error, 3)
	serve := func(srv *http.Server, ln net.Listener, src *certificate.Source) error {
		if src == nil {
			return srv.Serve(ln)
		}
		// ServeTLS offers HTTP/2 as well; the certificate is read per
		// handshake, so a SIGHUP swaps it without dropping a connection.
		srv.TLSConfig = src.TLSConfig()
		return srv.ServeTLS(ln, "", "")
	}
	if proxyLn != nil {
		go func() { errc <- serve(proxy, proxyLn, s.proxyTLS) }()
	}
	var agent *spop.Server
	if s.agent != nil && ln.SPOA != nil {
		agent = s.agent.Server()
		go func() { errc <- agent.Serve(ln.SPOA) }()
	}
	go func() { errc <- serve(adm, adminLn, s.adminTLS) }()
	var err error
	select {
	case <-ctx.Done():
		// SIGTERM or SIGINT (the command's context): say so, so a log
		// shows a stop asked for apart from a crash.
		s.log.Info("shutting down: no new decisions, draining requests", "cause", context.Cause(ctx).Error())
	case err = <-errc:
		err = fmt.Errorf("listener stopped: %w", err)
		s.log.Error("shutting down", "error", err.Error())
	}
	stopping := time.Now()
	defer func() { s.log.Info("stopped", "seconds", time.Since(stopping).Seconds()) }()
	stopControl()
	<-controlDone
	<-memberDone // resigned: another replica leads now, not after the lease
	if s.etcd != nil {
		defer s.etcd.Close()
	}
	defer s.unlock()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if e := proxy.Shutdown(shutdownCtx); e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	if agent != nil {
		// In-flight messages are answered; HAProxy reconnects elsewhere
		// or applies its own fail mode.
		if e := agent.Shutdown(shutdownCtx); e != nil && !errors.Is(e, spop.ErrServerClosed) {
			err = errors.Join(err, e)
		}
	}
	_ = adm.Shutdown(shutdownCtx)
	stopShadow()
	<-shadowDone
	<-exceptionsDone
	// The signatures' index saved, before state_dir is unlocked.
	<-captureDone
	<-notifyDone // its bounded drain (notification.DefaultDrain): what it cannot deliver is counted
	return err
}
