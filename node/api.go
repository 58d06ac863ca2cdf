package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/exclusion"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/notification"
	"github.com/wafcanary/wafcanary/replay"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

var _ admin.Rollouts = (*Node)(nil)

// Start implements admin.Rollouts: it composes the candidate with the
// served baseline (compose), gates it, reads its scope when none is
// declared, then starts its rollout, refused if another baseline came
// into service while the gates ran. The answer says what start made of
// the candidate (admin.StartReport), as does the start's journal entry.
// The actor is the identity the admin API found (req.By), the rollout's
// starter, whom four-eyes keeps from approving it.
// A renewal (req.Renew) changes an exception's metadata instead: renew.
func (s *Node) Start(ctx context.Context, req admin.StartRequest) (admin.Status, error) {
	given := 0
	for _, ok := range []bool{req.Candidate != "", req.Exclusion != "", req.Renew != nil} {
		if ok {
			given++
		}
	}
	if given != 1 {
		return admin.Status{}, fmt.Errorf("candidate: a ruleset file, exclusion: a file of exclusions, or renew: an exception's new metadata, is required (one of them): %w", rollout.ErrBadRequest)
	}
	if req.Retire != "" && req.Candidate == "" {
		return admin.Status{}, fmt.Errorf("retire: names the exception a candidate takes away; give the candidate: %w", rollout.ErrBadRequest)
	}
	if err := s.needTicket(req.Ticket, "start"); err != nil {
		return admin.Status{}, err
	}
	actor, claimed := req.Who()
	ctx = rollout.WithAttribution(ctx, rollout.Attribution{Ticket: req.Ticket, Claimed: claimed, Personal: req.By.Personal})
	req.Actor = actor
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
	if _, err := s.rollout.Config().PresetOf(req.Preset); err != nil {
		return admin.Status{}, fmt.Errorf("preset: %w: %w", err, rollout.ErrBadRequest)
	}
	base := s.router.Snapshot().Baseline
	if req.Renew != nil {
		return s.renew(ctx, req, base)
	}
	cand, report, err := s.compose(ctx, req, base)
	if err != nil {
		if errors.Is(err, gates.ErrRefused) {
			s.notifyRefused(req, base.Version, "", err)
		}
		return admin.Status{}, err
	}
	name := req.Candidate
	if name == "" {
		name = req.Exclusion
	}
	replayed, err := s.gate(ctx, req, name, base, cand)
	if err != nil {
		if errors.Is(err, gates.ErrRefused) {
			s.notifyRefused(req, base.Version, cand.Version, err)
		}
		cand.Retire()
		return admin.Status{}, err
	}
	spec := rollout.Spec{Scope: req.Scope, Hosts: req.Hosts, Actor: req.Actor, Reason: req.Reason, Cases: req.Cases, Baseline: base.Version, Preset: req.Preset}
	if spec.Preset == "" && base.CRS.Version != cand.CRS.Version {
		// The largest change a WAF takes is staged as the vendors stage
		// new rules, unless the operator says otherwise.
		spec.Preset = rollout.PresetCRSUpgrade
		report.Preset = fmt.Sprintf("%s: the candidate changes the CRS from %s to %s (--preset default for rollout.steps)", spec.Preset, base.CRS.Version, cand.CRS.Version)
	} else if spec.Preset != "" {
		report.Preset = spec.Preset
	}
	report.ScopeFrom = admin.ScopeDeclared
	if spec.Scope.Empty() {
		// Without a declared scope every lost block would count against
		// the exclusion it was written to cause; read the scope from
		// what the candidate takes away instead, and journal it, or why
		// there is none.
		in := exclusion.ScopeOf(base, cand)
		spec.Scope, report.ScopeLeft = in.Scope, in.Left
		s.log.Info("rollout scope inferred from the candidate", "candidate", cand.Version, "scope", spec.Scope.String(), "notes", in.Notes)
		if spec.Scope.Inferred {
			report.ScopeFrom = admin.ScopeInferred
			spec.Reason += " [scope inferred from the candidate: " + spec.Scope.String() + "]"
		} else {
			report.ScopeFrom, report.ScopeWhy = admin.ScopeNone, in.Why()
			spec.ScopeNote = report.ScopeWhy
			spec.Reason += " [no scope inferred: " + report.ScopeWhy + "]"
		}
	}
	if report.Base != "" && !strings.HasPrefix(report.Base, baseServed) {
		spec.Reason += " [" + report.Base + "]"
	}
	spec.Reason += replayed
	if e := report.Retired; e != nil {
		// Journalled once the gates have passed, before the start: the
		// start entry's candidate drops an exclusion, and this says it
		// was meant to.
		if err := s.rollout.Journal(context.WithoutCancel(ctx), time.Now, rollout.Entry{Actor: req.Actor, Action: rollout.ActionRetire,
			Reason: req.Reason + "; " + s.retireText(*e), Baseline: base.Version, Candidate: cand.Version}); err != nil {
			cand.Retire()
			return admin.Status{}, err
		}
	}
	if base.CRS != cand.CRS {
		// A CRS upgrade (or a CRS from other files): the journal says
		// what it changes, as crs diff would.
		spec.Reason += " [" + ruleset.Diff(base, cand).Summary() + "]"
	}
	if _, err := s.rollout.Start(context.WithoutCancel(ctx), cand, spec, time.Now); err != nil {
		cand.Retire()
		return admin.Status{}, err
	}
	st := s.Status()
	st.Composed = &report
	return st, nil
}

