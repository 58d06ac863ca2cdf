package notification

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// receiver records what a webhook was sent; hold, when set, keeps every
// request unanswered until it is closed or the client hangs up.
type receiver struct {
	mu     sync.Mutex
	bodies []string
	hold   chan struct{}
	status int
	at     []time.Time
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, req.Header.Get("Content-Type")+" "+string(b))
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	if r.hold != nil {
		select { // the server sees a client hang up only once the body is read
		case <-req.Context().Done():
		case <-r.hold:
		}
	}
	if r.status != 0 {
		w.WriteHeader(r.status)
	}
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

// events are the events of the JSON messages r received, in order.
func (r *receiver) events(t *testing.T) []Event {
	t.Helper()
	var out []Event
	for _, b := range r.got() {
		var m Message
		if err := json.Unmarshal([]byte(strings.TrimPrefix(b, "application/json ")), &m); err != nil {
			t.Fatalf("not a JSON message: %q", b)
		}
		out = append(out, m.Event)
	}
	return out
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// start runs n until the test ends, waiting for Run to return.
func start(t *testing.T, n *Notifier) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func value(n *Notifier, e Event, r string) float64 {
	return testutil.ToFloat64(n.results.WithLabelValues(string(e), r))
}

// A receiver gets each event in its format; one that fails is retried 1 s
// then 2 s later, then counted as failed; the webhook's secret path is
// never logged.
func TestNotifier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net pipeNet
		ok, failing := &receiver{}, &receiver{status: http.StatusBadGateway}
		okSrv, failSrv := net.server(t, ok.ServeHTTP), net.server(t, failing.ServeHTTP)
		logs := &logBuffer{}
		n := New(Config{Timeout: time.Second, Retries: 2, QueueSize: 8, Webhooks: []Webhook{
			{URL: okSrv.URL + "/json", Format: JSON},
			{URL: okSrv.URL + "/slack", Format: Slack, Events: []Event{Rollback}},
			{URL: failSrv.URL + "/services/T0/B0/s3cret-path", Format: JSON, Events: []Event{Rollback}},
		}}, prometheus.NewRegistry(), slog.New(slog.NewJSONHandler(logs, nil)))
		net.use(t, n)
		start(t, n)
		t0 := time.Now()

		n.Send(Message{Event: Start, Actor: "alice", Reason: "fp", State: "shadow", Step: 1, Steps: 3, Baseline: "b1", Candidate: "c1"})
		n.Send(Message{Event: Rollback, Actor: "controller", Reason: "new blocks", State: "rolled_back", Step: 2, Steps: 3, Percent: 10, Baseline: "b1", Candidate: "c1"})
		synctest.Wait()
		got := ok.got()
		if len(got) != 3 {
			t.Fatalf("receiver got %d posts: %q", len(got), got)
		}
		var m Message
		i := slices.IndexFunc(got, func(b string) bool { return strings.Contains(b, `"event":"start"`) })
		if err := json.Unmarshal([]byte(strings.TrimPrefix(got[max(i, 0)], "application/json ")), &m); err != nil || m.Event != Start || m.Actor != "alice" || m.Candidate != "c1" {
			t.Errorf("JSON message among %q: %v", got, err)
		}
		if !slices.Contains(got, `application/json {"text":"wafcanary rollback by controller: candidate c1, rolled_back at 10% (step 2 of 3): new blocks"}`) {
			t.Errorf("no Slack message among %q", got)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if at := failing.at; len(at) != 3 || at[1].Sub(at[0]) != time.Second || at[2].Sub(at[1]) != 2*time.Second || at[0] != t0 {
			t.Errorf("failing receiver tried at %v, want at once then 1 s and 2 s later", at)
		}
		if v := value(n, Rollback, "failed"); v != 1 {
			t.Errorf("failed deliveries counted %v, want 1", v)
		}
		if v := value(n, Rollback, "sent"); v != 2 {
			t.Errorf("sent rollbacks %v, want 2", v)
		}
		if l := logs.String(); strings.Contains(l, "s3cret-path") || !strings.Contains(l, "notification failed") {
			t.Errorf("log: %s", l)
		}
	})
}

