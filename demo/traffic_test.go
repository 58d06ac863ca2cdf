package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const traversalURI = "/static/../../etc/passwd"

// recorder wraps a handler, recording what arrives and how many requests
// are in flight at once.
type recorder struct {
	next http.Handler
	hold time.Duration // if > 0, each request is held this long (or until cancelled)

	inFlight, maxInFlight, count atomic.Int64

	mu      sync.Mutex
	uris    []string
	xffByID map[string]string
	badID   []string // client-ID/XFF problems
}

var clientIDPattern = regexp.MustCompile(`^client-\d{4}$`)

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rec.inFlight.Add(1)
	defer rec.inFlight.Add(-1)
	for {
		m := rec.maxInFlight.Load()
		if n <= m || rec.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	rec.count.Add(1)
	id, xff := r.Header.Get("X-Client-ID"), r.Header.Get("X-Forwarded-For")
	rec.mu.Lock()
	rec.uris = append(rec.uris, r.RequestURI)
	if rec.xffByID == nil {
		rec.xffByID = map[string]string{}
	}
	if !clientIDPattern.MatchString(id) || !isDocIP(xff) {
		rec.badID = append(rec.badID, id+" "+xff)
	} else if prev, ok := rec.xffByID[id]; ok && prev != xff {
		rec.badID = append(rec.badID, id+" changed IP "+prev+" -> "+xff)
	} else {
		rec.xffByID[id] = xff
	}
	rec.mu.Unlock()
	if rec.hold > 0 {
		// Read the body first: the server notices a client hang-up (and
		// cancels r.Context) only once the body has been consumed.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		ctx, cancel := context.WithTimeout(r.Context(), rec.hold)
		<-ctx.Done()
		cancel()
	}
	rec.next.ServeHTTP(w, r)
}

func isDocIP(s string) bool {
	for _, n := range docNets {
		if strings.HasPrefix(s, n+".") {
			return true
		}
	}
	return false
}

// collector gathers Results from OnResult.
type collector struct {
	mu      sync.Mutex
	results []Result
}

func (c *collector) add(r Result) {
	c.mu.Lock()
	c.results = append(c.results, r)
	c.mu.Unlock()
}

func (c *collector) all() []Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Result(nil), c.results...)
}

func TestDefaultRequestLists(t *testing.T) {
	lists := map[Kind][]Request{
		KindBenign:        BenignRequests(),
		KindAttack:        AttackRequests(),
		KindFalsePositive: FalsePositiveRequests(),
	}
	for kind, reqs := range lists {
		if len(reqs) == 0 {
			t.Errorf("%s: empty list", kind)
		}
		for _, r := range reqs {
			if r.Kind != kind || r.Name == "" || r.Method == "" || !strings.HasPrefix(r.Path, "/") {
				t.Errorf("%s: malformed request %+v", kind, r)
			}
			if strings.ContainsAny(r.Path, " \t#") {
				t.Errorf("%s %s: path %q not wire-encoded", kind, r.Name, r.Path)
			}
			if ct := r.Header.Get("Content-Type"); ct == "application/json" && !json.Valid([]byte(r.Body)) {
				t.Errorf("%s %s: body is not valid JSON", kind, r.Name)
			}
		}
	}
	orders := 0
	for _, r := range lists[KindBenign] {
		if r.Name == "order" {
			orders++
			if n := len(r.Body); n < 800 || n > 1300 {
				t.Errorf("order body is %d bytes, want about 1 KB", n)
			}
		}
	}
	if orders == 0 {
		t.Error("no benign order requests")
	}
	want := map[string]string{
		"sqli-tautology":  "1' OR '1'='1' --",
		"sqli-union":      "' UNION SELECT username, password FROM users--",
		"xss-comment":     "<script>alert(1)</script>",
		"shell-injection": ";cat /etc/passwd",
		"path-traversal":  traversalURI,
	}
	for _, r := range lists[KindAttack] {
		payload, ok := want[r.Name]
		if !ok {
			continue
		}
		delete(want, r.Name)
		decoded := r.Path + "\n" + r.Body
		if q, err := url.ParseQuery(r.Body); err == nil {
			decoded += "\n" + strings.Join(append(q["name"], q["comment"]...), "\n")
		}
		if u, err := url.Parse(r.Path); err == nil {
			decoded += "\n" + u.Query().Get("q")
		}
		if !strings.Contains(decoded, payload) {
			t.Errorf("attack %s does not carry %q", r.Name, payload)
		}
	}
	for name := range want {
		t.Errorf("attack %s missing", name)
	}
	// Fresh slices: mutating one result must not affect the next call.
	a := BenignRequests()
	a[0].Path = "/mutated"
	a[1].Header.Set("Accept", "mutated")
	b := BenignRequests()
	if b[0].Path == "/mutated" || b[1].Header.Get("Accept") == "mutated" {
		t.Error("BenignRequests returns shared data")
	}
}

