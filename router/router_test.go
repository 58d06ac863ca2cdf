package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

// The false positive the exclusion candidate fixes: CRS 930120 (OS file
// access) fires on "/etc/hosts" in ordinary ticket text.
const ticketBody = "email=jane.doe%40example.com&subject=Dashboard+times+out&message=Since+the+last+update+I+can%27t+reach+the+dashboard.+I+added+the+server+IP+to+%2Fetc%2Fhosts+as+your+setup+guide+says%2C+but+it+still+times+out."

var form = map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

func TestVerdictsPerArm(t *testing.T) {
	type want struct {
		status int
		action verdict.Action
		rule   int // a rule that must be among the matches; 0 for none expected
	}
	tests := []struct {
		name                string
		method, target      string
		body                string
		header              map[string]string
		baseline, candidate want
	}{
		{name: "benign search allowed by both", method: "GET", target: "/search?q=wireless+headphones",
			baseline: want{200, verdict.Allowed, 0}, candidate: want{200, verdict.Allowed, 0}},
		{name: "SQL injection blocked by both", method: "GET", target: "/search?q=1%27%20OR%20%271%27%3D%271%27--",
			baseline: want{403, verdict.Blocked, 942100}, candidate: want{403, verdict.Blocked, 942100}},
		{name: "false positive passes only on the candidate", method: "POST", target: "/support/tickets", body: ticketBody, header: form,
			baseline: want{403, verdict.Blocked, 930120}, candidate: want{200, verdict.Allowed, 0}},
		// Why: the exclusion is scoped to one path; elsewhere the text still blocks.
		{name: "same text on another path blocked by both", method: "POST", target: "/contact", body: ticketBody, header: form,
			baseline: want{403, verdict.Blocked, 930120}, candidate: want{403, verdict.Blocked, 930120}},
		// Why: the exclusion must not open the endpoint to other attacks.
		{name: "attack on the excluded endpoint blocked by both", method: "POST", target: "/support/tickets",
			body: strings.Replace(ticketBody, "jane.doe%40example.com", "jane%40example.com%27+OR+1%3D1--+", 1), header: form,
			baseline: want{403, verdict.Blocked, 942100}, candidate: want{403, verdict.Blocked, 942100}},
	}
	base := newFixture(t, &Snapshot{Baseline: load(t, shipped("baseline.conf")), Candidate: load(t, shipped("candidate-exclusion.conf"))}, nil, nil)
	cand := newFixture(t, &Snapshot{Baseline: load(t, shipped("baseline.conf")), Candidate: load(t, shipped("candidate-exclusion.conf")), Share: MaxShare}, nil, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, arm := range []struct {
				f    *fixture
				arm  verdict.Arm
				want want
			}{{base, verdict.Baseline, tt.baseline}, {cand, verdict.Candidate, tt.candidate}} {
				id := fmt.Sprintf("verdict-%d-%s", i, arm.arm)
				resp, _ := arm.f.do(t, tt.method, tt.target, id, strings.NewReader(tt.body), tt.header)
				rec := arm.f.rec.byID(t, id)
				if resp.StatusCode != arm.want.status || rec.Action != arm.want.action || rec.Arm != arm.arm {
					t.Errorf("%s: status %d action %s arm %s, want %d %s %s (rules %v)",
						arm.arm, resp.StatusCode, rec.Action, rec.Arm, arm.want.status, arm.want.action, arm.arm, rec.Verdict.RuleIDs())
				}
				if arm.want.rule != 0 && !slices.Contains(rec.Verdict.RuleIDs(), arm.want.rule) {
					t.Errorf("%s: rules %v lack %d", arm.arm, rec.Verdict.RuleIDs(), arm.want.rule)
				}
				if arm.want.action == verdict.Blocked && (rec.Verdict.InboundScore < 5 || rec.Verdict.RuleID != 949110) {
					t.Errorf("%s: blocked with score %d by rule %d, want CRS anomaly block", arm.arm, rec.Verdict.InboundScore, rec.Verdict.RuleID)
				}
				_, reached := arm.f.up.get(id)
				if reached != (arm.want.action == verdict.Allowed) {
					t.Errorf("%s: upstream reached=%v for action %s", arm.arm, reached, arm.want.action)
				}
				if rec.WAFDuration <= 0 || rec.Duration < rec.WAFDuration {
					t.Errorf("%s: durations waf=%s total=%s", arm.arm, rec.WAFDuration, rec.Duration)
				}
			}
		})
	}
}

