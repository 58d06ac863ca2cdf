package rollout

import (
	"context"
	"fmt"
	"reflect"
	"strings"
)

// Reconfigure puts cfg in force for the rollouts started from now on: the
// steps, the policy, max_duration, keep_baselines and the error limit.
// It is refused while a rollout runs (that rollout was started, and is
// judged, under the steps and policy it began with) and in a fleet (every
// replica must judge alike: change the fleet's configuration and restart
// replicas). A change is journalled, with the keys it changed, before it
// is in force; keys it cannot change without a restart (the interval, the
// evidence source) are named, and left as they are. It returns the keys
// changed, none when cfg is the configuration in force.
func (c *Controller) Reconfigure(ctx context.Context, cfg Config, actor string, clock Clock) (changed, needRestart []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("rollout.%w: %w", err, ErrBadRequest)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := *c.conf()
	next := cur
	for _, k := range []struct {
		key     string
		a, b    any
		restart bool
		set     func()
	}{
		{"rollout.steps", cur.Steps, cfg.Steps, false, func() { next.Steps = cfg.Steps }},
		{"rollout.policy", cur.Policy, cfg.Policy, false, func() { next.Policy = cfg.Policy }},
		{"rollout.max_duration", cur.MaxDuration, cfg.MaxDuration, false, func() { next.MaxDuration = cfg.MaxDuration }},
		{"rollout.presets", cur.Presets, cfg.Presets, false, func() { next.Presets = cfg.Presets }},
		{"rollout.keep_baselines", cur.KeepBaselines, cfg.KeepBaselines, false, func() { next.KeepBaselines = cfg.KeepBaselines }},
		{"rollout.consecutive_error_limit", cur.ConsecutiveErrorLimit, cfg.ConsecutiveErrorLimit, false, func() { next.ConsecutiveErrorLimit = cfg.ConsecutiveErrorLimit }},
		{"rollout.approvals", cur.Approvals, cfg.Approvals, false, func() { next.Approvals = cfg.Approvals }},
		{"rollout.interval", cur.Interval, cfg.Interval, true, nil},
		{"rollout.metrics_source", cur.MetricsSource, cfg.MetricsSource, true, nil},
		{"rollout.prometheus", cur.Prometheus, cfg.Prometheus, true, nil},
	} {
		if reflect.DeepEqual(k.a, k.b) {
			continue
		}
		if k.restart {
			needRestart = append(needRestart, k.key)
			continue
		}
		changed = append(changed, k.key)
		k.set()
	}
	if len(changed) == 0 {
		return nil, needRestart, nil
	}
	switch {
	case c.lead != nil:
		return nil, needRestart, fmt.Errorf("%s changed: a fleet's replicas must judge alike, so its rollout section changes with a restart of each replica: %w", strings.Join(changed, ", "), ErrConflict)
	case c.state.Phase.Active():
		return nil, needRestart, fmt.Errorf("%s changed: a rollout is %s, judged by the steps and policy it started with; the change takes effect once it ends (send SIGHUP again then): %w", strings.Join(changed, ", "), c.state.Phase, ErrConflict)
	}
	e := Entry{Time: clock(), Actor: actor, Action: ActionConfigure, State: c.state.Phase, Step: c.state.Step,
		Percent: c.state.Percent, Baseline: c.state.Baseline.Version,
		Reason: fmt.Sprintf("%s changed for the next rollout: %s", strings.Join(changed, ", "), describeSteps(next.Steps))}
	if err := c.store.Append(ctx, e); err != nil {
		return nil, needRestart, fmt.Errorf("journalling the new rollout configuration: %w", err)
	}
	c.cfg.Store(&next)
	return changed, needRestart, nil
}

// describeSteps says the steps as a person reads them: "shadow 5m/5000,
// 1% 10m/5000, ..., 100% 10m/5000 (approval)".
func describeSteps(steps []Step) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		share := fmt.Sprintf("%g%%", s.Percent)
		if s.Percent == 0 {
			share = "shadow"
		}
		parts[i] = fmt.Sprintf("%s %s/%d", share, s.MinDuration, s.MinRequests)
		if s.Approval {
			parts[i] += " (approval)"
		}
	}
	return "steps " + strings.Join(parts, ", ")
}