func TestPickerDeterministicAndWeighted(t *testing.T) {
	tr := &Traffic{FalsePositives: FalsePositiveRequests(), Seed: 42}
	seq := func(tr *Traffic, n int) []string {
		p, err := tr.newPicker()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, n)
		for i := range out {
			r, c := p.next()
			out[i] = string(r.Kind) + "/" + r.Name + "/" + r.Path + "/" + c.ID
		}
		return out
	}
	a, b := seq(tr, 200), seq(tr, 200)
	if strings.Join(a, "|") != strings.Join(b, "|") {
		t.Error("same seed gave different sequences")
	}
	c := seq(&Traffic{FalsePositives: FalsePositiveRequests(), Seed: 43}, 200)
	if strings.Join(a, "|") == strings.Join(c, "|") {
		t.Error("different seeds gave the same sequence")
	}

	const n = 20000
	counts := map[Kind]int{}
	clients := map[string]bool{}
	p, _ := tr.newPicker()
	for range n {
		r, c := p.next()
		counts[r.Kind]++
		clients[c.ID] = true
	}
	for kind, want := range map[Kind]float64{KindBenign: 0.80, KindAttack: 0.05, KindFalsePositive: 0.15} {
		if got := float64(counts[kind]) / n; got < want-0.02 || got > want+0.02 {
			t.Errorf("%s share = %.3f, want about %.2f", kind, got, want)
		}
	}
	if len(clients) != DefaultClients {
		t.Errorf("saw %d distinct clients, want %d", len(clients), DefaultClients)
	}

	// Without false positives the other kinds keep their relative weights.
	counts = map[Kind]int{}
	p, _ = (&Traffic{Clients: 3}).newPicker()
	for range n {
		r, c := p.next()
		counts[r.Kind]++
		clients[c.ID] = true
	}
	if counts[KindFalsePositive] != 0 {
		t.Errorf("false positives sent without any configured")
	}
	if got := float64(counts[KindAttack]) / n; got < 0.04 || got > 0.08 {
		t.Errorf("attack share without false positives = %.3f, want about 0.06", got)
	}
	if _, err := (&Traffic{Benign: []Request{}, Attacks: []Request{}}).newPicker(); err == nil {
		t.Error("newPicker with nothing to send did not fail")
	}

	// Weights replace the default mix; a zero weight sends none of a kind.
	counts = map[Kind]int{}
	p, _ = (&Traffic{FalsePositives: FalsePositiveRequests(), Weights: &Weights{Benign: 96, Attacks: 1, FalsePositives: 3}}).newPicker()
	for range n {
		r, _ := p.next()
		counts[r.Kind]++
	}
	if got := float64(counts[KindAttack]) / n; got < 0.007 || got > 0.013 {
		t.Errorf("attack share with weights 96/1/3 = %.4f, want about 0.01", got)
	}
	p, _ = (&Traffic{FalsePositives: FalsePositiveRequests(), Weights: &Weights{Benign: 1}}).newPicker()
	for range 1000 {
		if r, _ := p.next(); r.Kind != KindBenign {
			t.Fatalf("sent %s with weight 0", r.Kind)
		}
	}
}

