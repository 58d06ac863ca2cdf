package node

import (
	"context"
	"sync"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/notification"
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
