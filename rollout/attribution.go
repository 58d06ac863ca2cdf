package rollout

import (
	"context"
	"errors"
	"fmt"
)

// Attribution is what an operator's action carries into its record
// besides the actor and the reason: the change ticket, the name the
// client claimed when the server knows better, and whether the actor is
// a person's own identity. The admin API sets it on the action's context
// (WithAttribution), like a request ID, so that the decision and every
// entry the action journals carry it without each action growing a
// parameter; an action without one (the controller's own, a test's) is
// recorded as before.
type Attribution struct {
	// Ticket is the change ticket the action was taken under (--ticket).
	Ticket string
	// Claimed is the actor the client named when it differs from the
	// identity its credential proves; kept beside it, never instead.
	Claimed string
	// Personal is set when the actor is a person's own identity
	// (admin.users), not a shared credential: only then can an approval
	// be told from its rollout's start (rollout.approvals.distinct).
	Personal bool
	// Emergency marks an admin's promotion past four-eyes, with a reason
	// (promote --emergency): allowed, journalled and notified as such.
	Emergency bool
}

type attributionKey struct{}

// WithAttribution returns ctx carrying a for the actions taken with it.
func WithAttribution(ctx context.Context, a Attribution) context.Context {
	return context.WithValue(ctx, attributionKey{}, a)
}

// AttributionOf returns the attribution ctx carries, the zero one if none.
func AttributionOf(ctx context.Context) Attribution {
	a, _ := ctx.Value(attributionKey{}).(Attribution)
	return a
}

// ErrSameApprover is an approval asked for by the identity that started
// the rollout, refused while rollout.approvals.distinct is true (the
// admin API answers 403).
var ErrSameApprover = errors.New("four-eyes: the approver must not be the rollout's starter")

// Attribute returns d with the attribution ctx carries, for a store
// that records an operator's decision itself (a fleet's etcd).
func Attribute(ctx context.Context, d Decision) Decision {
	a := AttributionOf(ctx)
	if d.Ticket == "" {
		d.Ticket = a.Ticket
	}
	if d.Claimed == "" {
		d.Claimed = a.Claimed
	}
	d.Emergency = d.Emergency || a.Emergency
	return d
}

// approval checks that actor may approve the rollout in state st, a
// promotion of any kind: with a personal identity and
// rollout.approvals.distinct, never the one that started it, unless as
// an emergency. It returns what the decision's reason must add: how
// four-eyes was passed by, when it was.
func (c *Controller) approval(ctx context.Context, st State, actor string) (string, error) {
	a := AttributionOf(ctx)
	if !a.Personal || st.StartedBy == "" || actor != st.StartedBy {
		if a.Emergency {
			return " [emergency promotion by " + actor + "]", nil
		}
		return "", nil
	}
	switch {
	case a.Emergency:
		return " [emergency: approved by " + actor + ", who started the rollout, past four-eyes]", nil
	case !c.conf().Approvals.Distinct:
		return " [approved by " + actor + ", who started the rollout: rollout.approvals.distinct is false]", nil
	}
	return "", fmt.Errorf("%s started this rollout and may not approve it too (rollout.approvals.distinct): another approver must promote it, or an admin with --emergency and a reason: %w", actor, ErrSameApprover)
}
