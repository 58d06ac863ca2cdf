package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/notification"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset"
)

var _ admin.Exceptions = (*Node)(nil)

// Exceptions implements admin.Exceptions: the exceptions of the baseline
// in service, judged now, each traced to the kept baseline and the
// journal entry that brought it.
func (s *Node) Exceptions(ctx context.Context) (admin.ExceptionList, error) {
	base := s.router.Snapshot().Baseline
	now := s.exceptions.Now().UTC()
	list := exception.List(base, now)
	var kept []exception.Kept
	for _, b := range s.rollout.State().Baselines {
		kept = append(kept, exception.Kept{Version: b.Version, Since: b.Since, By: string(b.By), Directives: s.kept.of(ctx, s, b.Version, base)})
	}
	journal, err := s.store.History(0)
	if err != nil {
		// The baselines still say which brought each one; the journal
		// only adds who and why.
		s.log.Warn("exceptions: journal not read, origins without actor and reason", "error", err.Error())
	}
	changes := make([]exception.Change, len(journal))
	for i, e := range journal {
		changes[i] = exception.Change{Time: e.Time, Actor: e.Actor, Action: string(e.Action), Reason: e.Reason, Baseline: e.Baseline, Candidate: e.Candidate}
	}
	exception.Trace(list, kept, changes)
	s.exceptions.Annotate(list, now)
	return admin.ExceptionList{Baseline: base.Version, Now: now, Exceptions: list}, nil
}

// exceptionChanged is the exception monitor's notify: an exception that
// became stale or expired is told to the webhooks, once.
func (s *Node) exceptionChanged(c exception.Transition) {
	ev := notification.ExceptionStale
	if c.Status == exception.Expired {
		ev = notification.ExceptionExpired
	}
	s.log.Warn("exception "+string(c.Status), "exception", c.Exception.ID, "where", c.Exception.Where(), "reason", c.Reason)
	m := notification.Message{Event: ev, Time: c.Time, Actor: "wafcanary", Reason: c.Reason, State: string(s.rollout.State().Phase),
		Baseline: c.Baseline, Exception: c.Exception.ID}
	if s.fleetStore != nil {
		m.Replica = s.replicaID()
	}
	s.notifier.Send(m)
}

// explainSighting is the explanation of a would-be block: a request an
// exception let through.
func explainSighting(sg exception.Sighting) admin.Explanation {
	v := sg.Verdict
	e := admin.Explanation{ID: sg.RequestID, Time: sg.Time, Arm: "baseline", Version: sg.Baseline, Method: sg.Method,
		Host: sg.Host, Path: sg.Path, ClientIP: sg.ClientIP, Status: v.Status, Exception: sg.Exception,
		InterruptedBy: v.RuleID, Score: v.InboundScore, Capture: sg.Capture}
	for _, m := range v.Rules {
		e.Rules = append(e.Rules, admin.ExplainedRule{ID: m.ID, Message: m.Message, Targets: m.Targets, Omitted: m.Omitted})
	}
	return e
}

// keptDirectives remembers the directives of kept baselines by version:
// a bundle never changes, and reading one from the store compiles it,
// the CRS included (about a second). A bundle that does not compile
// (the binary's CRS changed) is remembered as nil, and passed over.
type keptDirectives struct {
	mu        sync.Mutex
	byVersion map[string][]ruleset.Directive
}

// of returns the directives of kept baseline version: served's own when
// it is the one serving.
func (k *keptDirectives) of(ctx context.Context, s *Node, version string, served *ruleset.Ruleset) []ruleset.Directive {
	if version == served.Version {
		return served.Directives()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if ds, ok := k.byVersion[version]; ok {
		return ds
	}
	if k.byVersion == nil {
		k.byVersion = map[string][]ruleset.Directive{}
	}
	rs, err := s.store.LoadRuleset(ctx, version)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the client left: try again next time
		}
		s.log.Warn("exceptions: kept baseline not read, passed over for origins", "version", version, "error", err.Error())
		k.byVersion[version] = nil
		return nil
	}
	ds := rs.Directives()
	rs.Retire()
	k.byVersion[version] = ds
	return ds
}