func smallSnapshot(t testing.TB, share Share) *Snapshot {
	return &Snapshot{Baseline: load(t, "testdata/actions.conf"), Candidate: load(t, "testdata/actions-candidate.conf"), Share: share}
}

func TestSplitStickyAndMonotonic(t *testing.T) {
	keys := 10000
	if testing.Short() {
		keys = 2000 // the race detector makes each request ~10x slower
	}
	f := newFixture(t, smallSnapshot(t, 2500), nil, func(o *Options) { o.Routing.StickyKey = "header:X-Client-ID" })
	armOf := func(key string, n int) verdict.Arm {
		id := fmt.Sprintf("split-%d", n)
		f.do(t, "GET", "/", id, nil, map[string]string{"X-Client-ID": key})
		return f.rec.byID(t, id).Arm
	}
	first := make([]verdict.Arm, keys)
	onCandidate := 0
	for k := range keys {
		first[k] = armOf(fmt.Sprintf("client-%05d", k), k)
		if first[k] == verdict.Candidate {
			onCandidate++
		}
	}
	// Binomial at 25%: allow 4.5 standard deviations (43 at 10,000 keys).
	want, tol := 0.25*float64(keys), 4.5*math.Sqrt(float64(keys)*0.25*0.75)
	if math.Abs(float64(onCandidate)-want) > tol {
		t.Errorf("%d of %d keys on the candidate at 25%%", onCandidate, keys)
	}
	// Sticky: the same key lands on the same arm every time.
	for k := 0; k < keys; k += 37 {
		if got := armOf(fmt.Sprintf("client-%05d", k), keys+k); got != first[k] {
			t.Fatalf("key %d moved from %s to %s at a constant share", k, first[k], got)
		}
	}
	// Raising the share only moves keys from baseline to candidate.
	if err := f.rt.Swap(f.rt.Snapshot().WithShare(5000)); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for k := 0; k < keys; k += 7 {
		got := armOf(fmt.Sprintf("client-%05d", k), 2*keys+k)
		if first[k] == verdict.Candidate && got != verdict.Candidate {
			t.Fatalf("key %d moved back to the baseline when the share rose", k)
		}
		if first[k] != got {
			moved++
		}
	}
	if moved == 0 {
		t.Error("no key moved to the candidate when the share doubled")
	}
}

func TestAssignerMonotonicOverSteps(t *testing.T) {
	a := NewAssigner([]byte("0123456789abcdef"))
	steps := []Share{0, 1, 100, 500, 2500, 5000, 9999, MaxShare}
	for k := range 10000 {
		key := fmt.Sprintf("ip:10.%d.%d.%d", k>>16&255, k>>8&255, k&255)
		prev := verdict.Baseline
		for _, s := range steps {
			got := a.Assign(key, s)
			if prev == verdict.Candidate && got == verdict.Baseline {
				t.Fatalf("key %s went back to baseline at share %d", key, s)
			}
			prev = got
		}
		if prev != verdict.Candidate {
			t.Fatalf("key %s not on the candidate at 100%%", key)
		}
	}
	// A different secret gives a different assignment: clients cannot
	// precompute their arm without it.
	b := NewAssigner([]byte("another-secret-!"))
	same := 0
	for k := range 1000 {
		key := fmt.Sprint(k)
		if a.Bucket(key) == b.Bucket(key) {
			same++
		}
	}
	if same > 5 {
		t.Errorf("%d of 1000 buckets equal under different secrets", same)
	}
}