// notifyRefused tells the webhooks of a start refused by a gate, the
// base gate included; candidate is "" when the candidate was not kept.
func (s *Node) notifyRefused(req admin.StartRequest, baseline, candidate string, err error) {
	st := s.rollout.State()
	s.notifier.Send(notification.Message{Event: notification.Refused, Time: time.Now(), Actor: req.Actor, Reason: err.Error(), Ticket: req.Ticket,
		State: string(st.Phase), Step: st.Step + 1, Steps: len(s.rollout.StepsOf(st)), Baseline: baseline, Candidate: candidate})
}

// compose loads the candidate start was given and settles which baseline
// it runs on. A file of exclusions (req.Exclusion) is applied to the
// served baseline. A candidate that records the baseline it was written
// from (tune's) and another one serves now is rebased onto it: its
// additions carried over to the served text, so that what was promoted
// since is kept. A candidate that cannot be rebased, or that drops
// exclusions the served baseline has, would undo what was promoted: it is
// refused naming both versions and the changes in between, unless
// req.ForceBase gives a reason, which is journalled first. A candidate
// that names the exception it retires (req.Retire) is checked instead to
// be the served baseline without exactly that exception
// (exception.Retires), and journalled as a retire once its gates pass.
func (s *Node) compose(ctx context.Context, req admin.StartRequest, served *ruleset.Ruleset) (*ruleset.Ruleset, admin.StartReport, error) {
	var report admin.StartReport
	if req.Exclusion != "" {
		text, err := os.ReadFile(req.Exclusion)
		if err != nil {
			return nil, report, fmt.Errorf("exclusion %s: %w (paths are the server's): %w", req.Exclusion, err, rollout.ErrBadRequest)
		}
		r, err := exclusion.Apply(served, req.Exclusion, text)
		switch {
		case errors.Is(err, exclusion.ErrDoesNotCompile):
			s.metrics.RulesetLoadFailed("candidate")
			return nil, report, admin.InvalidRuleset(err)
		case err != nil:
			return nil, report, fmt.Errorf("exclusion %s: %w: %w", req.Exclusion, err, rollout.ErrBadRequest)
		}
		report.Base = fmt.Sprintf("the exclusions of %s applied to the served baseline %s", req.Exclusion, served.Version)
		if len(r.Renumbered) > 0 {
			report.Base += "; " + strings.Join(r.Renumbered, "; ")
		}
		return r.Ruleset, report, nil
	}
	cand, err := LoadRuleset(req.Candidate)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, report, fmt.Errorf("candidate %s: no such file on the server (paths are the server's): %w", req.Candidate, rollout.ErrBadRequest)
	case err != nil:
		s.metrics.RulesetLoadFailed("candidate")
		return nil, report, admin.InvalidRuleset(err)
	}
	if req.Retire != "" {
		// Stricter than what follows: the served baseline, this one
		// exception aside, byte for byte in its rules.
		e, err := exception.Retires(served, cand, req.Retire)
		switch {
		case errors.Is(err, exception.ErrNoSuchException):
			cand.Retire()
			return nil, report, fmt.Errorf("retire: %w: %w", err, rollout.ErrBadRequest)
		case err != nil:
			cand.Retire()
			return nil, report, fmt.Errorf("candidate %s %w: retire %s: %w (write it again with wafcanary exceptions retire)", req.Candidate, gates.ErrRefused, req.Retire, err)
		}
		report.Base = fmt.Sprintf("the served baseline %s without exception %s (%s), retired", served.Version, e.ID, e.Where())
		report.Retired = &e
		return cand, report, nil
	}
	var problems []string
	recorded, marked := exclusion.RecordedBase(cand)
	switch {
	case marked && recorded == served.Version:
		report.Base = baseServed + served.Version
	case marked:
		since := s.changesSince(recorded)
		rb, why := s.rebase(ctx, recorded, cand, served)
		if why == nil {
			cand.Retire()
			cand = rb.Ruleset
			report.Base = fmt.Sprintf("rebased onto the served baseline %s: the candidate was written from %s%s; its additions carried over (%s), what serves kept",
				served.Version, recorded, since, strings.Join(rb.Carried, ", "))
			if len(rb.Renumbered) > 0 {
				report.Base += "; " + strings.Join(rb.Renumbered, "; ")
			}
			s.log.Info("candidate rebased", "candidate", req.Candidate, "from", recorded, "onto", served.Version, "version", cand.Version)
			break
		}
		problems = append(problems, fmt.Sprintf("it was written from baseline %s, and baseline %s serves now%s; it cannot be rebased onto it: %v", recorded, served.Version, since, why))
	}
	if dropped := exclusion.Dropped(served, cand); len(dropped) > 0 {
		problems = append(problems, fmt.Sprintf("it drops %d exclusion(s) the served baseline %s has, whose false positives would come back: %s%s",
			len(dropped), served.Version, strings.Join(dropped, "; "), s.looksLike(ctx, cand, served)))
	}
	if len(problems) == 0 {
		return cand, report, nil
	}
	list := "  " + strings.Join(problems, "\n  ")
	if req.ForceBase == "" {
		cand.Retire()
		return nil, report, fmt.Errorf("candidate %s %w: it is not built on the served baseline %s:\n%s\n(tune it again against the served baseline, or, to start it as it is and undo that, give a reason with --force-base)",
			req.Candidate, gates.ErrRefused, served.Version, list)
	}
	if err := s.rollout.Journal(context.WithoutCancel(ctx), time.Now, rollout.Entry{Actor: req.Actor, Action: rollout.ActionBaseOverride,
		Reason: req.ForceBase + "; starting it although:\n" + list, Baseline: served.Version, Candidate: cand.Version}); err != nil {
		cand.Retire()
		return nil, report, err
	}
	s.log.Warn("candidate started on a baseline it is not built on", "actor", req.Actor, "reason", req.ForceBase, "candidate", cand.Version, "baseline", served.Version)
	report.Base = "started with --force-base on the served baseline " + served.Version + " although " + strings.Join(problems, "; and ")
	return cand, report, nil
}