// One webhook that never answers delays no other (issue 26, finding 10:
// one worker for all made the pager wait 27 s per event): the other
// receives every event in order at once, while the first request to the
// stuck one is still unanswered; Send never waits; past the stuck one's
// own queue its deliveries are dropped and counted, and no other's.
func TestStuckWebhookDelaysNoOther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net pipeNet
		stuck, pager := &receiver{hold: make(chan struct{})}, &receiver{}
		stuckSrv, pagerSrv := net.server(t, stuck.ServeHTTP), net.server(t, pager.ServeHTTP)
		defer close(stuck.hold)
		n := New(Config{Timeout: time.Minute, Retries: 3, QueueSize: 2, Webhooks: []Webhook{
			{URL: stuckSrv.URL, Format: JSON}, // first: a single worker would serve it first
			{URL: pagerSrv.URL, Format: JSON},
		}}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		net.use(t, n)
		start(t, n)
		t0 := time.Now()

		want := []Event{Start, Step, Approval, Promotion, Rollback}
		for _, e := range want {
			n.Send(Message{Event: e})
			synctest.Wait() // each worker takes what it can before the next
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("Send took %s of the bubble's clock", d)
		}
		if got := pager.events(t); !slices.Equal(got, want) {
			t.Errorf("the pager got %v while the stuck webhook held its first request, want %v", got, want)
		}
		if got := stuck.events(t); !slices.Equal(got, want[:1]) {
			t.Errorf("the stuck webhook got %v, want only its first, unanswered", got)
		}
		// The stuck one holds start and queues step and approval (its
		// queue is 2): promotion and rollback are dropped for it alone.
		for _, e := range want {
			wantDropped := 0.0
			if e == Promotion || e == Rollback {
				wantDropped = 1
			}
			if v := value(n, e, "dropped"); v != wantDropped {
				t.Errorf("%s: dropped %v, want %v", e, v, wantDropped)
			}
			if v := value(n, e, "sent"); v != 1 {
				t.Errorf("%s: sent %v, want 1 (the pager's)", e, v)
			}
		}
	})
}

// At shutdown what is queued is delivered within the drain; what the
// drain's end still finds queued or in flight is dropped, counted, and
// logged once with the count (issue 26, finding 17).
func TestShutdownDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net pipeNet
		stuck, pager := &receiver{hold: make(chan struct{})}, &receiver{}
		stuckSrv, pagerSrv := net.server(t, stuck.ServeHTTP), net.server(t, pager.ServeHTTP)
		defer close(stuck.hold)
		logs := &logBuffer{}
		n := New(Config{Timeout: time.Minute, Retries: 3, QueueSize: 8, Webhooks: []Webhook{
			{URL: stuckSrv.URL, Format: JSON},
			{URL: pagerSrv.URL, Format: JSON},
		}}, prometheus.NewRegistry(), slog.New(slog.NewJSONHandler(logs, nil)))
		net.use(t, n)
		want := []Event{Step, Promotion, Rollback}
		for _, e := range want { // queued: Run has not started
			n.Send(Message{Event: e})
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the shutdown comes before the worker starts
		t0 := time.Now()
		n.Run(ctx)
		if d := time.Since(t0); d != DefaultDrain {
			t.Errorf("Run returned after %s, want the drain, %s, spent on the stuck webhook", d, DefaultDrain)
		}
		if got := pager.events(t); !slices.Equal(got, want) {
			t.Errorf("the pager got %v, want %v delivered in the drain", got, want)
		}
		for _, e := range want {
			if v := value(n, e, "dropped"); v != 1 {
				t.Errorf("%s: dropped %v, want 1 (the stuck webhook's)", e, v)
			}
		}
		if l := logs.String(); strings.Count(l, "dropped at shutdown") != 1 || !strings.Contains(l, `"count":3`) {
			t.Errorf("want one log line with count 3:\n%s", l)
		}
		n.Send(Message{Event: Undo}) // after Run: counted, not lost
		if v := value(n, Undo, "dropped"); v != 2 {
			t.Errorf("a Send after Run: dropped %v, want 2", v)
		}
	})
}

// Text from data reaches Slack as text: a reason's <!channel> pages no
// one, and a disguised link is no link (issue 26, finding 16).
func TestSlackEscapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net pipeNet
		slack := &receiver{}
		srv := net.server(t, slack.ServeHTTP)
		n := New(Config{Timeout: time.Second, QueueSize: 8, Webhooks: []Webhook{{URL: srv.URL, Format: Slack}}},
			prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		net.use(t, n)
		start(t, n)
		n.Send(Message{Event: Rollback, Actor: "<@U024BE7LH>", State: "rolled_back", Step: 2, Steps: 3, Percent: 10, Candidate: "c1",
			Reason: "<!channel> rule 942100: see <https://evil.example/x|the runbook> & a>b"})
		synctest.Wait()
		got := slack.got()
		var body map[string]string
		if len(got) != 1 || json.Unmarshal([]byte(strings.TrimPrefix(got[0], "application/json ")), &body) != nil || len(body) != 1 {
			t.Fatalf("posted %q, want one {\"text\": ...} message", got)
		}
		want := "wafcanary rollback by &lt;@U024BE7LH&gt;: candidate c1, rolled_back at 10% (step 2 of 3): &lt;!channel&gt; rule 942100: see &lt;https://evil.example/x|the runbook&gt; &amp; a&gt;b"
		if body["text"] != want {
			t.Errorf("text %q\nwant %q", body["text"], want)
		}
	})
}
