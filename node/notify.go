package node

import (
	"github.com/wafcanary/wafcanary/notification"
	"github.com/wafcanary/wafcanary/rollout"
)

// eventOf says which notification a recorded decision is, if any: holds,
// pauses, resumes and reloads change nothing a person must hear about,
// and an approval is announced once, when the wait begins.
func eventOf(prev, st rollout.State, d rollout.Decision) (notification.Event, bool) {
	switch d.Action {
	case rollout.ActionStart:
		return notification.Start, true
	case rollout.ActionAdvance:
		return notification.Step, true
	case rollout.ActionAwait:
		return notification.Approval, !prev.Awaiting
	case rollout.ActionPromote:
		return notification.Promotion, true
	case rollout.ActionRollback:
		return notification.Rollback, true
	case rollout.ActionUndo:
		return notification.Undo, true
	}
	return "", false
}

// decided is the controller's Notify: it queues the event's message and
// returns at once.
func (s *Node) decided(prev, st rollout.State, d rollout.Decision) {
	ev, ok := eventOf(prev, st, d)
	if !ok {
		return
	}
	m := notification.Message{Event: ev, Time: d.Time, Actor: d.Actor, Reason: d.Reason, State: string(st.Phase),
		Step: st.Step + 1, Steps: len(s.rollout.StepsOf(st)), Percent: st.Percent, Baseline: st.Baseline.Version,
		Ticket: d.Ticket, Emergency: d.Emergency}
	switch {
	case st.Candidate != nil:
		m.Candidate = st.Candidate.Version
	case prev.Candidate != nil:
		m.Candidate = prev.Candidate.Version // a promotion: the candidate is the baseline now
	}
	if s.fleetStore != nil {
		m.Replica = s.replicaID()
	}
	s.notifier.Send(m)
}