// baseServed starts StartReport.Base for a candidate written from the
// baseline that serves: nothing to journal beyond the start itself.
const baseServed = "written from the served baseline "

// rebase carries cand's additions to the baseline it was written from,
// version from, over to served; the error says why it could not.
func (s *Node) rebase(ctx context.Context, from string, cand, served *ruleset.Ruleset) (exclusion.Rebased, error) {
	old, err := s.store.LoadRuleset(ctx, from)
	if err != nil {
		return exclusion.Rebased{}, fmt.Errorf("baseline %s is not kept on this server (wafcanary history lists those kept): %w", from, err)
	}
	defer old.Retire()
	return exclusion.Rebase(old, cand, served)
}

// changesSince says what put the baselines after version in service, from
// the kept baselines and their journal entries: the promotions (and undos,
// reloads) a candidate written from version would undo.
func (s *Node) changesSince(version string) string {
	bs := s.rollout.State().Baselines
	i := slices.IndexFunc(bs, func(b rollout.RulesetRef) bool { return b.Version == version })
	if i < 0 {
		return " (baseline " + version + " is not among the baselines kept here)"
	}
	journal, _ := s.store.History(1000) // reasons only: a missing journal leaves them out
	var parts []string
	for _, b := range bs[i+1:] {
		p := fmt.Sprintf("%s of %s at %s", b.By, b.Version, b.Since.UTC().Format(time.RFC3339))
		for j := len(journal) - 1; j >= 0; j-- {
			if e := journal[j]; e.Action == b.By && e.Baseline == b.Version {
				p += fmt.Sprintf(" by %s (%q)", e.Actor, e.Reason)
				break
			}
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return ""
	}
	return "; since then: " + strings.Join(parts, "; ")
}

// looksLike says, for a candidate without a recorded base that drops
// exclusions of served, which kept baseline it holds whole (it was most
// likely written from it), and how to have start rebase it; "" when none
// does. The three last baselines are tried, each compiled.
func (s *Node) looksLike(ctx context.Context, cand, served *ruleset.Ruleset) string {
	if _, marked := exclusion.RecordedBase(cand); marked {
		return ""
	}
	bs := s.rollout.State().Baselines
	tried := 0
	for i := len(bs) - 1; i >= 0 && tried < 3; i-- {
		if bs[i].Version == served.Version {
			continue
		}
		tried++
		old, err := s.store.LoadRuleset(ctx, bs[i].Version)
		if err != nil {
			continue
		}
		whole := len(ruleset.Added(cand.Directives(), old.Directives())) == 0
		old.Retire()
		if whole {
			return fmt.Sprintf(". It holds all of baseline %s, which served from %s: written from it? Make its first line `# wafcanary: base %s` and start carries its additions over to %s",
				bs[i].Version, bs[i].Since.UTC().Format(time.RFC3339), bs[i].Version, served.Version)
		}
	}
	return ""
}

// gate runs the checks a candidate must pass before it judges traffic:
// the forbidden-edit guard, its own cases when given, and the CRS
// regression suite with the cost comparison (gates.crs_suite). Failures
// refuse it, naming each line or case, unless the request overrides the
// gates with a reason, which is journalled with what it overrides.
//
// Recorded traffic (gates.replay, start --replay) is replayed through both
// rulesets last; it says what it found in a note for the start's journal
// entry, "" when there was none to replay.
func (s *Node) gate(ctx context.Context, req admin.StartRequest, name string, base, cand *ruleset.Ruleset) (replayed string, err error) {
	var cs *gates.Cases
	if req.Cases != "" {
		c, err := gates.LoadCases(req.Cases, configs.Rulesets)
		if err != nil {
			return "", fmt.Errorf("%w: %w", rollout.ErrBadRequest, err)
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
		return "", fmt.Errorf("running the gates: %w", err)
	}
	if sr := rep.Suite; sr != nil {
		s.log.Info("CRS suite run", "candidate", cand.Version, "cases", sr.Candidate.Total,
			"changes", len(sr.Changes), "cost_ratio", sr.Cost.Ratio, "seconds", sr.Seconds)
	}
	problems := rep.Problems()
	if files := append(slices.Clone(s.cfg.Gates.Replay), req.Replay...); len(files) > 0 {
		s.gates.Store(&admin.GateProgress{Running: true, Candidate: cand.Version, Stage: StageReplay, Seconds: time.Since(began).Seconds()})
		var found []string
		if replayed, found, err = s.replayGate(ctx, req, files, base, cand); err != nil {
			return "", err
		}
		problems = append(problems, found...)
	}
	if len(problems) == 0 {
		return replayed, nil
	}
	list := indentList(problems, 20)
	if req.OverrideGates == "" {
		return "", fmt.Errorf("candidate %s %w:\n%s\n(to start anyway, give a reason with --override-gates)",
			name, gates.ErrRefused, list)
	}
	if err := s.rollout.Journal(context.WithoutCancel(ctx), time.Now, rollout.Entry{Actor: req.Actor, Action: rollout.ActionGatesOverride,
		Reason: req.OverrideGates + "; overriding:\n" + list, Baseline: base.Version, Candidate: cand.Version}); err != nil {
		return "", err
	}
	s.log.Warn("gates overridden", "actor", req.Actor, "reason", req.OverrideGates, "problems", len(problems))
	return replayed, nil
}

// StageReplay is the gates' stage while recorded traffic is replayed.
const StageReplay = "replay"

// replayGate replays files through both rulesets with the rollout's policy
// and the start's scope (declared, or inferred from the candidate as the
// rollout will), and returns a note for the journal and, when the replay
// fails the paired checks, the problems that refuse the start. Files that
// cannot be read at all are the request's fault.
func (s *Node) replayGate(ctx context.Context, req admin.StartRequest, files []string, base, cand *ruleset.Ruleset) (note string, problems []string, err error) {
	o := replay.Options{Policy: s.cfg.Rollout.Policy}
	if !req.Scope.Empty() {
		scope := req.Scope
		o.Scope = &scope
	}
	rep, err := replay.Run(ctx, base, cand, files, o)
	if err != nil {
		return "", nil, fmt.Errorf("%w: replay: %w", rollout.ErrBadRequest, err)
	}
	if rep.Requests == 0 {
		// Asked to look at recorded traffic and seeing none proves
		// nothing: say why rather than start on no evidence.
		var why []string
		for _, p := range rep.Problems[:min(len(rep.Problems), 5)] {
			why = append(why, p.String())
		}
		return "", nil, fmt.Errorf("%w: replay: no request read from %s: %s", rollout.ErrBadRequest, strings.Join(files, ", "), strings.Join(why, "; "))
	}
	s.log.Info("replay gate", "candidate", cand.Version, "files", files, "requests", rep.Requests, "pairs", rep.Pairs,
		"unreadable", rep.Unreadable, "new_blocks", rep.NewBlocks.Total, "lost_blocks", rep.LostBlocks.Total, "verdict", rep.Verdict)
	note = fmt.Sprintf(" [replay of %d requests (%s): %s; new blocks %d, lost blocks %d (%d in scope), unreadable %d]",
		rep.Requests, strings.Join(files, ", "), rep.Verdict, rep.NewBlocks.Total, rep.LostBlocks.Total, rep.LostBlocks.InScope, rep.Unreadable)
	if rep.Verdict != replay.Fail {
		return note, nil, nil
	}
	for _, c := range rep.Checks {
		if c.Status == rollout.Fail.String() {
			problems = append(problems, "replay of "+strings.Join(files, ", ")+": "+c.Reason)
		}
	}
	return note, problems, nil
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
//
// The actor is the identity the admin API found (req.By); a promotion is
// an approval, refused by four-eyes from the rollout's starter
// (rollout.ErrSameApprover) unless it is an emergency.
func (s *Node) Do(ctx context.Context, action admin.Action, req admin.ActionRequest) (admin.Status, error) {
	if action == admin.Promote || action == admin.Undo {
		// Never a rollback: it is the emergency action.
		if err := s.needTicket(req.Ticket, string(action)); err != nil {
			return admin.Status{}, err
		}
	}
	actor, claimed := req.Who()
	ctx = rollout.WithAttribution(context.WithoutCancel(ctx),
		rollout.Attribution{Ticket: req.Ticket, Claimed: claimed, Personal: req.By.Personal, Emergency: req.Emergency})
	req.Actor = actor
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
		if st := s.rollout.State(); st.Phase.Active() && st.Step < len(s.rollout.StepsOf(st))-1 {
			reason += fmt.Sprintf(" [full promotion from step %d of %d: the remaining steps' evidence skipped]", st.Step+1, len(s.rollout.StepsOf(st)))
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

// needTicket refuses action without a ticket when
// rollout.approvals.require_ticket is true.
func (s *Node) needTicket(ticket, action string) error {
	if ticket == "" && s.rollout.Config().Approvals.RequireTicket {
		return fmt.Errorf("ticket: %s needs a change ticket (rollout.approvals.require_ticket is true): give --ticket: %w", action, rollout.ErrBadRequest)
	}
	return nil
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
		Steps:               len(s.rollout.StepsOf(st)),
		Baseline:            refOf(snap.Baseline),
		Candidate:           refOf(snap.Candidate),
		Scope:               st.Scope,
		ScopeNote:           st.ScopeNote,
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
	v.Preset = st.Preset
	v.StartedBy, v.Ticket = st.StartedBy, st.Ticket
	if st.Phase.Active() {
		v.Approvers, v.FourEyes = s.approvers(st)
	}
	for _, step := range s.rollout.StepsOf(st) {
		v.Plan = append(v.Plan, admin.StepPlan{Percent: step.Percent, MinDurationSeconds: step.MinDuration.Seconds(), MinRequests: step.MinRequests, Approval: step.Approval})
	}
	return v
}

// approvers says who may approve the rollout in state st, and how
// four-eyes binds it; nothing without admin.users, where admin.token's
// holder does everything, as before users.
func (s *Node) approvers(st rollout.State) ([]string, string) {
	users := s.cfg.Admin.Users
	if len(users) == 0 {
		return nil, ""
	}
	distinct := s.rollout.Config().Approvals.Distinct
	var names []string
	for _, u := range users {
		if u.Role.Allows(admin.Approver) && !(distinct && u.Name == st.StartedBy) {
			names = append(names, u.Name)
		}
	}
	if s.cfg.Admin.Token != "" {
		names = append(names, admin.TokenIdentity)
	}
	if !distinct {
		return names, "off: rollout.approvals.distinct is false, the starter may approve"
	}
	return names, "distinct: not " + st.StartedBy + ", who started it (an admin may promote --emergency with a reason)"
}

func refOf(rs *ruleset.Ruleset) *rollout.RulesetRef {
	if rs == nil {
		return nil
	}
	return &rollout.RulesetRef{Version: rs.Version, Path: rs.Path, CRS: rs.CRS.String()}
}

// EvaluateGates runs the gates as a start does, the CRS suite through
// wafcanary's own proxy.
func EvaluateGates(ctx context.Context, base, cand *ruleset.Ruleset, cs *gates.Cases, cfg gates.Config) (gates.Report, error) {
	return gates.Evaluate(ctx, base, cand, cs, cfg, router.Standalone)
}
