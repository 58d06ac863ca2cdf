package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Result is how one simulated rollout ended.
type Result int

// Results.
const (
	Promoted     Result = iota
	RolledBack          // by evidence or the live probe: a check failed
	Inconclusive        // max_duration passed without a conclusion
)

func (r Result) String() string {
	return [...]string{"promoted", "rolled back", "inconclusive"}[r]
}

// Outcome is one simulated rollout.
type Outcome struct {
	Result Result
	// Elapsed is the time from start to the decision that ended it, and
	// Requests the requests sent meanwhile.
	Elapsed  time.Duration
	Requests int64
	// Checks are the failing checks of a rollback.
	Checks []string
}

// Run simulates one rollout of scenario s under cfg, with the random
// stream seeded by seed: it starts the candidate at t0, sends requests
// in virtual time, analyses every cfg.Interval as the controller's Run
// loop would, and returns when the rollout is promoted or rolled back.
func Run(ctx context.Context, s Scenario, cfg rollout.Config, seed uint64) (Outcome, error) {
	rng := newRand(seed)
	base, cand, err := rulesets()
	if err != nil {
		return Outcome{}, err
	}
	collector := evidence.NewCollector(nil)
	logger := slog.New(slog.DiscardHandler)
	secret := []byte("sim-routing-secret-0123456789")
	// The engine is wafcanary's own request path: the same assignment and
	// records as the proxy; only the verdicts are drawn rather than
	// reached by Coraza (Engine.Observe).
	engine, err := router.NewEngine(&router.Snapshot{Baseline: base}, router.EngineOptions{
		Routing: router.DefaultRoutingConfig, Shadow: router.DefaultShadowConfig, FailMode: router.FailClosed,
		Secret: secret, Logger: logger,
		Observe: router.Observers{Requests: []router.RequestObserver{collector}, Shadows: []router.ShadowObserver{collector}},
	})
	if err != nil {
		return Outcome{}, err
	}
	ctl, err := rollout.New(rollout.Options{Config: cfg, Router: engine, Evidence: collector, Store: newMemoryStore(),
		Logger: logger, ShadowSample: router.MaxShare})
	if err != nil {
		return Outcome{}, err
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	spec := rollout.Spec{Scope: evidence.Scope{Paths: []string{scopePath}, RuleIDs: []int{ruleFalsePositive}}, Actor: "sim", Reason: s.Name}
	if _, err := ctl.Start(context.Background(), cand, spec, func() time.Time { return t0 }); err != nil {
		return Outcome{}, err
	}
	gen := newGenerator(s, rng)
	clients := make([]router.Client, s.Traffic.Clients)
	for i := range clients {
		clients[i] = router.ClientKeyed("client-" + strconv.Itoa(i))
	}
	now, next := t0, t0.Add(cfg.Interval)
	var requests int64
	for {
		now = now.Add(time.Duration(rng.ExpFloat64() / s.Traffic.Rate * float64(time.Second)))
		for !now.Before(next) {
			if err := ctx.Err(); err != nil {
				return Outcome{}, err
			}
			d, err := ctl.Step(ctx, next)
			if err != nil {
				return Outcome{}, fmt.Errorf("step at %s: %w", next.Sub(t0), err)
			}
			if o, done := ended(d, next.Sub(t0), requests); done {
				return o, nil
			}
			next = next.Add(cfg.Interval)
		}
		requests++
		r := gen.next()
		arm, outside := engine.Arm(clients[r.client], "")
		j := router.Judged{Request: verdict.Request{URI: r.path}, Arm: arm, Outside: outside,
			Enforced: r.baseline, WAFTime: r.baseTime, Other: &r.candidate,
			BlockedInResponse: r.responseBlock, UpstreamError: r.upstreamError}
		if arm == verdict.Candidate {
			j.Enforced, j.WAFTime, j.Other = r.candidate, r.candTime, &r.baseline
			j.BlockedInResponse = r.responseBlock || r.candidateResponseBlock
		}
		engine.Observe(j)
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// ended reads a decision: whether it ended the rollout, and how.
func ended(d rollout.Decision, elapsed time.Duration, requests int64) (Outcome, bool) {
	o := Outcome{Elapsed: elapsed, Requests: requests}
	switch d.Action {
	case rollout.ActionPromote:
		o.Result = Promoted
	case rollout.ActionRollback, rollout.ActionPause:
		o.Result = RolledBack
		if strings.HasPrefix(d.Reason, "inconclusive") {
			o.Result = Inconclusive
		} else if d.Analysis != nil {
			for _, c := range d.Analysis.Outcomes {
				if c.Status == rollout.Fail {
					o.Checks = append(o.Checks, c.Check)
				}
			}
		}
	default:
		return o, false
	}
	return o, true
}

// rulesets compiles a baseline and a candidate of two versions. They only
// give the routing state its identities: the sim draws their verdicts.
// Each run gets its own, since a promotion retires (closes) the baseline.
func rulesets() (base, cand *ruleset.Ruleset, err error) {
	const rules = "SecRuleEngine On\nSecRule ARGS \"@contains attack\" \"id:1000,phase:2,deny,log\"\n"
	fs := fstest.MapFS{
		"baseline.conf":  {Data: []byte(rules)},
		"candidate.conf": {Data: []byte("# candidate\n" + rules)},
	}
	if base, err = ruleset.LoadFS(fs, "baseline.conf", "sim/baseline.conf"); err != nil {
		return nil, nil, err
	}
	if cand, err = ruleset.LoadFS(fs, "candidate.conf", "sim/candidate.conf"); err != nil {
		return nil, nil, err
	}
	return base, cand, nil
}

// MinimumTime is how long cfg's steps take at rate requests/s when every
// check passes at once: each step's min_duration or the time to see its
// min_requests judged by the candidate (all requests, with shadow on
// every request), whichever is longer.
func MinimumTime(cfg rollout.Config, rate float64) time.Duration {
	var total time.Duration
	for _, s := range cfg.Steps {
		total += max(s.MinDuration, time.Duration(float64(s.MinRequests)/rate*float64(time.Second)))
	}
	return total
}

// memoryStore keeps the controller's state and journal in memory: the
// simulation measures decisions, not the disk, and the file store's
// fsync per decision would dominate its run time.
type memoryStore struct {
	mu       sync.Mutex
	state    rollout.State
	rulesets map[string]*ruleset.Ruleset
}

var _ rollout.Store = (*memoryStore)(nil)

func newMemoryStore() *memoryStore {
	return &memoryStore{state: rollout.State{Phase: rollout.Idle}, rulesets: map[string]*ruleset.Ruleset{}}
}

func (m *memoryStore) Load(context.Context) (rollout.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

// Commit keeps st; both are encoded as a real store would, so a decision
// that could not be written fails here too.
func (m *memoryStore) Commit(_ context.Context, st rollout.State, e rollout.Entry) error {
	if _, err := json.Marshal(st); err != nil {
		return err
	}
	if _, err := json.Marshal(e); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = st
	return nil
}

func (m *memoryStore) Append(context.Context, rollout.Entry) error { return nil }

func (m *memoryStore) SaveRuleset(_ context.Context, rs *ruleset.Ruleset) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rulesets[rs.Version] = rs
	return nil
}

func (m *memoryStore) LoadRuleset(_ context.Context, version string) (*ruleset.Ruleset, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rs, ok := m.rulesets[version]; ok {
		return rs, nil
	}
	return nil, fmt.Errorf("no ruleset %s", version)
}

func (m *memoryStore) PruneRulesets(_ context.Context, keep []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for v := range m.rulesets {
		if !slices.Contains(keep, v) {
			delete(m.rulesets, v)
		}
	}
	return nil
}

// median of durations; 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	for i := 1; i < len(s); i++ { // small slices: insertion sort
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