func TestClientCannotPickItsArm(t *testing.T) {
	// At 50%, keyed on the client address: whatever else the client sends
	// (headers naming an arm, a client ID, a forged X-Forwarded-For from an
	// untrusted peer), every request from 127.0.0.1 lands on one arm.
	f := newFixture(t, smallSnapshot(t, 5000), nil, nil)
	var first verdict.Arm
	for i := range 50 {
		id := fmt.Sprintf("pick-%d", i)
		f.do(t, "GET", "/", id, nil, map[string]string{
			"X-Wafcanary-verdict.Arm": []string{"baseline", "candidate"}[i%2],
			"X-Client-ID":             fmt.Sprint(i),
			"Cookie":                  "wafcanary_arm=candidate; uid=" + fmt.Sprint(i),
			"X-Forwarded-For":         fmt.Sprintf("203.0.113.%d", i),
		})
		arm := f.rec.byID(t, id).Arm
		if i == 0 {
			first = arm
		} else if arm != first {
			t.Fatalf("request %d moved from %s to %s by changing what it sent", i, first, arm)
		}
	}
}

func TestShadowPairs(t *testing.T) {
	secret := "SECRETCOOKIEVALUE"
	cases := []struct {
		name                string
		method, target      string
		body                string
		baseline, candidate bool // blocked?
		baselineRule        int
		// derived: the exclusion candidate cannot disagree on it (nothing
		// it touches matched), so the pair is recorded unevaluated.
		derived bool
	}{
		{"benign", "GET", "/search?q=wireless+headphones", "", false, false, 0, true},
		{"sqli", "GET", "/search?q=1%27%20OR%20%271%27%3D%271%27--", "", true, true, 942100, true},
		{"fixed false positive", "POST", "/support/tickets", ticketBody, true, false, 930120, false},
	}
	for _, run := range []struct {
		enforcing verdict.Arm
		full      bool
	}{{verdict.Baseline, false}, {verdict.Candidate, false}, {verdict.Baseline, true}, {verdict.Candidate, true}} {
		enforcing := run.enforcing
		name := "enforcing " + enforcing.String()
		if run.full {
			name += ", full evaluation"
		}
		t.Run(name, func(t *testing.T) {
			share := Share(0)
			if enforcing == verdict.Candidate {
				share = MaxShare
			}
			f := newFixture(t, &Snapshot{Baseline: load(t, shipped("baseline.conf")), Candidate: load(t, shipped("candidate-exclusion.conf")),
				Share: share, ShadowSample: MaxShare}, nil, func(o *Options) { o.Shadow.FullEvaluation = run.full })
			for i, c := range cases {
				id := fmt.Sprintf("shadow-%s-%d", enforcing, i)
				hdr := map[string]string{"Cookie": "session=" + secret, "Authorization": "Bearer " + secret}
				if c.body != "" {
					hdr["Content-Type"] = form["Content-Type"]
				}
				f.do(t, c.method, c.target, id, strings.NewReader(c.body), hdr)
				s := f.rec.nextShadow(t)
				if s.ID != id || s.Enforcing != enforcing {
					t.Fatalf("%s: pair for %s enforced by %s", c.name, s.ID, s.Enforcing)
				}
				if s.Baseline.Blocked != c.baseline || s.Candidate.Blocked != c.candidate {
					t.Errorf("%s: pair (baseline %v, candidate %v), want (%v, %v)", c.name, s.Baseline.Blocked, s.Candidate.Blocked, c.baseline, c.candidate)
				}
				if want := c.derived && !run.full; s.Derived != want {
					t.Errorf("%s: derived %v, want %v", c.name, s.Derived, want)
				}
				if c.baselineRule != 0 && !slices.Contains(s.Baseline.RuleIDs(), c.baselineRule) {
					t.Errorf("%s: baseline rules %v lack %d", c.name, s.Baseline.RuleIDs(), c.baselineRule)
				}
				if s.BaselineVersion == s.CandidateVersion || s.BaselineVersion == "" {
					t.Errorf("versions %q %q", s.BaselineVersion, s.CandidateVersion)
				}
			}
			logs := f.logs.String()
			if strings.Contains(logs, secret) {
				t.Error("logs carry a cookie or authorization value")
			}
			// The disagreement is logged once, with both sides' rule IDs.
			idFP := fmt.Sprintf("shadow-%s-2", enforcing)
			var dis []string
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, `"shadow disagreement"`) {
					dis = append(dis, l)
				}
			}
			if len(dis) != 1 || !strings.Contains(dis[0], idFP) || !strings.Contains(dis[0], `"lost_block"`) || !strings.Contains(dis[0], "930120") {
				t.Errorf("disagreement lines: %q", dis)
			}
			// One "request blocked" line per arm that blocked the SQL injection.
			idSQL := fmt.Sprintf("shadow-%s-1", enforcing)
			if n := countLines(logs, `"request blocked"`, idSQL); n != 2 {
				t.Errorf("%d block lines for %s, want one per arm", n, idSQL)
			}
		})
	}
}

