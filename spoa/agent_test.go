package spoa

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/spop"
	"github.com/wafcanary/wafcanary/verdict"
)

const secret = "spoa-test-secret-0123456789"

// records keeps what the engine tells its observers.
type records struct {
	mu      sync.Mutex
	reqs    []verdict.RequestRecord
	shadows chan verdict.ShadowRecord
}

func newRecords() *records { return &records{shadows: make(chan verdict.ShadowRecord, 1000)} }

func (r *records) ObserveRequest(rec verdict.RequestRecord) {
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
}
func (r *records) ObserveShadow(s verdict.ShadowRecord) { r.shadows <- s }
func (r *records) ShadowDropped()                       {}

func (r *records) byID(t *testing.T, id string) verdict.RequestRecord {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.reqs {
		if rec.ID == id {
			return rec
		}
	}
	t.Fatalf("no record for %s", id)
	return verdict.RequestRecord{}
}

// shadowFor waits (bounded) for the shadow pair of request id; pairs of
// other requests, which arrive in any order, are passed over.
func (r *records) shadowFor(t *testing.T, id string) verdict.ShadowRecord {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-r.shadows:
			if s.ID == id {
				return s
			}
		case <-timeout:
			t.Fatalf("no shadow pair for %s", id)
			return verdict.ShadowRecord{}
		}
	}
}

func load(t testing.TB, name string) *ruleset.Ruleset {
	t.Helper()
	rs, err := ruleset.Load(filepath.Join("..", "configs", "rulesets", name))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// fixture is an agent on an engine serving the shipped baseline and the
// exclusion candidate, the HTTP proxy on a second engine with the same
// secret and rulesets (so the same client must land on the same arm),
// and the agent's metrics.
type fixture struct {
	agent *Agent
	e     *router.Engine
	rec   *records
	reg   *prometheus.Registry
	proxy *httptest.Server
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{rec: newRecords(), reg: prometheus.NewRegistry()}
	snap := func() *router.Snapshot {
		return &router.Snapshot{Baseline: load(t, "baseline.conf"), Candidate: load(t, "candidate-exclusion.conf"),
			Share: router.MaxShare / 2, ShadowSample: router.MaxShare}
	}
	routing := router.DefaultRoutingConfig
	routing.StickyKey = "cookie:uid"
	log := slog.New(slog.DiscardHandler)
	var err error
	f.e, err = router.NewEngine(snap(), router.EngineOptions{Routing: routing, Shadow: router.DefaultShadowConfig, FailMode: router.FailClosed,
		Secret: []byte(secret), Logger: log,
		Observe: router.Observers{Requests: []router.RequestObserver{f.rec}, Shadows: []router.ShadowObserver{f.rec}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if f.agent, err = New(f.e, cfg, f.reg, log); err != nil {
		t.Fatal(err)
	}

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	t.Cleanup(app.Close)
	u, _ := url.Parse(app.URL)
	rt, err := router.New(snap(), router.Options{Upstream: u, Routing: routing, Shadow: router.DefaultShadowConfig, Proxy: router.DefaultProxyConfig,
		Secret: []byte(secret), Logger: log, Observe: router.Observers{Requests: []router.RequestObserver{f.rec}}})
	if err != nil {
		t.Fatal(err)
	}
	f.proxy = httptest.NewServer(rt)
	t.Cleanup(f.proxy.Close)
	return f
}

// msg is a coraza-req message as coraza-spoa's shipped SPOE file has
// HAProxy build it, headers as req.hdrs (text).
func msg(method, path, query string, header http.Header, body string, extra ...spop.KV) spop.Message {
	var hdrs strings.Builder
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&hdrs, "%s: %s\r\n", strings.ToLower(k), v)
		}
	}
	hdrs.WriteString("\r\n")
	q := spop.Null()
	if query != "" {
		q = spop.String(query)
	}
	args := []spop.KV{
		{Name: "app", Value: spop.String("sample_app")},
		{Name: "src-ip", Value: spop.IP(netip.MustParseAddr("192.0.2.10"))},
		{Name: "src-port", Value: spop.Int64(51234)},
		{Name: "dst-ip", Value: spop.IP(netip.MustParseAddr("127.0.0.1"))},
		{Name: "dst-port", Value: spop.Int64(80)},
		{Name: "method", Value: spop.String(method)},
		{Name: "path", Value: spop.String(path)},
		{Name: "query", Value: q},
		{Name: "version", Value: spop.String("1.1")},
		{Name: "headers", Value: spop.String(hdrs.String())},
		{Name: "body", Value: spop.Binary([]byte(body))},
	}
	return spop.Message{Name: RequestMessage, Args: append(args, extra...)}
}

func browser(host, uid string) http.Header {
	h := http.Header{}
	h.Set("Host", host)
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	h.Set("Accept", "text/html,application/xhtml+xml")
	if uid != "" {
		h.Set("Cookie", "uid="+uid)
	}
	return h
}

// vars turns an ACK's actions into the variables HAProxy would set.
func vars(t *testing.T, acts []spop.Action) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range acts {
		if a.Type != spop.ActionSetVar || a.Scope != spop.ScopeTxn {
			t.Fatalf("action %+v: want txn-scoped set-var", a)
		}
		if a.Value.Type() == spop.TypeString {
			out[a.Name] = a.Value.Text()
		} else {
			out[a.Name] = fmt.Sprint(a.Value.Int())
		}
	}
	return out
}