func TestSimClientsStable(t *testing.T) {
	seen := map[string]bool{}
	for i := range 762 {
		c := newSimClient(i)
		if c != newSimClient(i) {
			t.Fatalf("client %d not stable", i)
		}
		if !clientIDPattern.MatchString(c.ID) || !isDocIP(c.IP) {
			t.Fatalf("client %d: %+v", i, c)
		}
		if seen[c.IP] {
			t.Fatalf("client %d reuses IP %s", i, c.IP)
		}
		seen[c.IP] = true
	}
	if got := newSimClient(0).ID; got != "client-0001" {
		t.Errorf("first client ID = %q", got)
	}
}

func TestSendKeepsDotSegmentsAndHeaders(t *testing.T) {
	type seen struct{ uri, id, xff, ua, custom string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.RequestURI, r.Header.Get("X-Client-ID"), r.Header.Get("X-Forwarded-For"),
			r.Header.Get("User-Agent"), r.Header.Get("X-Custom")}
	}))
	defer srv.Close()
	base, err := parseTarget(srv.URL + "/prefix/")
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Kind: KindAttack, Name: "path-traversal", Path: traversalURI + "?a=%2e%2e",
		Header: http.Header{"X-Custom": {"1"}, "X-Client-Id": {"spoofed"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := newSimClient(6)
	res := send(ctx, srv.Client(), base, req, c)
	if res.Err != nil || res.Status != 200 {
		t.Fatalf("send: status %d err %v", res.Status, res.Err)
	}
	s := <-got
	if want := "/prefix" + traversalURI + "?a=%2e%2e"; s.uri != want {
		t.Errorf("server saw RequestURI %q, want %q", s.uri, want)
	}
	if s.id != c.ID || s.xff != c.IP || s.ua != c.UserAgent || s.custom != "1" {
		t.Errorf("headers = %+v, want client %+v and X-Custom 1", s, c)
	}
	if res.Kind != KindAttack || res.Name != "path-traversal" || res.Method != "GET" || res.ClientID != c.ID {
		t.Errorf("result = %+v", res)
	}

	// Transport errors name the real target and keep their cause.
	down := httptest.NewServer(http.NotFoundHandler())
	downBase, _ := parseTarget(down.URL)
	down.Close()
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	res = send(cctx, srv.Client(), downBase, req, c)
	if res.Err == nil || !errors.Is(res.Err, context.Canceled) || !strings.Contains(res.Err.Error(), downBase.Host+traversalURI) {
		t.Errorf("error for cancelled request = %v", res.Err)
	}

	bad := send(ctx, srv.Client(), base, Request{Name: "relative", Path: "etc/passwd"}, c)
	if bad.Err == nil {
		t.Error("relative path accepted")
	}
}

func TestTrafficRunBadTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:8080", "ftp://127.0.0.1/", "http://", "::"} {
		tr := &Traffic{Target: target}
		if err := tr.Run(context.Background()); err == nil {
			t.Errorf("Run with target %q returned nil", target)
		}
	}
}

func TestRateInterval(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want time.Duration
	}{
		{0, 50 * time.Millisecond},
		{-3, 50 * time.Millisecond},
		{200, 5 * time.Millisecond},
		{0.5, 2 * time.Second},
		{1e9, time.Millisecond},
	} {
		if got := rateInterval(tc.rate); got != tc.want {
			t.Errorf("rateInterval(%v) = %v, want %v", tc.rate, got, tc.want)
		}
	}
}

// seedWithEverythingEarly finds a seed whose first n picks include every
// kind and the path traversal attack, so that a short run is guaranteed to
// send them.
func seedWithEverythingEarly(t *testing.T, tr Traffic, n int) uint64 {
	t.Helper()
	for seed := uint64(1); seed < 10000; seed++ {
		tr.Seed = seed
		p, err := tr.newPicker()
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[Kind]bool{}
		traversal := false
		for range n {
			r, _ := p.next()
			kinds[r.Kind] = true
			traversal = traversal || r.Name == "path-traversal"
		}
		if len(kinds) == 3 && traversal {
			return seed
		}
	}
	t.Fatal("no suitable seed found")
	return 0
}