func countLines(logs string, subs ...string) int {
	n := 0
	for _, l := range strings.Split(logs, "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			n++
		}
	}
	return n
}

func TestShadowQueueFullDropsAndCounts(t *testing.T) {
	rec := newRecorder()
	up := newUpstream(t, nil)
	u, _ := url.Parse(up.URL)
	snap := smallSnapshot(t, 0)
	snap.ShadowSample = MaxShare
	rt, err := New(snap, Options{Upstream: u, Routing: DefaultRoutingConfig, Proxy: DefaultProxyConfig,
		Shadow: ShadowConfig{SamplePercent: 100, QueueSize: 2, Workers: 1, MaxBodyBytes: 16, QueueBytes: 1 << 20},
		Secret: []byte("0123456789abcdef"), Observe: rec.observers(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{rt: rt, rec: rec, up: up}
	f.proxy = newServer(t, rt)
	// No worker runs: two samples fill the queue, the rest are dropped;
	// the body over MaxBodyBytes is never captured.
	for i := range 5 {
		f.do(t, "GET", "/", fmt.Sprint("q", i), nil, nil)
	}
	f.do(t, "POST", "/", "big", strings.NewReader(strings.Repeat("x", 17)), nil)
	rec.byID(t, "big")
	if rec.dropped != 4 {
		t.Errorf("dropped %d, want 4", rec.dropped)
	}
	// The client was never slowed: every response arrived while the queue stayed full.
	if n := len(rec.requests()); n != 6 {
		t.Errorf("%d requests served", n)
	}
}

// The fault this guards against: the queue's only bound was queue_size x
// max_body_bytes, 1 GiB by default. Samples now count their bytes too,
// and give them back once judged.
func TestShadowQueueBoundedByBytes(t *testing.T) {
	rec := newRecorder()
	up := newUpstream(t, nil)
	u, _ := url.Parse(up.URL)
	snap := smallSnapshot(t, 0)
	snap.ShadowSample = MaxShare
	rt, err := New(snap, Options{Upstream: u, Routing: DefaultRoutingConfig, Proxy: DefaultProxyConfig,
		Shadow: ShadowConfig{SamplePercent: 100, QueueSize: 100, Workers: 1, MaxBodyBytes: 1 << 20, QueueBytes: 1 << 20},
		Secret: []byte("0123456789abcdef"), Observe: rec.observers(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{rt: rt, rec: rec, up: up}
	f.proxy = newServer(t, rt)
	post := func(id string) {
		f.do(t, "POST", "/", id, strings.NewReader("a="+strings.Repeat("x", 400<<10)), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		rec.byID(t, id)
	}
	// No worker yet: two 400 KiB samples fit in 1 MiB, the third does not,
	// though the queue has 98 free slots.
	for _, id := range []string{"p1", "p2", "p3"} {
		post(id)
	}
	if rec.dropped != 1 || len(rt.engine.shadow) != 2 {
		t.Fatalf("dropped %d, queued %d samples; want 1 and 2", rec.dropped, len(rt.engine.shadow))
	}
	if q := rt.engine.queued.Load(); q < 800<<10 || q > 1<<20 {
		t.Errorf("queued bytes %d, want the two samples' size", q)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	rec.nextShadow(t)
	rec.nextShadow(t)
	// Judged samples give their bytes back: the next one is accepted.
	for deadline := time.Now().Add(5 * time.Second); rt.engine.queued.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if q := rt.engine.queued.Load(); q != 0 {
		t.Fatalf("queued bytes %d after both were judged", q)
	}
	post("p4")
	if s := rec.nextShadow(t); s.ID != "p4" || rec.dropped != 1 {
		t.Errorf("after the queue drained: shadow %s, dropped %d", s.ID, rec.dropped)
	}
}

func TestActions(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "upstream=1")
		switch r.URL.Path {
		case "/leak-header":
			w.Header().Set("X-Leak", "yes")
		case "/leak-body":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<p>data: SECRET-LEAK</p>")
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	tests := []struct {
		name, method, target, body string
		inspectResponse            bool
		status                     int // 0: connection dropped
		action                     verdict.Action
		rule                       int
		location                   string
	}{
		{"deny with status", "GET", "/?q=an+attack", "", true, 403, verdict.Blocked, 103, ""},
		{"deny on body with its own status", "POST", "/", "x=evil-body", true, 406, verdict.Blocked, 104, ""},
		{"redirect", "GET", "/redirect", "", true, 302, verdict.Blocked, 102, "https://example.com/blocked"},
		{"drop closes the connection", "GET", "/drop", "", true, 0, verdict.Blocked, 101, ""},
		{"response header phase", "GET", "/leak-header", "", true, 502, verdict.Blocked, 105, ""},
		{"response body phase", "GET", "/leak-body", "", true, 403, verdict.Blocked, 106, ""},
		// Why: with inspection off the body streams untouched even if a rule would match it.
		{"response body not inspected when disabled", "GET", "/leak-body", "", false, 200, verdict.Allowed, 0, ""},
		{"allowed", "GET", "/fine", "", true, 200, verdict.Allowed, 0, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, up, func(o *Options) { o.Proxy.InspectResponseBody = tt.inspectResponse })
			id := fmt.Sprint("act-", i)
			req, _ := http.NewRequest(tt.method, f.proxy.URL+tt.target, strings.NewReader(tt.body))
			req.Header.Set("X-Request-ID", id)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if tt.status == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got status %d, want the connection dropped", resp.StatusCode)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
				}
				if tt.action == verdict.Blocked && (strings.Contains(string(body), "SECRET") || resp.Header.Get("Set-Cookie") != "") {
					t.Errorf("blocked response leaks upstream content: %q %v", body, resp.Header)
				}
				if tt.action == verdict.Blocked && tt.location == "" && !strings.Contains(string(body), id) {
					t.Errorf("block page %q lacks the request ID", body)
				}
				if got := resp.Header.Get("Location"); got != tt.location {
					t.Errorf("Location %q, want %q", got, tt.location)
				}
				if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != id {
					t.Errorf("X-Request-ID %v, want exactly [%s]", got, id)
				}
			}
			rec := f.rec.byID(t, id)
			if rec.Action != tt.action || (tt.rule != 0 && rec.Verdict.RuleID != tt.rule) {
				t.Errorf("action %s rule %d, want %s %d", rec.Action, rec.Verdict.RuleID, tt.action, tt.rule)
			}
			// Why: shadow pairs compare request phases only; the split
			// arms must know which blocks those pairs cannot see.
			if inResponse := strings.HasPrefix(tt.name, "response") && tt.action == verdict.Blocked; rec.BlockedInResponse != inResponse {
				t.Errorf("blocked in a response phase %v, want %v", rec.BlockedInResponse, inResponse)
			}
			if rec.UpstreamError {
				t.Error("counted as upstream error")
			}
		})
	}
}

func TestRequestBodyReachesUpstreamByteForByte(t *testing.T) {
	random := make([]byte, 300<<10) // larger than Coraza's in-memory limit: spills to disk
	rand.Read(random)
	json := `{"order":{"items":[{"sku":"A-1","qty":2}],"note":"leave at the door"}}`
	tests := []struct {
		name, ruleset, contentType string
		body                       []byte
		chunked                    bool
	}{
		{"binary body through a body-inspecting ruleset", "testdata/actions.conf", "application/octet-stream", random, false},
		{"chunked body of unknown length", "testdata/actions.conf", "application/octet-stream", random[:70000], true},
		{"JSON through CRS", shipped("baseline.conf"), "application/json", []byte(json), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &Snapshot{Baseline: load(t, tt.ruleset)}, nil, nil)
			id := fmt.Sprint("body-", i)
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			resp, _ := f.do(t, "POST", "/api/orders", id, body, map[string]string{"Content-Type": tt.contentType})
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			seen, ok := f.up.get(id)
			sum := sha256.Sum256(tt.body)
			if !ok || seen.bodyLen != len(tt.body) || seen.bodySum != hex.EncodeToString(sum[:]) {
				t.Errorf("upstream got %d bytes (reached %v), want %d identical bytes", seen.bodyLen, ok, len(tt.body))
			}
		})
	}
}

func TestUpstreamDownIs502AndCountedApart(t *testing.T) {
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, nil, nil)
	f.up.Close() // nothing listens there any more
	resp, _ := f.do(t, "GET", "/", "down-1", nil, nil)
	rec := f.rec.byID(t, "down-1")
	if resp.StatusCode != http.StatusBadGateway || !rec.UpstreamError || rec.Action != verdict.Allowed {
		t.Errorf("status %d upstreamError %v action %s, want 502, true, allowed", resp.StatusCode, rec.UpstreamError, rec.Action)
	}
}

// The fault this guards against: with no upstream timeout by default, an
// upstream that accepts and never answers held every client for ever.
func TestSilentUpstreamTimesOutAs504(t *testing.T) {
	if DefaultProxyConfig.ResponseHeaderTimeout <= 0 {
		t.Fatal("no default response_header_timeout")
	}
	release := make(chan struct{})
	defer close(release)
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // never answers, until the test ends
		case <-release:
		case <-r.Context().Done():
		}
	}), func(o *Options) { o.Proxy.ResponseHeaderTimeout = 200 * time.Millisecond })
	start := time.Now()
	resp, _ := f.do(t, "GET", "/", "silent-1", nil, nil)
	rec := f.rec.byID(t, "silent-1")
	if resp.StatusCode != http.StatusGatewayTimeout || !rec.UpstreamError || time.Since(start) > 5*time.Second {
		t.Errorf("status %d upstreamError %v after %s, want 504 after about 200ms", resp.StatusCode, rec.UpstreamError, time.Since(start))
	}
}

