package node

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/notification"
)

// baselineWithThreeExceptions writes the shipped baseline with three
// exceptions: the support-ticket one the traffic needs (930120 on
// ARGS:message, the shipped candidate's), one for a host no request
// names, and a directive naming 942441, which CRS 4.22 deleted.
func baselineWithThreeExceptions(t *testing.T) string {
	t.Helper()
	shipped, err := fs.ReadFile(configs.Rulesets, "baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	const include = "Include @owasp_crs/*.conf"
	before := `SecRule REQUEST_FILENAME "@streq /support/tickets" \
    "id:10000,phase:1,pass,t:none,nolog,tag:'wafcanary/owner=alice',tag:'wafcanary/expires=2099-12-31',\
    ctl:ruleRemoveTargetById=930120;ARGS:message"
SecRule REQUEST_HEADERS:Host "@streq legacy.example" \
    "id:10001,phase:1,pass,t:none,nolog,tag:'wafcanary/owner=bob',ctl:ruleRemoveById=942100"
`
	after := `
# wafcanary/owner=carol
SecRuleRemoveById 942441
`
	path := filepath.Join(t.TempDir(), "baseline.conf")
	if err := os.WriteFile(path, []byte(strings.Replace(string(shipped), include, before+include+after, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startLiveClocked is startLive with the exception monitor's clock set
// before the node runs.
func startLiveClocked(t *testing.T, cfg Config, clock func() time.Time) *liveServer {
	t.Helper()
	s, err := New(cfg, quietLogger(), "test")
	if err != nil {
		t.Fatal(err)
	}
	s.exceptions.Clock = clock
	pl, al := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, pl, al) }()
	ls := &liveServer{s: s, proxy: "http://" + pl.Addr().String(), admin: "http://" + al.Addr().String()}
	var once sync.Once
	ls.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(ls.stop)
	return ls
}

// TestExceptionsMeasuredLive runs a node whose baseline carries three
// exceptions, every request sampled, under real traffic through the
// proxy with the ticket false positive in the mix: the ticket exception
// has would-be blocks by 930120, its last one a request ID explain
// resolves; the one nothing touches turns stale once both thresholds pass
// (injected clock), on the metric and in one notification; the dangling
// one stays dangling and is not measured.
func TestExceptionsMeasuredLive(t *testing.T) {
	var mu sync.Mutex
	var told []notification.Message
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m notification.Message
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		told = append(told, m)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	start := time.Date(2026, time.May, 4, 12, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	clock := func() time.Time { return start.Add(time.Duration(offset.Load())) }

	cfg := testConfig(t, newUpstream(t).URL)
	cfg.Rulesets.Baseline = baselineWithThreeExceptions(t)
	cfg.Exceptions.SamplePercent = 100
	cfg.Exceptions.StaleAfterRequests = 100
	cfg.Exceptions.StaleAfter = 7 * 24 * time.Hour
	cfg.Notifications.Webhooks = []notification.Webhook{{URL: recv.URL + "/hook", Format: notification.JSON}}
	ls := startLiveClocked(t, cfg, clock)
	ctx := context.Background()
	api := ls.api()

	byID := func() map[string]exception.Exception {
		t.Helper()
		l, err := api.Exceptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]exception.Exception{}
		for _, e := range l.Exceptions {
			out[e.ID] = e
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for !byID()["10000"].Measured {
		if time.Now().After(deadline) {
			t.Fatal("the variants were not built in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var dangling exception.Exception
	for id, e := range byID() {
		if id != "10000" && id != "10001" {
			dangling = e
		}
	}

	const n = 300 // every tenth a false positive: the ticket, a tenth of those
	send(t, ls.proxy, n, 0, demo.FalsePositiveRequests())
	var got map[string]exception.Exception
	for {
		got = byID()
		if got["10000"].Judged == n && got["10001"].Judged == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every request judged in time: %d and %d of %d", got["10000"].Judged, got["10001"].Judged, n)
		}
		time.Sleep(50 * time.Millisecond)
	}

	needed, untouched := got["10000"], got["10001"]
	tickets := uint64(n / 10 / len(demo.FalsePositiveRequests()))
	if needed.WouldBlock != tickets || needed.Status != exception.Active || len(needed.WouldBlockRules) == 0 || needed.WouldBlockRules[0].ID != 930120 {
		t.Fatalf("the ticket exception: %d would-be blocks by %v, status %s; want %d by 930120", needed.WouldBlock, needed.WouldBlockRules, needed.Status, tickets)
	}
	if needed.Evaluated != tickets {
		t.Errorf("the ticket exception: %d requests evaluated in full, want only the %d on which it matched", needed.Evaluated, tickets)
	}
	last := needed.LastWouldBlock
	if last == nil || last.Path != "/support/tickets" || !slices.Contains(last.Rules, 930120) || !last.Time.Equal(start) {
		t.Fatalf("last would-be block: %+v", last)
	}
	e, err := api.Explain(ctx, last.RequestID)
	if err != nil {
		t.Fatalf("explain %s: %v", last.RequestID, err)
	}
	if e.Exception != "10000" || !slices.ContainsFunc(e.Rules, func(r admin.ExplainedRule) bool { return r.ID == 930120 }) || e.Path != "/support/tickets" {
		t.Errorf("explain %s: %+v", last.RequestID, e)
	}
	if untouched.WouldBlock != 0 || untouched.Evaluated != 0 || untouched.Status != exception.Active {
		t.Errorf("the untouched exception: %+v, want nothing evaluated, active before stale_after", untouched)
	}
	if got[dangling.ID].Status != exception.Dangling || got[dangling.ID].Measured {
		t.Errorf("the dangling exception: %+v", got[dangling.ID])
	}

	// A week and a day later: stale, on the metric and told once.
	offset.Store(int64(8 * 24 * time.Hour))
	ls.s.exceptions.Check()
	ls.s.exceptions.Check()
	got = byID()
	if got["10001"].Status != exception.Stale || !got["10001"].Stale || got["10000"].Status != exception.Active {
		t.Fatalf("a week on: untouched %s, needed %s; want stale and active", got["10001"].Status, got["10000"].Status)
	}
	if got[dangling.ID].Status != exception.Dangling {
		t.Errorf("the dangling exception: %s, want it to stay dangling", got[dangling.ID].Status)
	}
	if v := gauge(t, ls, "wafcanary_exception_stale", "10001"); v != 1 {
		t.Errorf("wafcanary_exception_stale{exception=10001} = %v, want 1", v)
	}
	if v := gauge(t, ls, "wafcanary_exception_would_block_total", "10000"); v != float64(tickets) {
		t.Errorf("wafcanary_exception_would_block_total{exception=10000} = %v, want %d", v, tickets)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		k := len(told)
		mu.Unlock()
		if k > 0 || time.Now().After(deadline) {
			break
		}
	}
	ls.stop()
	var stale []notification.Message
	for _, m := range told {
		if m.Event == notification.ExceptionStale {
			stale = append(stale, m)
		}
	}
	if len(stale) != 1 || stale[0].Exception != "10001" || !strings.Contains(stale[0].Reason, "stale") {
		t.Errorf("notifications: %+v, want one exception_stale for 10001", told)
	}
}

// gauge reads one exception's series from the node's registry.
func gauge(t *testing.T, ls *liveServer, name, id string) float64 {
	t.Helper()
	mfs, err := ls.s.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "exception" && l.GetValue() == id {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{exception=%q}", name, id)
	return 0
}
