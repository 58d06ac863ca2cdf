package rollout

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's collectors, beside what they count: where
// the rollout stands, what it decided, and the evidence against each
// limit, so a dashboard can plot why a decision came.
type Metrics struct {
	state *prometheus.GaugeVec
	step  prometheus.Gauge
	// stepStarted and awaiting let an alert tell a stuck rollout and a
	// forgotten approval.
	stepStarted prometheus.Gauge
	awaiting    prometheus.Gauge
	decisions   *prometheus.CounterVec
	evidence    *prometheus.GaugeVec
	// evidenceErrors and probeErrors count analyses that could not judge
	// the candidate, so an alert fires long before the error limit.
	evidenceErrors prometheus.Counter
	probeErrors    prometheus.Counter
}

var _ Reporter = (*Metrics)(nil)

// Decisions the controller and operators take, created at zero.
var decisions = []Action{ActionStart, ActionAdvance, ActionPromote, ActionRollback, ActionHold, ActionAwait, ActionPause, ActionResume, ActionUndo, ActionReload}

// NewMetrics creates the rollout collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	r := &Metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wafcanary_rollout_state",
			Help: "1 for the rollout's current state, 0 for the others.",
		}, []string{"state"}),
		step: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wafcanary_rollout_step",
			Help: "The rollout step in force, numbered from 1 as `wafcanary status` and the status page number it.",
		}),
		stepStarted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wafcanary_rollout_step_started_timestamp_seconds",
			Help: "When the step in force began (Unix seconds; 0 with no rollout): time() minus it is how long the rollout has stood at its step.",
		}),
		awaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wafcanary_rollout_awaiting_approval",
			Help: "1 while the next step waits for `wafcanary promote` (a step with approval: true), else 0.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wafcanary_rollout_decisions_total",
			Help: "Decisions taken, by the controller or an operator.",
		}, []string{"decision"}),
		evidence: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wafcanary_rollout_evidence",
			Help: "Latest analysis per check: observed value, confidence-sequence bounds and the policy limit (rates as 0-1 fractions, latencies in seconds); verdict is 0 skip, 1 pass, 2 inconclusive, 3 fail.",
		}, []string{"check", "value"}),
		evidenceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wafcanary_rollout_evidence_errors_total",
			Help: "Analyses recorded whose evidence could not be read (rollout.consecutive_error_limit in a row rolls the candidate back).",
		}),
		probeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wafcanary_rollout_probe_errors_total",
			Help: "Analyses recorded whose live probe did not run (rollout.consecutive_error_limit in a row rolls the candidate back).",
		}),
	}
	reg.MustRegister(r.state, r.step, r.stepStarted, r.awaiting, r.decisions, r.evidence, r.evidenceErrors, r.probeErrors)
	for _, d := range decisions {
		r.decisions.WithLabelValues(string(d))
	}
	return r
}

// ReportRollout implements Reporter.
func (r *Metrics) ReportRollout(st State, a *Analysis, decision Action) {
	for _, p := range Phases {
		v := 0.0
		if p == st.Phase {
			v = 1
		}
		r.state.WithLabelValues(string(p)).Set(v)
	}
	r.step.Set(float64(st.Step + 1))
	started, awaiting := 0.0, 0.0
	if st.Phase.Active() && !st.StepStarted.IsZero() {
		started = float64(st.StepStarted.UnixNano()) / 1e9
	}
	if st.Awaiting && st.Phase.Active() {
		awaiting = 1
	}
	r.stepStarted.Set(started)
	r.awaiting.Set(awaiting)
	if decision != "" {
		r.decisions.WithLabelValues(string(decision)).Inc()
	}
	if a == nil {
		return
	}
	for _, o := range a.Outcomes {
		switch {
		case o.Status != Inconclusive:
		case o.Check == CheckEvidence:
			r.evidenceErrors.Inc()
		case o.Check == CheckProbe:
			r.probeErrors.Inc()
		}
		r.evidence.WithLabelValues(o.Check, "observed").Set(o.Observed)
		r.evidence.WithLabelValues(o.Check, "lower").Set(o.Lower)
		r.evidence.WithLabelValues(o.Check, "upper").Set(o.Upper)
		r.evidence.WithLabelValues(o.Check, "limit").Set(o.Limit)
		r.evidence.WithLabelValues(o.Check, "verdict").Set(float64(o.Status))
	}
}

// ForgetAnalysis stops exporting the last analysis: a replica that no
// longer leads does not analyse, and its last analysis beside the new
// leader's would mix the two on a dashboard taking the fleet's max.
func (r *Metrics) ForgetAnalysis() { r.evidence.Reset() }
