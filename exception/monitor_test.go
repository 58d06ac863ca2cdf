package exception

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// serve runs r through rs as the proxy does, offering it to m.
func serve(t *testing.T, m *Monitor, rs *ruleset.Ruleset, id string, d demo.Request) verdict.Verdict {
	t.Helper()
	method := d.Method
	if method == "" {
		method = http.MethodGet
	}
	hr, err := http.NewRequest(method, "http://shop.example.com"+d.Path, strings.NewReader(d.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range d.Header {
		hr.Header[k] = vs
	}
	req := verdict.RequestOf(hr, id, "192.0.2.7", 40000)
	var body io.Reader
	if d.Body != "" {
		body = strings.NewReader(d.Body)
	}
	tx := rs.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: id, Context: context.Background()})
	it, _, err := verdict.RequestPhases(tx, rs, &req, body)
	if err != nil {
		t.Fatal(err)
	}
	offer := m.SampleRequest(rs, tx, &req, it != nil)
	v := verdict.Of(tx)
	_ = tx.Close()
	if offer != nil {
		offer()
	}
	return v
}

// drain judges what m's queue holds.
func drain(m *Monitor) {
	for {
		select {
		case s := <-m.queue:
			m.evaluate(context.Background(), s)
			m.queued.Add(-s.size)
		default:
			return
		}
	}
}