func TestClientGoneIsNotUpstreamError(t *testing.T) {
	reached := make(chan struct{})
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(reached)
		<-r.Context().Done() // hold the request until the proxy gives up on it
	}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.proxy.URL+"/slow", nil)
	req.Header.Set("X-Request-ID", "gone-1")
	go func() { <-reached; cancel() }()
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("client error %v, want canceled", err)
	}
	rec := f.rec.byID(t, "gone-1")
	if rec.UpstreamError || rec.Status != 0 {
		t.Errorf("client that left recorded as upstreamError=%v status=%d", rec.UpstreamError, rec.Status)
	}
}

func TestRequestIDs(t *testing.T) {
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, nil, nil)
	resp, _ := f.do(t, "GET", "/", "abc-123", nil, nil)
	if seen, ok := f.up.get("abc-123"); !ok || resp.Header.Get("X-Request-ID") != "abc-123" {
		t.Errorf("given ID not kept: upstream %v %+v, response %q", ok, seen, resp.Header.Get("X-Request-ID"))
	}
	// An ID that could inject into logs is replaced by a generated one.
	resp, _ = f.do(t, "GET", "/", "bad id\"{<script>", nil, nil)
	got := resp.Header.Get("X-Request-ID")
	if got == "" || strings.ContainsAny(got, " \"\n{") {
		t.Fatalf("response ID %q", got)
	}
	if _, ok := f.up.get(got); !ok {
		t.Error("generated ID not passed upstream")
	}
	if rec := f.rec.byID(t, got); rec.ID != got {
		t.Error("generated ID not the transaction ID")
	}
}

