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
	restart := needRestart(s.cfg, cfg)
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

// needRestart names the top-level keys that differ between old and next,
// the rollout section aside (it reloads). It walks Config's fields, so a
// section added later is named too: a hand-kept list had already missed
// spoa, whose change a SIGHUP then passed over without a word.
func needRestart(old, next Config) []string {
	var keys []string
	a, b := reflect.ValueOf(old), reflect.ValueOf(next)
	for i := range a.NumField() {
		key := a.Type().Field(i).Tag.Get("mapstructure")
		if key == "rollout" {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			keys = append(keys, key)
		}
	}
	return keys
}