func (f *fixture) serve(t *testing.T, m spop.Message) map[string]string {
	t.Helper()
	acts, err := f.agent.ServeSPOP(context.Background(), &spop.Notify{Messages: []spop.Message{m}})
	if err != nil {
		t.Fatalf("ServeSPOP: %v", err)
	}
	return vars(t, acts)
}

// An attack gets coraza-spoa's deny variables, a benign request none; both
// say which arm and ruleset judged them, under the ID HAProxy gave.
func TestAgentAnswersAsCorazaSPOA(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	benign := f.serve(t, msg("GET", "/search", "q=wireless+headphones", browser("shop.example", "alice"), "", spop.KV{Name: "id", Value: spop.String("haproxy-1")}))
	if benign["action"] != "" || benign["id"] != "haproxy-1" || benign["arm"] == "" || benign["version"] == "" || benign["anomaly_score"] != "0" {
		t.Errorf("benign: %v", benign)
	}
	attack := f.serve(t, msg("GET", "/search", "q=1%27%20OR%20%271%27%3D%271%27--", browser("shop.example", "alice"), "", spop.KV{Name: "id", Value: spop.String("haproxy-2")}))
	if attack["action"] != "deny" || attack["status"] != "403" || attack["ruleid"] != "949110" || attack["rules_hit"] == "0" || attack["anomaly_score"] == "0" {
		t.Errorf("attack: %v", attack)
	}
	if rec := f.rec.byID(t, "haproxy-2"); rec.Action != verdict.Blocked || rec.Status != 403 || rec.Arm.String() != attack["arm"] {
		t.Errorf("attack's record: %+v", rec)
	}
	// The same ID again is not the same request: explain must not mix them.
	again := f.serve(t, msg("GET", "/", "", browser("shop.example", "alice"), "", spop.KV{Name: "id", Value: spop.String("haproxy-2")}))
	if again["id"] == "haproxy-2" || !strings.HasPrefix(again["id"], "haproxy-2-") {
		t.Errorf("a repeated unique-id was given again: %q", again["id"])
	}
	if got := testutil.ToFloat64(f.agent.m.messages.WithLabelValues(RequestMessage, resultJudged)); got != 3 {
		t.Errorf("judged messages %v, want 3", got)
	}
}