func TestTrustedProxiesAndForwardedFor(t *testing.T) {
	for _, tt := range []struct {
		name    string
		trusted []string
		wantXFF string
	}{
		{"untrusted peer: client's X-Forwarded-For discarded", nil, "127.0.0.1"},
		{"trusted peer: chain kept and extended", []string{"127.0.0.0/8"}, "203.0.113.7, 127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, nil, func(o *Options) { o.Routing.TrustedProxies = tt.trusted })
			f.do(t, "GET", "/", "xff", nil, map[string]string{"X-Forwarded-For": "203.0.113.7"})
			if seen, _ := f.up.get("xff"); seen.xff != tt.wantXFF {
				t.Errorf("upstream X-Forwarded-For %q, want %q", seen.xff, tt.wantXFF)
			}
		})
	}
}

func TestBrokenRulesetRefusedOldKeepsServing(t *testing.T) {
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, nil, nil)
	before := f.rt.Snapshot()
	_, err := loadErr("testdata/broken.conf")
	if err == nil || !strings.Contains(err.Error(), "testdata/broken.conf:2:") {
		t.Fatalf("error %v, want file and line", err)
	}
	if err := f.rt.Swap(&Snapshot{}); err == nil {
		t.Error("swapped in a snapshot without a baseline")
	}
	closed := load(t, "testdata/actions-candidate.conf")
	closed.Retire()
	if err := f.rt.Swap(&Snapshot{Baseline: before.Baseline, Candidate: closed, Share: 10}); err == nil {
		t.Error("swapped in a closed ruleset")
	}
	if f.rt.Snapshot() != before {
		t.Fatal("a refused swap changed the routing state")
	}
	resp, _ := f.do(t, "GET", "/?q=attack", "after-refusal", nil, nil)
	if resp.StatusCode != 403 {
		t.Errorf("old ruleset not serving: status %d", resp.StatusCode)
	}
}

