package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/exclusion"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/notification"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

var _ admin.Rollouts = (*Node)(nil)

// Start implements admin.Rollouts: it loads and gates the candidate, then
// starts its rollout, refused if another baseline came into service while
// the gates ran.
func (s *Node) Start(ctx context.Context, req admin.StartRequest) (admin.Status, error) {
	if req.Candidate == "" {
		return admin.Status{}, fmt.Errorf("candidate: a ruleset file is required: %w", rollout.ErrBadRequest)
	}
	// A follower would refuse the start only after the gates (the CRS
	// suite takes tens of seconds) and after journalling any override.
	if err := s.rollout.CanDecide(); err != nil {
		return admin.Status{}, err
	}
	// Nor run them (8-27 s with the CRS suite) to refuse a busy
	// controller after; the controller checks again under its lock.
	if st := s.rollout.State(); st.Phase.Active() {
		return admin.Status{}, fmt.Errorf("a rollout of %s is already %s: %w", st.Candidate.Version, st.Phase, rollout.ErrConflict)
	}
	cand, err := LoadRuleset(req.Candidate)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return admin.Status{}, fmt.Errorf("candidate %s: no such file on the server (paths are the server's): %w", req.Candidate, rollout.ErrBadRequest)
	case err != nil:
		s.metrics.RulesetLoadFailed("candidate")
		return admin.Status{}, admin.InvalidRuleset(err)
	}
	base := s.router.Snapshot().Baseline
	if err := s.gate(ctx, req, base, cand); err != nil {
		if errors.Is(err, gates.ErrRefused) {
			st := s.rollout.State()
			s.notifier.Send(notification.Message{Event: notification.Refused, Time: time.Now(), Actor: req.Actor, Reason: err.Error(),
				State: string(st.Phase), Step: st.Step + 1, Steps: len(s.rollout.Config().Steps), Baseline: base.Version, Candidate: cand.Version})
		}
		cand.Retire()
		return admin.Status{}, err
	}
	spec := rollout.Spec{Scope: req.Scope, Hosts: req.Hosts, Actor: req.Actor, Reason: req.Reason, Cases: req.Cases, Baseline: base.Version}
	if spec.Scope.Empty() {
		// Without a declared scope every lost block would count against
		// the exclusion it was written to cause; read the scope from
		// what the candidate takes away instead, and journal it.
		var notes []string
		spec.Scope, notes = exclusion.ScopeOf(base, cand)
		s.log.Info("rollout scope inferred from the candidate", "candidate", cand.Version, "scope", spec.Scope.String(), "notes", notes)
		if spec.Scope.Inferred {
			spec.Reason += " [scope inferred from the candidate: " + spec.Scope.String() + "]"
		}
	}
	if _, err := s.rollout.Start(context.WithoutCancel(ctx), cand, spec, time.Now); err != nil {
		cand.Retire()
		return admin.Status{}, err
	}
	return s.Status(), nil
}