// A client keyed by its uid cookie is on the same arm through the agent
// (told the cookie in the headers, or as the client argument) as through
// the HTTP proxy, and each request through the agent gives a shadow pair.
func TestSameClientSameArmBehindEitherFrontEnd(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	arms := map[string]int{}
	for i := range 24 {
		uid := fmt.Sprintf("customer-%d", i)
		req, _ := http.NewRequest("GET", f.proxy.URL+"/search?q=shoes", nil)
		req.Header = browser("", uid)
		req.Header.Del("Host")
		req.Header.Set("X-Request-ID", "http-"+uid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		viaHTTP := f.rec.byID(t, "http-"+uid).Arm.String()

		inHeaders := f.serve(t, msg("GET", "/search", "q=shoes", browser("shop.example", uid), ""))
		asArgument := f.serve(t, msg("GET", "/search", "q=shoes", browser("shop.example", ""), "",
			spop.KV{Name: "client", Value: spop.String(uid)}))
		if inHeaders["arm"] != viaHTTP || asArgument["arm"] != viaHTTP {
			t.Errorf("%s: arm %s through HTTP, %s through the agent (cookie), %s (client argument)", uid, viaHTTP, inHeaders["arm"], asArgument["arm"])
		}
		arms[viaHTTP]++
		for range 2 {
			select {
			case s := <-f.rec.shadows:
				if s.Path != "/search" || s.Host != "shop.example" {
					t.Errorf("shadow pair %+v", s)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no shadow pair for a request through the agent")
			}
		}
	}
	if arms["baseline"] == 0 || arms["candidate"] == 0 {
		t.Errorf("arms %v: both must be exercised", arms)
	}
}

// The false positive the exclusion candidate fixes is judged the same
// whether HAProxy sends the headers as text (req.hdrs) or exactly
// (req.hdrs_bin).
func TestHeaderFormsJudgedAlike(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	const body = "email=jane.doe%40example.com&subject=Dashboard&message=I+added+the+server+IP+to+%2Fetc%2Fhosts+as+your+guide+says"
	h := browser("shop.example", "bob")
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	text := msg("POST", "/support/tickets", "", h, body)
	var bin []byte
	for k, vs := range h {
		for _, v := range vs {
			bin = spop.AppendVarint(bin, uint64(len(k)))
			bin = append(bin, strings.ToLower(k)...)
			bin = spop.AppendVarint(bin, uint64(len(v)))
			bin = append(bin, v...)
		}
	}
	bin = append(bin, 0, 0)
	binary := msg("POST", "/support/tickets", "", h, body)
	for i := range binary.Args {
		if binary.Args[i].Name == "headers" {
			binary.Args[i].Value = spop.Binary(bin)
		}
	}
	a, b := f.serve(t, text), f.serve(t, binary)
	delete(a, "id")
	delete(b, "id")
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("req.hdrs %v\nreq.hdrs_bin %v", a, b)
	}
	if a["arm"] == "baseline" && a["action"] != "deny" || a["arm"] == "candidate" && a["action"] != "" {
		t.Errorf("the ticket on the %s arm: %v", a["arm"], a)
	}
}

// A body cut at HAProxy's buffer is refused (413) by default, before any
// ruleset, and counted; with judge, what arrived is judged.
func TestTruncatedBody(t *testing.T) {
	h := browser("shop.example", "carol")
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("Content-Length", "40000")
	cut := msg("POST", "/upload", "", h, "message="+strings.Repeat("a", 16000))

	f := newFixture(t, DefaultConfig)
	got := f.serve(t, cut)
	if got["action"] != "deny" || got["status"] != "413" {
		t.Errorf("cut body, block: %v", got)
	}
	if rec := f.rec.byID(t, got["id"]); rec.Refused != verdict.RefusedBodyTruncated || !rec.Outside {
		t.Errorf("cut body's record %+v", rec)
	}
	if n := testutil.ToFloat64(f.agent.m.truncated.WithLabelValues("block")); n != 1 {
		t.Errorf("truncated{block} %v", n)
	}
	// body-size, when sent, is what counts: a whole body is not cut.
	whole := msg("POST", "/upload", "", h, "a=b", spop.KV{Name: "body-size", Value: spop.Int64(3)})
	if got := f.serve(t, whole); got["action"] != "" {
		t.Errorf("a whole body, told by body-size: %v", got)
	}

	cfg := DefaultConfig
	cfg.OnTruncatedBody = JudgeTruncated
	f = newFixture(t, cfg)
	if got := f.serve(t, cut); got["action"] != "" || got["arm"] == "" {
		t.Errorf("cut body, judge: %v", got)
	}
	if n := testutil.ToFloat64(f.agent.m.truncated.WithLabelValues("judge")); n != 1 {
		t.Errorf("truncated{judge} %v", n)
	}
}

// A message the agent cannot read is an error (the server then ACKs with
// the error variable); a coraza-res is acknowledged with nothing.
func TestMessagesItCannotJudge(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	m := msg("GET", "/", "", browser("shop.example", ""), "")
	m.Args = m.Args[2:] // no src-ip
	if _, err := f.agent.ServeSPOP(context.Background(), &spop.Notify{Messages: []spop.Message{m}}); err == nil || !strings.Contains(err.Error(), "src-ip") {
		t.Errorf("without src-ip: %v", err)
	}
	if got := vars(t, f.agent.errorActions(nil, nil)); got["error"] != fmt.Sprint(ErrorCode) {
		t.Errorf("error actions %v", got)
	}
	acts, err := f.agent.ServeSPOP(context.Background(), &spop.Notify{Messages: []spop.Message{{Name: ResponseMessage}}})
	if err != nil || len(acts) != 0 {
		t.Errorf("coraza-res: %v %v", acts, err)
	}
	if n := testutil.ToFloat64(f.agent.m.messages.WithLabelValues(ResponseMessage, resultIgnored)); n != 1 {
		t.Errorf("ignored coraza-res %v", n)
	}
}

// A peer that is not HAProxy gets a DISCONNECT, and the agent counts it
// by status: nothing fails silently on the agent's side.
func TestRefusedConnectionsCounted(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	srv := f.agent.Server()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // a length of 1 GB: too big
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
	if n := testutil.ToFloat64(f.agent.m.disconnects.WithLabelValues("3", "agent")); n != 1 {
		t.Errorf("disconnects{status=3,by=agent} %v, want 1", n)
	}
}