func TestRetiredRulesetClosedAfterInFlightRequest(t *testing.T) {
	reached, release := make(chan struct{}), make(chan struct{})
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(reached)
			<-release
		}
		io.WriteString(w, "done")
	}), nil)
	old := f.rt.Snapshot().Baseline
	done := make(chan int)
	go func() {
		resp, _ := f.do(t, "GET", "/hold", "inflight", nil, nil)
		done <- resp.StatusCode
	}()
	<-reached
	if err := f.rt.Swap(&Snapshot{Baseline: load(t, "testdata/actions.conf")}); err != nil {
		t.Fatal(err)
	}
	if old.Closed() {
		t.Fatal("closed while a request was still using it")
	}
	// New requests use the new ruleset at once.
	f.do(t, "GET", "/", "after-swap", nil, nil)
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("in-flight request got %d", code)
	}
	f.rec.byID(t, "inflight")
	if !old.Closed() {
		t.Error("retired ruleset still open after its last request")
	}
}

func TestStreamingResponseNotBuffered(t *testing.T) {
	next := make(chan struct{})
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next // the second event only comes once the client has the first
		io.WriteString(w, "data: two\n\n")
	}), nil)
	resp, err := http.Get(f.proxy.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q %v", line, err)
	}
	close(next)
}

// Headers that would let a client speak past the WAF or pose as another
// address: an h2c upgrade (the upstream would then take HTTP/2 straight
// from the client, every later request unseen) and X-Real-IP from a peer
// that is not a trusted proxy.
func TestUpgradeToH2CAndRealIPNotForwarded(t *testing.T) {
	seen := make(chan http.Header, 2)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.WriteHeader(200)
	})
	for _, tt := range []struct {
		name      string
		trusted   []string
		wantReal  string
		upgrade   string
		wantUpgrd string
	}{
		{"untrusted peer, h2c", nil, "", "h2c", ""},
		{"trusted peer keeps X-Real-IP, websocket upgrade kept", []string{"127.0.0.0/8"}, "198.51.100.9", "websocket", "websocket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, up, func(o *Options) { o.Routing.TrustedProxies = tt.trusted })
			req, _ := http.NewRequest("GET", f.proxy.URL+"/", nil)
			req.Header.Set("X-Real-IP", "198.51.100.9")
			req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
			req.Header.Set("Upgrade", tt.upgrade)
			req.Header.Set("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := <-seen
			if got := h.Get("X-Real-IP"); got != tt.wantReal {
				t.Errorf("upstream X-Real-IP %q, want %q", got, tt.wantReal)
			}
			if got := h.Get("Upgrade"); got != tt.wantUpgrd {
				t.Errorf("upstream Upgrade %q, want %q", got, tt.wantUpgrd)
			}
			if tt.upgrade == "h2c" && (h.Get("Http2-Settings") != "" || strings.Contains(strings.ToLower(h.Get("Connection")), "upgrade")) {
				t.Errorf("h2c upgrade leaked upstream: %v", h)
			}
		})
	}
}