// gate runs the checks a candidate must pass before it judges traffic:
// the forbidden-edit guard, its own cases when given, and the CRS
// regression suite with the cost comparison (gates.crs_suite). Failures
// refuse it, naming each line or case, unless the request overrides the
// gates with a reason, which is journalled with what it overrides.
func (s *Node) gate(ctx context.Context, req admin.StartRequest, base, cand *ruleset.Ruleset) error {
	var cs *gates.Cases
	if req.Cases != "" {
		c, err := gates.LoadCases(req.Cases, configs.Rulesets)
		if err != nil {
			return fmt.Errorf("%w: %w", rollout.ErrBadRequest, err)
		}
		cs = &c
	}
	began := time.Now()
	s.gates.Store(&admin.GateProgress{Running: true, Candidate: cand.Version})
	defer s.gates.Store(nil)
	ctx = gates.WithProgress(ctx, func(stage string, done, total int) {
		s.gates.Store(&admin.GateProgress{Running: true, Candidate: cand.Version, Stage: stage, Done: done, Total: total, Seconds: time.Since(began).Seconds()})
	})
	rep, err := EvaluateGates(ctx, base, cand, cs, s.cfg.Gates)
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
	if err := s.rollout.Journal(context.WithoutCancel(ctx), time.Now, rollout.Entry{Actor: req.Actor, Action: rollout.ActionGatesOverride,
		Reason: req.OverrideGates + "; overriding:\n" + list, Baseline: base.Version, Candidate: cand.Version}); err != nil {
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
func (s *Node) probe(ctx context.Context, st rollout.State, base, cand *ruleset.Ruleset) (string, error) {
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

// Do implements admin.Rollouts. The controller reads the time under its
// lock, so the journal's times follow the order the actions took effect.
//
// An action, once asked for, is carried through even if the client hangs
// up: a record cut off half-way would leave the operator guessing.
func (s *Node) Do(ctx context.Context, action admin.Action, req admin.ActionRequest) (admin.Status, error) {
	ctx = context.WithoutCancel(ctx)
	var (
		err       error
		unchanged string
	)
	switch action {
	case admin.Pause:
		_, err = s.rollout.Pause(ctx, req.Actor, req.Reason, time.Now)
	case admin.Resume:
		_, err = s.rollout.Resume(ctx, req.Actor, req.Reason, time.Now)
	case admin.Promote:
		if !req.Full {
			_, err = s.rollout.PromoteStep(ctx, req.Actor, req.Reason, time.Now)
			break
		}
		reason := req.Reason
		if st := s.rollout.State(); st.Phase.Active() && st.Step < len(s.rollout.Config().Steps)-1 {
			reason += fmt.Sprintf(" [full promotion from step %d of %d: the remaining steps' evidence skipped]", st.Step+1, len(s.rollout.Config().Steps))
		}
		_, err = s.rollout.Promote(ctx, req.Actor, reason, time.Now)
	case admin.Rollback:
		_, err = s.rollout.Rollback(ctx, req.Actor, req.Reason, time.Now)
	case admin.Undo:
		if _, unchanged, err = s.rollout.Undo(ctx, req.To, req.Actor, req.Reason, time.Now); err == nil && unchanged == "" {
			s.logServing("undo")
		}
	default:
		err = fmt.Errorf("unknown action %q: %w", action, rollout.ErrBadRequest)
	}
	if err != nil {
		return admin.Status{}, err
	}
	st := s.Status()
	st.Unchanged = unchanged
	return st, nil
}

// Gates implements admin.Rollouts: the gates of a start under way.
func (s *Node) Gates() admin.GateProgress {
	if g := s.gates.Load(); g != nil {
		return *g
	}
	return admin.GateProgress{}
}

// History implements admin.Rollouts.
func (s *Node) History(n int) ([]rollout.Entry, error) { return s.store.History(n) }

// Status is what GET /api/v1/status shows: the routing in force (what
// this process serves) and the rollout's state, with its last decision
// and the evidence behind it, and the baselines kept for undo.
func (s *Node) Status() admin.Status {
	snap := s.router.Snapshot()
	st := s.rollout.State()
	v := admin.Status{
		State:               string(st.Phase),
		CandidatePercent:    snap.Share.Percent(),
		ShadowSamplePercent: snap.ShadowSample.Percent(),
		Step:                st.Step,
		Steps:               len(s.rollout.Config().Steps),
		Baseline:            &rollout.RulesetRef{Version: snap.Baseline.Version, Path: snap.Baseline.Path},
		Candidate:           refOf(snap.Candidate),
		Scope:               st.Scope,
		Hosts:               st.Hosts,
		Awaiting:            st.Awaiting,
		Started:             st.Started,
		StepStarted:         st.StepStarted,
		LastDecision:        st.LastDecision,
		Baselines:           st.Baselines,
		Fleet:               s.fleetStatus(),
	}
	if v.Baselines == nil {
		v.Baselines = []rollout.RulesetRef{}
	}
	v.Now = time.Now().UTC()
	for _, step := range s.rollout.Config().Steps {
		v.Plan = append(v.Plan, admin.StepPlan{Percent: step.Percent, MinDurationSeconds: step.MinDuration.Seconds(), MinRequests: step.MinRequests, Approval: step.Approval})
	}
	return v
}

func refOf(rs *ruleset.Ruleset) *rollout.RulesetRef {
	if rs == nil {
		return nil
	}
	return &rollout.RulesetRef{Version: rs.Version, Path: rs.Path}
}

// EvaluateGates runs the gates as a start does, the CRS suite through
// wafcanary's own proxy.
func EvaluateGates(ctx context.Context, base, cand *ruleset.Ruleset, cs *gates.Cases, cfg gates.Config) (gates.Report, error) {
	return gates.Evaluate(ctx, base, cand, cs, cfg, router.Standalone)
}