// retireText says, for the journal, what a retire takes away and what the
// exception monitor measured of it.
func (s *Node) retireText(e exception.Exception) string {
	list := []exception.Exception{e}
	s.exceptions.Annotate(list, s.exceptions.Now().UTC())
	e = list[0]
	when := "on every request"
	if len(e.Conditions) > 0 {
		var cs []string
		for _, c := range e.Conditions {
			cs = append(cs, c.String())
		}
		when = "when " + strings.Join(cs, " and ")
	}
	text := fmt.Sprintf("retiring exception %s (%s), which removes %s %s %s; status %s", e.ID, e.Where(),
		strings.Join(e.Kinds, ", "), strings.Join(e.Rules, " "), when, e.Status)
	if e.Measured || e.Judged > 0 {
		text += fmt.Sprintf(", %d would-be blocks in %d requests judged without it", e.WouldBlock, e.Judged)
	}
	return text + ": what it still let through is the rollout's new blocks"
}

// renew puts in service the served baseline with one exception's
// metadata changed (admin.StartRequest.Renew), without steps: the change
// is proven to judge every request as the served baseline does
// (exception.MetadataOnly: the same directives in the same order and the
// same compiled rules, wafcanary/ tags aside, and no exclusion by such a
// tag), so steps would measure nothing, and a new expiry date would wait
// for their minimums. It is journalled as a renew (who, why, what
// changed, the proof), then started and promoted at once, so that undo
// and the kept baselines hold it as any other change. Under four-eyes
// (rollout.approvals.distinct) the starter cannot promote it: it waits,
// as a rollout, for another approver.
func (s *Node) renew(ctx context.Context, req admin.StartRequest, base *ruleset.Ruleset) (admin.Status, error) {
	ctx = context.WithoutCancel(ctx) // a change half made would leave the operator guessing
	id := req.Renew.Exception
	r, err := exception.Renew(base, id, req.Renew.Meta, s.exceptions.Now().UTC())
	switch {
	case errors.Is(err, exception.ErrNoSuchException), errors.Is(err, exception.ErrBadMeta):
		return admin.Status{}, fmt.Errorf("renew: %w: %w", err, rollout.ErrBadRequest)
	case err != nil:
		return admin.Status{}, fmt.Errorf("renew: %w", err)
	}
	cand, err := r.Compile(fmt.Sprintf("%s (exception %s renewed)", base.Path, id))
	if err != nil {
		return admin.Status{}, fmt.Errorf("renew %s: %w", id, err)
	}
	if err := exception.MetadataOnly(base, cand); err != nil {
		cand.Retire()
		return admin.Status{}, fmt.Errorf("renew %s: not proven to change metadata only: %w", id, err)
	}
	proof := fmt.Sprintf("judges every request as baseline %s does: the same %d directives in the same order and the same %d compiled rules, wafcanary/ tags aside; no exclusion removes rules by such a tag",
		base.Version, len(base.Directives()), len(base.Rules))
	change := exception.Changed(r.Before, r.After)
	what := fmt.Sprintf("exception %s (%s): %s", id, r.Before.Where(), change)
	if err := s.rollout.Journal(ctx, time.Now, rollout.Entry{Actor: req.Actor, Action: rollout.ActionRenew,
		Reason: req.Reason + "; " + what + " [" + proof + "]", Baseline: base.Version, Candidate: cand.Version}); err != nil {
		cand.Retire()
		return admin.Status{}, err
	}
	spec := rollout.Spec{Actor: req.Actor, Reason: req.Reason + " [renew " + what + "]", Baseline: base.Version,
		ScopeNote: "a renewal changes metadata only"}
	if _, err := s.rollout.Start(ctx, cand, spec, time.Now); err != nil {
		cand.Retire()
		return admin.Status{}, err
	}
	report := &admin.StartReport{Base: "the served baseline " + base.Version + " with " + what, ScopeFrom: admin.ScopeNone,
		ScopeWhy: "a renewal changes metadata only", Proof: proof}
	_, err = s.rollout.Promote(ctx, req.Actor, "renewal of "+what+", metadata only, promoted without steps: it "+proof, time.Now)
	switch {
	case errors.Is(err, rollout.ErrSameApprover):
		// Extending an exception is a change like any other: four-eyes
		// holds. It waits as an ordinary rollout (no verdict differs)
		// for another approver's promote.
		report.Base += "; waiting for another approver (rollout.approvals.distinct): wafcanary promote --full by someone else puts it in service"
		s.log.Info("exception renewal waits for another approver", "actor", req.Actor, "exception", id, "change", change)
	case err != nil:
		return admin.Status{}, fmt.Errorf("renewal started but not promoted (wafcanary promote --full puts it in service, rollback drops it): %w", err)
	default:
		after := r.After
		report.Renewed = &after
		s.log.Info("exception renewed", "actor", req.Actor, "exception", id, "change", change, "baseline", cand.Version)
	}
	st := s.Status()
	st.Composed = report
	return st, nil
}