// A block's log line says which site and which client, and the query's
// parameter names without their values.
func TestBlockedLineNamesHostClientAndParameters(t *testing.T) {
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, nil, nil)
	f.do(t, "GET", "/search?q=an+attack&token=s3cr3t-value&q=again", "blocked-line", nil, map[string]string{"Host": "shop.example"})
	f.rec.byID(t, "blocked-line")
	var line map[string]any
	for _, l := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(l, `"request blocked"`) && strings.Contains(l, "blocked-line") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no request blocked line:\n%s", f.logs.String())
	}
	params, _ := line["query_params"].([]any)
	if line["host"] != "shop.example" || line["client"] != "127.0.0.1" || line["path"] != "/search" || len(params) != 2 || params[0] != "q" || params[1] != "token" {
		t.Errorf("line %v", line)
	}
	if strings.Contains(f.logs.String(), "s3cr3t-value") {
		t.Error("a query value reached the log")
	}
	// A bare token, or one hidden in an encoded name, is counted, not shown.
	if got := queryParams("/verify?K8s9f3-s3cr3t&token%3Ds3cr3t=1&page=2"); len(got) != 2 || got[0] != "page" || got[1] != "(2 other)" {
		t.Errorf("bare tokens: %q", got)
	}
	if got := queryParams("/x?" + strings.Repeat("a", 100) + "=1&" + func() string {
		var b strings.Builder
		for i := range 40 {
			fmt.Fprintf(&b, "p%02d=1&", i)
		}
		return b.String()
	}()); len(got) != maxLoggedParams+1 || !strings.HasSuffix(got[0], "...") || got[maxLoggedParams] != "(9 other)" {
		t.Errorf("bounded names: %d %q", len(got), got)
	}
}
