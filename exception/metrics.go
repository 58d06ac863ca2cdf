package exception

import "github.com/prometheus/client_golang/prometheus"

// monitorMetrics are a Monitor's series. The exception label takes the
// IDs of the served baseline's inventory only: series are made at zero
// when a baseline serves and deleted with the exceptions it drops.
type monitorMetrics struct {
	judged, evaluated, wouldBlock *prometheus.CounterVec
	stale, expired                *prometheus.GaugeVec
	dropped                       prometheus.Counter
	variants                      prometheus.Gauge
	ids                           []string
}

func newMonitorMetrics(reg prometheus.Registerer) *monitorMetrics {
	label := []string{"exception"}
	m := &monitorMetrics{
		judged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wafcanary_exception_judged_total",
			Help: "Sampled requests judged without the exception (exceptions.sample_percent), derived or evaluated."}, label),
		evaluated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wafcanary_exception_evaluated_total",
			Help: "Of those, requests evaluated in full by the baseline without the exception; the others could not differ."}, label),
		wouldBlock: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wafcanary_exception_would_block_total",
			Help: "Requests the baseline let through that it would have blocked without the exception."}, label),
		stale: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wafcanary_exception_stale",
			Help: "1 when the exception let nothing through over exceptions.stale_after_requests judged requests and exceptions.stale_after."}, label),
		expired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wafcanary_exception_expired",
			Help: "1 when the exception is past its wafcanary/expires date."}, label),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "wafcanary_exception_dropped_total",
			Help: "Sampled requests not judged without the exceptions: queue full, body too large, or a failed evaluation."}),
		variants: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wafcanary_exception_variants",
			Help: "Compiled variants held: the served baseline without one exception each."}),
	}
	reg.MustRegister(m.judged, m.evaluated, m.wouldBlock, m.stale, m.expired, m.dropped, m.variants)
	return m
}

// keep makes the series of list's exceptions and deletes the others'.
func (m *monitorMetrics) keep(list []Exception) {
	now := map[string]bool{}
	for _, e := range list {
		now[e.ID] = true
		m.judged.WithLabelValues(e.ID)
		m.evaluated.WithLabelValues(e.ID)
		m.wouldBlock.WithLabelValues(e.ID)
		m.stale.WithLabelValues(e.ID)
		m.expired.WithLabelValues(e.ID).Set(boolFloat(e.Expired))
	}
	for _, id := range m.ids {
		if !now[id] {
			for _, v := range []*prometheus.MetricVec{m.judged.MetricVec, m.evaluated.MetricVec, m.wouldBlock.MetricVec, m.stale.MetricVec, m.expired.MetricVec} {
				v.DeleteLabelValues(id)
			}
		}
	}
	m.ids = m.ids[:0]
	for _, e := range list {
		m.ids = append(m.ids, e.ID)
	}
}