func TestTrafficRunMix(t *testing.T) {
	rec := &recorder{next: NewApp()}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	var col collector
	tr := Traffic{
		Target:         srv.URL,
		Rate:           200,
		FalsePositives: FalsePositiveRequests(),
		OnResult:       col.add,
	}
	const early = 20 // picks; a 300ms run at 200/s makes about 60
	tr.Seed = seedWithEverythingEarly(t, tr, early)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := tr.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	elapsed := time.Since(start)

	results := col.all()
	if len(results) < early {
		t.Fatalf("only %d results in %v; want at least %d", len(results), elapsed, early)
	}
	// Never faster than Rate: the ticker's first tick comes after one period.
	if n := rec.count.Load(); float64(n) > elapsed.Seconds()*tr.Rate+1 {
		t.Errorf("server saw %d requests in %v, more than rate %v allows", n, elapsed, tr.Rate)
	}
	kinds := map[Kind]int{}
	var traversal *Result
	for i, r := range results {
		kinds[r.Kind]++
		if r.Err != nil {
			t.Errorf("%s %s: %v", r.Method, r.Path, r.Err)
		}
		if r.Status == 0 || r.Duration <= 0 || !clientIDPattern.MatchString(r.ClientID) {
			t.Errorf("incomplete result %+v", r)
		}
		if r.Kind == KindBenign && (r.Status < 200 || r.Status > 299) {
			t.Errorf("benign %s %s got status %d", r.Method, r.Path, r.Status)
		}
		if r.Name == "path-traversal" {
			traversal = &results[i]
		}
	}
	for _, k := range []Kind{KindBenign, KindAttack, KindFalsePositive} {
		if kinds[k] == 0 {
			t.Errorf("no %s requests in %v", k, kinds)
		}
	}
	if kinds[KindBenign] <= kinds[KindAttack]+kinds[KindFalsePositive] {
		t.Errorf("mix not mostly benign: %v", kinds)
	}
	if traversal == nil {
		t.Fatal("path traversal request not sent")
	}
	if traversal.Status < 300 || traversal.Status > 399 {
		t.Errorf("path traversal got status %d, want the ServeMux clean-path redirect (not followed)", traversal.Status)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	found := false
	for _, u := range rec.uris {
		found = found || u == traversalURI
	}
	if !found {
		t.Errorf("server never saw RequestURI %q; got %q", traversalURI, rec.uris)
	}
	if len(rec.badID) > 0 {
		t.Errorf("bad client identity headers: %q", rec.badID)
	}
}

func TestTrafficRunInFlightBound(t *testing.T) {
	// Each request is held 50ms while one starts every 5ms, so about ten
	// would be outstanding without the bound.
	rec := &recorder{next: NewApp(), hold: 50 * time.Millisecond}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	var col collector
	tr := &Traffic{Target: srv.URL, Rate: 200, OnResult: col.add}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := tr.Run(ctx); err != nil {
		t.Fatal(err)
	}
	maxSeen := rec.maxInFlight.Load()
	if maxSeen > MaxInFlight {
		t.Errorf("max in flight = %d, want <= %d", maxSeen, MaxInFlight)
	}
	if maxSeen < 2 {
		t.Errorf("max in flight = %d; the test did not exercise concurrency", maxSeen)
	}
	if len(col.all()) == 0 {
		t.Error("no results")
	}
	t.Logf("max in flight %d, %d requests", maxSeen, rec.count.Load())
}

func TestTrafficRunStopsPromptly(t *testing.T) {
	// The upstream never answers (until the request is cancelled, or 5s).
	rec := &recorder{next: NewApp(), hold: 5 * time.Second}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	var col collector
	tr := &Traffic{Target: srv.URL, Rate: 100, OnResult: col.add}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	deadline, _ := ctx.Deadline()
	stop, stopCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer stopCancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-stop.Done():
		t.Fatal("Run did not return within 2s")
	}
	if late := time.Since(deadline); late > 500*time.Millisecond {
		t.Errorf("Run returned %v after ctx was done", late)
	}
	if rec.count.Load() == 0 {
		t.Error("no requests were started")
	}
	if n := len(col.all()); n != 0 {
		t.Errorf("%d results reported for cancelled requests", n)
	}
}
