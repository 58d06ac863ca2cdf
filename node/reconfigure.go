package node

import (
	"context"
	"reflect"
	"time"
)

// Reconfigure takes a configuration read again on SIGHUP. The rollout
// section (steps, policy, max_duration...) takes effect for the next
// rollout, journalled (rollout.Controller.Reconfigure); what cannot change
// without a restart is named in the log and left as it is. A rollout in
// progress keeps the steps and policy it started with.
func (s *Node) Reconfigure(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		s.log.Error("configuration not reloaded", "error", err.Error())
		return err
	}
	var restart []string
	for _, k := range []struct {
		key  string
		a, b any
	}{
		{"listen", s.cfg.Listen, cfg.Listen}, {"upstream", s.cfg.Upstream, cfg.Upstream}, {"state_dir", s.cfg.StateDir, cfg.StateDir},
		{"state", s.cfg.State, cfg.State}, {"admin", s.cfg.Admin, cfg.Admin}, {"rulesets", s.cfg.Rulesets, cfg.Rulesets},
		{"routing", s.cfg.Routing, cfg.Routing}, {"shadow", s.cfg.Shadow, cfg.Shadow}, {"proxy", s.cfg.Proxy, cfg.Proxy},
		{"gates", s.cfg.Gates, cfg.Gates}, {"capture", s.cfg.Capture, cfg.Capture}, {"tls", s.cfg.TLS, cfg.TLS},
		{"notifications", s.cfg.Notifications, cfg.Notifications}, {"log", s.cfg.Log, cfg.Log},
	} {
		if !reflect.DeepEqual(k.a, k.b) {
			restart = append(restart, k.key)
		}
	}
	changed, more, err := s.rollout.Reconfigure(ctx, cfg.Rollout, "sighup", time.Now)
	restart = append(restart, more...)
	if len(restart) > 0 {
		s.log.Warn("configuration changed where a reload cannot apply it: restart to apply", "keys", restart)
	}
	if err != nil {
		s.log.Error("rollout configuration not reloaded", "error", err.Error())
		return err
	}
	if len(changed) > 0 {
		s.log.Info("rollout configuration reloaded for the next rollout", "keys", changed, "steps", len(cfg.Rollout.Steps))
	}
	return nil
}
