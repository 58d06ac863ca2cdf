package node

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/certificate"
	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
)

// LoadRuleset loads a file, or a shipped ruleset named "embedded:NAME".
func LoadRuleset(spec string) (*ruleset.Ruleset, error) {
	if name, ok := strings.CutPrefix(spec, "embedded:"); ok {
		return ruleset.LoadFS(configs.Rulesets, name, spec)
	}
	return ruleset.Load(spec)
}

// configured compiles the configured rulesets: the baseline file and, if
// named, the candidate at its share. A candidate that does not compile is
// always refused; strict makes that an error (a reload keeps what serves),
// otherwise the baseline serves alone (start-up: a broken candidate must
// not take production down).
func (s *Node) configured(strict bool) (rollout.Configured, error) {
	base, err := LoadRuleset(s.cfg.Rulesets.Baseline)
	if err != nil {
		s.metrics.RulesetLoadFailed("baseline")
		return rollout.Configured{}, InvalidRulesetError{err}
	}
	s.log.Info("ruleset loaded", "arm", "baseline", "path", base.Path, "version", base.Version, "rules", len(base.Rules), "crs", base.CRS.String())
	conf := rollout.Configured{Baseline: base}
	if s.cfg.Rulesets.Candidate == "" {
		return conf, nil
	}
	cand, err := LoadRuleset(s.cfg.Rulesets.Candidate)
	if err != nil {
		s.metrics.RulesetLoadFailed("candidate")
		if strict {
			base.Retire()
			return rollout.Configured{}, InvalidRulesetError{err}
		}
		s.log.Error("candidate ruleset refused; the baseline serves alone", "error", err.Error())
		return conf, nil
	}
	s.log.Info("ruleset loaded", "arm", "candidate", "path", cand.Path, "version", cand.Version, "rules", len(cand.Rules), "crs", cand.CRS.String())
	conf.Candidate = cand
	conf.Share, _ = router.ParseShare(s.cfg.Routing.CandidatePercent)    // validated
	conf.ShadowSample, _ = router.ParseShare(s.cfg.Shadow.SamplePercent) // validated
	return conf, nil
}

func snapshotOf(c rollout.Configured) *router.Snapshot {
	snap := &router.Snapshot{Baseline: c.Baseline}
	if c.Candidate != nil {
		snap.Candidate, snap.Share, snap.ShadowSample = c.Candidate, c.Share, c.ShadowSample
	}
	return snap
}

// Reload recompiles the configured ruleset files (SIGHUP) and hands them
// to the controller, which serves them unless a rollout owns the rulesets
// (refused), keeps a promoted or undone baseline while the configured
// file is unchanged, and journals any change (actor sighup) before it
// serves. Whatever fails, the rulesets in service keep serving.
func (s *Node) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.reloadCertificates()
	if s.member != nil {
		return s.refused(errFleetReload)
	}
	// Compiled outside the controller's lock; the controller decides
	// under it, refusing if a rollout started meanwhile.
	conf, err := s.configured(true)
	if err != nil {
		return s.refused(err)
	}
	if s.beforeReload != nil {
		s.beforeReload()
	}
	changed, err := s.rollout.Reload(context.Background(), conf, "sighup", time.Now)
	if err != nil {
		return s.refused(err)
	}
	if changed {
		s.logServing("reload")
	} else {
		s.log.Info("rulesets reloaded: nothing served changes", "baseline", s.router.Snapshot().Baseline.Version)
	}
	return nil
}

var errFleetReload = errors.New("state.backend is etcd: reload refused, a fleet changes rulesets through rollouts so every replica serves the same ones")

func (s *Node) refused(err error) error {
	s.log.Error("reload refused; rulesets in service keep serving", "error", err.Error())
	return err
}

// reloadCertificates loads the listeners' certificate files again: new
// handshakes use the new pair; one that does not load is refused, logged
// with its file, and the pair in service keeps serving.
func (s *Node) reloadCertificates() {
	for _, c := range []struct {
		name string
		src  *certificate.Source
	}{{"proxy", s.proxyTLS}, {"admin", s.adminTLS}} {
		if c.src == nil {
			continue
		}
		info, err := c.src.Load()
		if err != nil {
			s.log.Error("certificate refused; the one in service keeps serving", "listener", c.name, "error", err.Error())
			continue
		}
		s.log.Info("certificate loaded", "listener", c.name, "subject", info.Subject, "serial", info.Serial, "not_after", info.NotAfter)
	}
}