// TestMonitorMeasuresEachException serves the benign, attack and false
// positive requests through a baseline with three exceptions, each
// sampled: the ticket exception lets the ticket's false positive through
// (930120), and only that; the directive nothing touches lets nothing
// through and turns stale once both thresholds pass, told once; the
// dangling one is not measured (it removes nothing).
func TestMonitorMeasuresEachException(t *testing.T) {
	rs := load(t, threeExceptions(t, now.AddDate(0, 1, 0).Format(time.DateOnly)))
	cfg := DefaultConfig
	cfg.SamplePercent, cfg.StaleAfterRequests, cfg.StaleAfter = 100, 20, 24*time.Hour
	reg := prometheus.NewRegistry()
	var told []Transition
	m := NewMonitor(cfg, reg, slog.New(slog.DiscardHandler), func(c Transition) { told = append(told, c) })
	clock := now
	m.Clock = func() time.Time { return clock }
	m.build(rs)
	t.Cleanup(func() { retire(m.set.Load()) })
	if got := len(m.set.Load().variants); got != 2 {
		t.Fatalf("%d variants, want 2 (the dangling exception removes nothing)", got)
	}

	var reqs []demo.Request
	reqs = append(reqs, demo.BenignRequests()...)
	reqs = append(reqs, demo.AttackRequests()...)
	reqs = append(reqs, demo.FalsePositiveRequests()...)
	blocked := 0
	for round := range 2 {
		for i, d := range reqs {
			if serve(t, m, rs, fmt.Sprintf("r%d-%02d-%s", round, i, d.Name), d).Blocked {
				blocked++
			}
		}
	}
	drain(m)

	list := List(rs, now)
	m.Annotate(list, clock)
	byID := map[string]Exception{}
	for _, e := range list {
		byID[e.ID] = e
	}
	ticket, dangling := byID["10000"], byID["10001"]
	var untouched Exception
	for _, e := range list {
		if e.directive {
			untouched = e
		}
	}
	n := uint64(2 * len(reqs))
	if !ticket.Measured || ticket.Judged != n || ticket.WouldBlock != 2 || ticket.LastWouldBlock == nil {
		t.Fatalf("ticket exception: %+v, want %d judged, 2 would-be blocks", ticket, n)
	}
	if last := ticket.LastWouldBlock; !strings.Contains(last.RequestID, "fp-ticket-etc-hosts") || last.Path != "/support/tickets" ||
		!slices.Contains(last.Rules, 930120) || !last.Time.Equal(now) {
		t.Errorf("last would-be block %+v: want the ticket, 930120, at %s", last, now)
	}
	if len(ticket.WouldBlockRules) == 0 || ticket.WouldBlockRules[0] != (RuleCount{ID: 930120, Count: 2}) {
		t.Errorf("rules behind: %v, want 930120 twice first", ticket.WouldBlockRules)
	}
	if sg, ok := m.Sighting(last(ticket).RequestID); !ok || !sg.Verdict.Blocked {
		t.Errorf("Sighting(%s) = %+v, %v: want the variant's blocking verdict", last(ticket).RequestID, sg, ok)
	}
	// Only requests on which rule 10000 matched are evaluated: the tickets.
	if ticket.Evaluated != 2 {
		t.Errorf("ticket exception: %d evaluated in full, want 2 (the shortcut derives the rest)", ticket.Evaluated)
	}
	if !untouched.Measured || untouched.WouldBlock != 0 || untouched.Judged != n || untouched.Evaluated != n-uint64(blocked) {
		t.Errorf("untouched directive: %+v: want %d judged, %d evaluated (a directive acts on every request; blocked ones need none)", untouched, n, n-uint64(blocked))
	}
	if dangling.Measured || dangling.Status != Dangling {
		t.Errorf("dangling exception: measured %v, status %s", dangling.Measured, dangling.Status)
	}
	if untouched.Status != Active {
		t.Errorf("untouched directive before stale_after: %s, want active", untouched.Status)
	}

	m.Check()
	if len(told) != 0 {
		t.Fatalf("told %v before anything turned stale", told)
	}
	clock = now.Add(25 * time.Hour)
	m.Check()
	m.Check() // once per transition, not per check
	if len(told) != 1 || told[0].Status != Stale || told[0].Exception.ID != untouched.ID {
		t.Fatalf("told %+v, want the untouched directive stale, once", told)
	}
	if got := testutil.ToFloat64(m.m.stale.WithLabelValues(untouched.ID)); got != 1 {
		t.Errorf("wafcanary_exception_stale{exception=%q} = %v, want 1", untouched.ID, got)
	}
	if got := testutil.ToFloat64(m.m.stale.WithLabelValues("10000")); got != 0 {
		t.Errorf("the ticket exception is stale: %v", got)
	}
	if got := testutil.ToFloat64(m.m.wouldBlock.WithLabelValues("10000")); got != 2 {
		t.Errorf("wafcanary_exception_would_block_total{exception=10000} = %v, want 2", got)
	}

	// Past its expiry date the ticket exception is expired, told once.
	clock = now.AddDate(0, 2, 0)
	m.Check()
	m.Check()
	if len(told) != 2 || told[1].Status != Expired || told[1].Exception.ID != "10000" {
		t.Fatalf("told %+v, want the ticket exception expired, once", told)
	}
	if got := testutil.ToFloat64(m.m.expired.WithLabelValues("10000")); got != 1 {
		t.Errorf("wafcanary_exception_expired{exception=10000} = %v, want 1", got)
	}
}

func last(e Exception) Sighting { return *e.LastWouldBlock }

// TestWithoutCommentsOutOnlyTheException compiles a baseline without each
// exception: the variant lacks its rule (or its directive), keeps every
// other rule at its file:line, and compiles to another version.
func TestWithoutCommentsOutOnlyTheException(t *testing.T) {
	rs := load(t, threeExceptions(t, "2026-12-31"))
	for _, e := range List(rs, now) {
		t.Run(e.ID, func(t *testing.T) {
			v, err := Without(rs, e)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Retire()
			if v.Version == rs.Version {
				t.Error("same version as the baseline")
			}
			left := List(v, now)
			if slices.ContainsFunc(left, func(o Exception) bool { return o.ID == e.ID }) || len(left) != 2 {
				t.Errorf("without %s: %d exceptions left, %v", e.ID, len(left), left)
			}
			for _, r := range rs.Rules {
				if id, _ := e.links[0].ID(); r.ID == id || r.ID == 0 { // 0: chain links
					continue
				}
				got, ok := v.Rule(r.ID)
				if !ok || got.File != r.File || got.Line != r.Line {
					t.Fatalf("rule %d at %s:%d, variant has %+v (%v)", r.ID, r.File, r.Line, got, ok)
				}
			}
		})
	}
}
