package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/fleet"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/metrics"
	"github.com/wafcanary/wafcanary/rollout"
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
	collector  *rollout.Collector
	store      store
	rollout    *rollout.Controller
	adminToken string

	// A fleet's replica (state.backend etcd); nil on a single node.
	etcd       *clientv3.Client
	fleetStore *fleet.Store
	member     *fleet.Member

	reloadMu sync.Mutex // one reload at a time
}

// store is what the server needs of the state store: the controller's
// part, and the journal for history.
type store interface {
	rollout.Store
	History(n int) ([]rollout.Entry, error)
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

	var err error
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
	s.collector = rollout.NewCollector(metrics.NewEvidence(s.reg))
	s.router, err = router.New(snap, router.Options{
		Upstream: up, Routing: cfg.Routing, Shadow: cfg.Shadow, Proxy: cfg.Proxy,
		Secret: []byte(secret), Observer: router.Tee(s.metrics, s.collector), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	sample, _ := router.ParseShare(cfg.Shadow.SamplePercent) // validated
	var evidence rollout.EvidenceSource = s.collector
	if cfg.Rollout.MetricsSource == "prometheus" {
		if evidence, err = fleet.NewPrometheusEvidence(cfg.Rollout.Prometheus, s.collector); err != nil {
			return nil, err
		}
	}
	reporter := metrics.NewRollout(s.reg)
	opts := rollout.Options{
		Config: cfg.Rollout, Router: s.router, Evidence: evidence,
		Reporter: reporter, Probe: s.probe, Logger: log, ShadowSample: sample,
	}
	if s.etcd == nil {
		s.store = rollout.FileStore{Dir: cfg.StateDir}
		opts.Store = s.store
		if s.rollout, err = rollout.New(opts); err != nil {
			return nil, err
		}
		// A rollout under way (or a promotion) outlives the process: its
		// rulesets come back from their bundles, at the saved share.
		if err := s.rollout.Restore(s.store.LoadRuleset); err != nil {
			log.Error("cannot restore the rollout's rulesets; serving the configured ones", "error", err.Error())
		}
		return s, nil
	}
	return s, s.joinFleet(opts, reporter)
}

// replicaID names this replica in the fleet: state.replica_id, or the
// host name and proxy port.
func (s *server) replicaID() string {
	if s.cfg.State.ReplicaID != "" {
		return s.cfg.State.ReplicaID
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(s.cfg.Listen)
	return host + ":" + port
}

// joinFleet wires the controller to the shared state in etcd. The
// replica serves the fleet's routing before it takes traffic when etcd
// answers; when it does not, it serves the configured baseline and
// follows as soon as etcd is back.
func (s *server) joinFleet(opts rollout.Options, reporter *metrics.Rollout) error {
	st := s.fleetStore
	s.store = st
	s.member = fleet.NewMember(fleet.MemberOptions{
		Client: s.etcd, Config: s.cfg.State.Etcd, Store: st, ID: s.replicaID(), Admin: s.cfg.Admin.Listen,
		Served: s.served, Reporter: metrics.NewFleet(s.reg, reporter), Logger: s.log,
	})
	opts.Store, opts.Leadership = st, s.member
	var err error
	if s.rollout, err = rollout.New(opts); err != nil {
		return err
	}
	s.member.SetFollower(s.rollout)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.State.Etcd.DialTimeout)
	defer cancel()
	if err := s.member.Sync(ctx); err != nil {
		s.log.Error("cannot read the fleet's state yet; serving the configured baseline until etcd answers", "error", err.Error())
	}
	return nil
}

// served is what this replica serves, for its fleet record.
func (s *server) served() fleet.Served {
	snap := s.router.Snapshot()
	out := fleet.Served{Baseline: snap.Baseline.Version, CandidatePercent: snap.Share.Percent()}
	if snap.Candidate != nil {
		out.Candidate, out.ShadowSamplePercent = snap.Candidate.Version, snap.ShadowSample.Percent()
	}
	return out
}

// routingSecret is the sticky-assignment secret: configured, or kept in
// state_dir; a fleet shares one from etcd (cached in state_dir, so a
// replica restarting while etcd is down still puts clients on their arm).
func (s *server) routingSecret() (string, error) {
	if s.cfg.Routing.HashSecret != "" {
		return s.cfg.Routing.HashSecret, nil
	}
	if s.etcd == nil {
		return stateValue(s.cfg.StateDir, "routing.secret")
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.State.Etcd.DialTimeout)
	defer cancel()
	cache := filepath.Join(s.cfg.StateDir, "fleet-routing.secret")
	secret, err := s.fleetStore.RoutingSecret(ctx)
	if err == nil {
		if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
			return "", fmt.Errorf("state_dir: %w", err)
		}
		return secret, os.WriteFile(cache, []byte(secret), 0o600)
	}
	if b, rerr := os.ReadFile(cache); rerr == nil && len(b) >= 16 {
		s.log.Warn("etcd unreachable; using the fleet's routing secret cached in state_dir", "error", err.Error())
		return string(b), nil
	}
	return "", fmt.Errorf("state.etcd: the fleet's routing secret is in etcd, which does not answer, and none is cached in %s: %w", cache, err)
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
	if s.member != nil {
		err := errors.New("state.backend is etcd: reload refused, a fleet changes rulesets through rollouts so every replica serves the same ones")
		s.log.Error("reload refused", "error", err.Error())
		return err
	}
	if st := s.rollout.State(); st.Phase.Active() {
		err := fmt.Errorf("a rollout is %s: reload refused, the rollout owns the rulesets in service (roll back or promote first)", st.Phase)
		s.log.Error("reload refused", "error", err.Error())
		return err
	}
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

// status is what GET /api/v1/status shows: the routing in force and the
// rollout's state, with its last decision and the evidence behind it.
func (s *server) status() any {
	snap := s.router.Snapshot()
	st := s.rollout.State()
	return statusView{
		State:               string(st.Phase),
		CandidatePercent:    snap.Share.Percent(),
		ShadowSamplePercent: snap.ShadowSample.Percent(),
		Step:                st.Step,
		Steps:               len(s.cfg.Rollout.Steps),
		Baseline:            &rollout.RulesetRef{Version: snap.Baseline.Version, Path: snap.Baseline.Path},
		Candidate:           refOf(snap.Candidate),
		Scope:               st.Scope,
		Started:             st.Started,
		StepStarted:         st.StepStarted,
		LastDecision:        st.LastDecision,
		Fleet:               s.fleetStatus(),
	}
}

// fleetView is the fleet part of the status: who leads, whether etcd
// answers, and what every replica serves, so a stuck one is visible.
type fleetView struct {
	Replica    string          `json:"replica"`
	Leader     string          `json:"leader"`
	Leading    bool            `json:"leading"`
	StoreUp    bool            `json:"store_up"`
	StoreError string          `json:"store_error,omitempty"`
	Replicas   []fleet.Replica `json:"replicas"`
}

func (s *server) fleetStatus() *fleetView {
	if s.member == nil {
		return nil
	}
	up, why := s.member.StoreUp()
	v := &fleetView{Replica: s.member.ID(), Leader: s.member.Leader(), Leading: s.member.Leading(), StoreUp: up, StoreError: why}
	if up {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v.Replicas, _ = s.member.Replicas(ctx)
	}
	if v.Replicas == nil {
		v.Replicas = []fleet.Replica{}
	}
	return v
}

// statusView is the status document; `wafcanary status -o json` prints it.
type statusView struct {
	State               string              `json:"state"`
	CandidatePercent    float64             `json:"candidate_percent"`
	ShadowSamplePercent float64             `json:"shadow_sample_percent"`
	Step                int                 `json:"step"`
	Steps               int                 `json:"steps"`
	Baseline            *rollout.RulesetRef `json:"baseline"`
	Candidate           *rollout.RulesetRef `json:"candidate"`
	Scope               rollout.Scope       `json:"scope"`
	Started             time.Time           `json:"started,omitzero"`
	StepStarted         time.Time           `json:"step_started,omitzero"`
	LastDecision        *rollout.Decision   `json:"last_decision"`
	Fleet               *fleetView          `json:"fleet,omitempty"`
}

func refOf(rs *ruleset.Ruleset) *rollout.RulesetRef {
	if rs == nil {
		return nil
	}
	return &rollout.RulesetRef{Version: rs.Version, Path: rs.Path}
}

// Start implements admin.Rollouts.
func (s *server) Start(ctx context.Context, req admin.StartRequest) (any, error) {
	if req.Candidate == "" {
		return nil, fmt.Errorf("candidate: a ruleset file is required: %w", rollout.ErrBadRequest)
	}
	// A follower would refuse the start only after the gates (the CRS
	// suite takes tens of seconds) and after journalling any override.
	if err := s.rollout.CanDecide(); err != nil {
		return nil, err
	}
	cand, err := loadRuleset(req.Candidate)
	if err != nil {
		s.metrics.RulesetLoadFailed("candidate")
		return nil, fmt.Errorf("%w: %w", rollout.ErrBadRequest, err)
	}
	if err := s.gate(ctx, req, cand); err != nil {
		cand.Retire()
		return nil, err
	}
	spec := rollout.Spec{Scope: req.Scope, Actor: req.Actor, Reason: req.Reason, Cases: req.Cases}
	if _, err := s.rollout.Start(cand, spec, time.Now()); err != nil {
		cand.Retire()
		return nil, err
	}
	return s.status(), nil
}

// gate runs the checks a candidate must pass before it judges traffic:
// the forbidden-edit guard, its own cases when given, and the CRS
// regression suite with the cost comparison (gates.crs_suite). Failures
// refuse it, naming each line or case, unless the request overrides the
// gates with a reason, which is journalled with what it overrides.
func (s *server) gate(ctx context.Context, req admin.StartRequest, cand *ruleset.Ruleset) error {
	var cs *gates.Cases
	if req.Cases != "" {
		c, err := gates.LoadCases(req.Cases, configs.Rulesets)
		if err != nil {
			return fmt.Errorf("%w: %w", rollout.ErrBadRequest, err)
		}
		cs = &c
	}
	base := s.router.Snapshot().Baseline
	rep, err := gates.Evaluate(ctx, base, cand, cs, s.cfg.Gates)
	if err != nil {
		return fmt.Errorf("running the gates: %w", err)
	}
	if sr := rep.Suite; sr != nil {
		s.log.Info("CRS suite run", "candidate", cand.Version, "cases", sr.Candidate.Total,
			"changes", len(sr.Changes), "cost_ratio", sr.Cost.Ratio, "seconds", sr.Seconds)
	}
	problems := rep.Problems()
	if len(problems) == 0 {
		return nil
	}
	list := indentList(problems, 20)
	if req.OverrideGates == "" {
		return fmt.Errorf("candidate %s %w:\n%s\n(to start anyway, give a reason with --override-gates)",
			req.Candidate, gates.ErrRefused, list)
	}
	if err := s.store.Append(rollout.Entry{Time: time.Now(), Actor: req.Actor, Action: "gates_override",
		Reason: req.OverrideGates + "; overriding:\n" + list, State: s.rollout.State().Phase,
		Baseline: base.Version, Candidate: cand.Version}); err != nil {
		return err
	}
	s.log.Warn("gates overridden", "actor", req.Actor, "reason", req.OverrideGates, "problems", len(problems))
	return nil
}

// indentList renders problems one per indented line, the first max of
// them, so a candidate that breaks hundreds of suite cases stays readable.
func indentList(problems []string, max int) string {
	var b strings.Builder
	for i, p := range problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i == max {
			fmt.Fprintf(&b, "  ... and %d more", len(problems)-max)
			break
		}
		b.WriteString("  " + p)
	}
	return b.String()
}

// probe is the rollout's live probe: the rollout's must_block cases, the
// classic attacks and a fixed sample of CRS attack cases, judged with both
// rulesets in process.
func (s *server) probe(ctx context.Context, st rollout.State, base, cand *ruleset.Ruleset) (string, error) {
	var mustBlock []gates.Case
	if st.Cases != "" {
		cs, err := gates.LoadCases(st.Cases, configs.Rulesets)
		if err != nil {
			// The file may be gone after a restart; the classic attacks
			// are still probed.
			s.log.Warn("live probe without the rollout's cases", "error", err.Error())
		}
		mustBlock = cs.MustBlock
	}
	return gates.Probe(ctx, base, cand, mustBlock)
}

// Do implements admin.Rollouts.
func (s *server) Do(action string, req admin.ActionRequest) (any, error) {
	now := time.Now()
	var err error
	switch action {
	case "pause":
		_, err = s.rollout.Pause(req.Actor, req.Reason, now)
	case "resume":
		_, err = s.rollout.Resume(req.Actor, req.Reason, now)
	case "promote":
		_, err = s.rollout.Promote(req.Actor, req.Reason, now)
	case "rollback":
		_, err = s.rollout.Rollback(req.Actor, req.Reason, now)
	default:
		err = fmt.Errorf("unknown action %q: %w", action, rollout.ErrBadRequest)
	}
	if err != nil {
		return nil, err
	}
	return s.status(), nil
}

// History implements admin.Rollouts.
func (s *server) History(n int) (any, error) {
	h, err := s.store.History(n)
	if h == nil {
		h = []rollout.Entry{}
	}
	return h, err
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
		Handler:           admin.Handler(s.reg, s.adminToken, s.status, s),
		ReadHeaderTimeout: 10 * time.Second,
	}
	shadowCtx, stopShadow := context.WithCancel(context.WithoutCancel(ctx))
	shadowDone := make(chan struct{})
	go func() { s.router.Run(shadowCtx); close(shadowDone) }()
	controlCtx, stopControl := context.WithCancel(ctx)
	controlDone := make(chan struct{})
	go func() { s.rollout.Run(controlCtx); close(controlDone) }()
	memberDone := make(chan struct{})
	if s.member != nil {
		go func() { s.member.Run(controlCtx); close(memberDone) }()
	} else {
		close(memberDone)
	}

	errc := make(chan error, 2)
	go func() { errc <- proxy.Serve(proxyLn) }()
	go func() { errc <- adm.Serve(adminLn) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("listener stopped: %w", err)
	}
	stopControl()
	<-controlDone
	<-memberDone // resigned: another replica leads now, not after the lease
	if s.etcd != nil {
		defer s.etcd.Close()
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
