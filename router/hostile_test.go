package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

// rawDo writes raw, one HTTP/1.x request as bytes, to addr and returns
// the response, or nil if the server closed the connection without one.
func rawDo(t testing.TB, addr, raw string) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

// recordingUpstream keeps every request that reached it, whole.
type recordingUpstream struct {
	mu   sync.Mutex
	got  map[string]*http.Request // by X-Request-ID, Body read into body
	body map[string][]byte
}

func newRecordingUpstream() *recordingUpstream {
	return &recordingUpstream{got: map[string]*http.Request{}, body: map[string][]byte{}}
}

func (u *recordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body) // trailers are read with the body
	id := r.Header.Get("X-Request-ID")
	// A copy: the server goes on reading the request it handed over.
	c := r.Clone(context.Background())
	c.Body = io.NopCloser(bytes.NewReader(b))
	u.mu.Lock()
	u.got[id], u.body[id] = c, b
	u.mu.Unlock()
	io.WriteString(w, "ok")
}

func (u *recordingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

func (u *recordingUpstream) get(id string) (*http.Request, []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got[id], u.body[id]
}

// Requests the WAF would read differently from the upstream are refused
// before judging, never forwarded, and kept out of the rollout's evidence.
func TestRequestsJudgedAsForwardedOrRefused(t *testing.T) {
	up := newRecordingUpstream()
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, up, nil)
	h2 := newH2CServer(t, f.rt)
	addr := strings.TrimPrefix(f.proxy.URL, "http://")
	long := strings.Repeat("a", DefaultProxyConfig.MaxURIBytes)
	tests := []struct {
		name   string
		raw    string    // HTTP/1.x bytes, or
		h2     []h2Field // an HTTP/2 request
		status int
		why    verdict.Refusal
	}{
		// Why: Coraza cuts the target at '#'; net/http forwards the rest
		// as query, where the upstream parses q.
		{name: "raw # in the query", raw: "GET /search?x=1#&q=<script>alert(1)</script> HTTP/1.1\r\nHost: shop.example\r\n\r\n", status: 400, why: verdict.RefusedFragment},
		{name: "raw # in the path", raw: "GET /a#/../../etc/passwd HTTP/1.1\r\nHost: shop.example\r\n\r\n", status: 400, why: verdict.RefusedFragment},
		// Found by FuzzWAFJudgesWhatUpstreamReceives: the upstream got
		// Host "xn--zn7c" while the WAF judged "\x8e".
		{name: "non-ASCII host in an absolute-form target", raw: "GET http://\x8e/ HTTP/1.0\r\n\r\n", status: 400, why: verdict.RefusedHost},
		{name: "userinfo in an absolute-form target", raw: "GET http://alice:pw-s3cret@shop.example/account HTTP/1.1\r\nHost: shop.example\r\n\r\n", status: 400, why: verdict.RefusedUserinfo},
		{name: "request-target over max_uri_bytes", raw: "GET /?q=" + long + " HTTP/1.1\r\nHost: shop.example\r\n\r\n", status: 414, why: verdict.RefusedURITooLong},
		// Why: RFC 9113 8.3.1; net/http keeps the host header beside
		// :authority and the WAF would see both while the upstream gets
		// :authority.
		{name: "HTTP/2 host header disagreeing with :authority", h2: []h2Field{{":method", "GET"}, {":scheme", "http"}, {":authority", "other.example"}, {":path", "/"}, {"host", "shop.example"}}, status: 400, why: verdict.RefusedAuthority},
		{name: "HTTP/2 host header equal to :authority", h2: []h2Field{{":method", "GET"}, {":scheme", "http"}, {":authority", "shop.example"}, {":path", "/fine"}, {"host", "SHOP.example"}}, status: 200},
		// Why: the reverse proxy would forward "*" as the path "/*".
		{name: "asterisk form outside OPTIONS", raw: "GET * HTTP/1.1\r\nHost: shop.example\r\n\r\n", status: 400, why: verdict.RefusedTarget},
		{name: "CONNECT", raw: "CONNECT shop.example:443 HTTP/1.1\r\nHost: shop.example:443\r\n\r\n", status: 400, why: verdict.RefusedTarget},
		{name: "absolute form without userinfo", raw: "GET http://shop.example/fine HTTP/1.1\r\nHost: shop.example\r\n\r\n", status: 200},
		{name: "encoded # is data", raw: "GET /fine?q=%23x HTTP/1.1\r\nHost: shop.example\r\n\r\n", status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			var status int
			var body string
			if tc.h2 != nil {
				status, body = h2Do(t, strings.TrimPrefix(h2.URL, "http://"), tc.h2, nil)
			} else {
				resp := rawDo(t, addr, tc.raw)
				if resp == nil {
					t.Fatal("no response")
				}
				b, _ := io.ReadAll(resp.Body)
				status, body = resp.StatusCode, string(b)
			}
			if status != tc.status {
				t.Fatalf("status %d (%q), want %d", status, body, tc.status)
			}
			if tc.why == verdict.NotRefused {
				if up.count() != before+1 {
					t.Fatal("not forwarded")
				}
				return
			}
			if up.count() != before {
				t.Fatal("a refused request reached the upstream")
			}
			id := strings.TrimSpace(body[strings.LastIndex(body, ":")+1:])
			rec := f.rec.byID(t, id)
			if rec.Refused != tc.why || !rec.Outside || rec.Status != tc.status {
				t.Errorf("record: refused %q outside %v status %d, want %q, true, %d", rec.Refused, rec.Outside, rec.Status, tc.why, tc.status)
			}
		})
	}
	if logs := f.logs.String(); strings.Contains(logs, "pw-s3cret") || !strings.Contains(logs, `"reason":"userinfo"`) {
		t.Errorf("the userinfo refusal's log: password logged %v, reason logged %v", strings.Contains(logs, "pw-s3cret"), strings.Contains(logs, `"reason":"userinfo"`))
	}
}

// Request trailers arrive after the verdict: nothing judged them, so
// nothing forwards them.
func TestRequestTrailersAreNotForwarded(t *testing.T) {
	up := newRecordingUpstream()
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, up, nil)
	raw := "POST /fine HTTP/1.1\r\nHost: shop.example\r\nX-Request-ID: trailer-1\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Transfer-Encoding: chunked\r\nTrailer: X-Smuggled\r\n\r\n" +
		"5\r\na=b&c\r\n0\r\nX-Smuggled: <script>alert(1)</script>\r\n\r\n"
	resp := rawDo(t, strings.TrimPrefix(f.proxy.URL, "http://"), raw)
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("response %v", resp)
	}
	got, body := up.get("trailer-1")
	if got == nil || string(body) != "a=b&c" {
		t.Fatalf("upstream got %v, body %q", got, body)
	}
	if len(got.Trailer) != 0 || got.Header.Get("Trailer") != "" {
		t.Errorf("trailers forwarded: %v, Trailer header %q", got.Trailer, got.Header.Get("Trailer"))
	}
}

// An ID names one request: a client that reuses the ID another user
// quotes to support gets another one.
func TestRequestIDNotGivenTwice(t *testing.T) {
	f := newFixture(t, &Snapshot{Baseline: load(t, "testdata/actions.conf")}, nil, nil)
	first, _ := f.do(t, "GET", "/?q=an+attack", "user-quote-1", nil, nil)
	second, _ := f.do(t, "GET", "/?q=an+attack", "user-quote-1", nil, nil)
	a, b := first.Header.Get("X-Request-ID"), second.Header.Get("X-Request-ID")
	if a != "user-quote-1" || b == a || !strings.HasPrefix(b, "user-quote-1-") || !validRequestID(b) {
		t.Fatalf("IDs %q then %q", a, b)
	}
	if f.rec.byID(t, b).Action != verdict.Blocked {
		t.Error("the second request is not recorded under its own ID")
	}
	// Remembered IDs are bounded: the oldest is forgotten.
	ids := newRequestIDs(2)
	for _, id := range []string{"a", "b", "c"} {
		ids.of(http.Header{"X-Request-Id": {id}})
	}
	if got := ids.of(http.Header{"X-Request-Id": {"a"}}); got != "a" || len(ids.seen) != 2 {
		t.Errorf("after eviction: %q, %d remembered", got, len(ids.seen))
	}
	// Round after round, the ring neither grows nor forgets too early:
	// the last three of a thousand IDs are still known, the fourth not.
	ids = newRequestIDs(3)
	for i := range 1000 {
		ids.given(fmt.Sprintf("id-%d", i))
	}
	if len(ids.seen) != 3 || len(ids.ring) != 3 {
		t.Errorf("%d remembered in a ring of %d, want 3", len(ids.seen), len(ids.ring))
	}
	for _, id := range []string{"id-997", "id-998", "id-999"} {
		if got := ids.given(id); got == id {
			t.Errorf("%s, among the last three, given again", id)
		}
	}
	if got := ids.given("id-990"); got != "id-990" {
		t.Errorf("id-990, long forgotten, renamed %q", got)
	}
}

// hostile are request shapes that hid an attack from the shipped
// baseline, or cost it seconds of CPU, before its limits (rules 9100-9107).
func hostile() []struct {
	name, method, target, ctype string
	body                        []byte
	status, rule                int
} {
	rnd := rand.New(rand.NewPCG(1, 2))
	binary := make([]byte, 120<<10)
	for i := range binary {
		binary[i] = byte(rnd.Uint32())
	}
	var pad strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&pad, "a%d=1&", i)
	}
	xss := "q=" + url.QueryEscape("<script>alert(document.cookie)</script>")
	keys := map[string]any{}
	for i := range 1000 {
		keys[fmt.Sprint("k", i)] = 1
	}
	keys["zz"] = "<script>alert(document.cookie)</script>"
	jsonBody, _ := json.Marshal(keys)
	var parts bytes.Buffer
	mw := multipart.NewWriter(&parts)
	for i := range 1001 {
		mw.WriteField(fmt.Sprint("f", i), "x")
	}
	mw.Close()
	var bigField bytes.Buffer
	mw2 := multipart.NewWriter(&bigField)
	mw2.WriteField("text", strings.Repeat("lorem ipsum ", 20000))
	mw2.Close()
	text := "text=" + strings.Repeat("lorem+ipsum+", 20000)
	return []struct {
		name, method, target, ctype string
		body                        []byte
		status, rule                int
	}{
		{"an XSS in the query", "GET", "/search?" + xss, "", nil, 403, 949110},
		{"the XSS after 1,000 query arguments", "GET", "/search?" + pad.String() + xss, "", nil, 400, 9101},
		{"the XSS after 1,000 form arguments", "POST", "/f", "application/x-www-form-urlencoded", []byte(pad.String() + xss), 400, 9102},
		{"the XSS in a JSON object of 1,001 keys", "POST", "/api", "application/json", jsonBody, 400, 9102},
		{"1,001 multipart parts", "POST", "/f", mw.FormDataContentType(), parts.Bytes(), 400, 9106},
		// Why: CRS forces Coraza's URL-encoded parser on types without a
		// body processor (901340); early blocking stops at 920420 first.
		{"120 KB of binary as image/png", "POST", "/upload", "image/png", binary, 403, 949111},
		{"120 KB of binary as a form", "POST", "/f", "application/x-www-form-urlencoded", binary, 400, 9104},
		{"240 KB form of text, over SecRequestBodyNoFilesLimit", "POST", "/f", "application/x-www-form-urlencoded", []byte(text), 413, 0},
		{"a multipart field of 240 KB", "POST", "/f", mw2.FormDataContentType(), bigField.Bytes(), 413, 9105},
	}
}

// The shipped baseline refuses every hostile shape, by the rule meant
// for it, without forwarding it; block log lines stay bounded whatever
// the body held.
func TestShippedBaselineLimits(t *testing.T) {
	up := newRecordingUpstream()
	f := newFixture(t, &Snapshot{Baseline: load(t, shipped("baseline.conf"))}, up, nil)
	for i, tc := range hostile() {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprint("hostile-", i)
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
			}
			hdr := map[string]string{}
			if tc.ctype != "" {
				hdr["Content-Type"] = tc.ctype
			}
			resp, _ := f.do(t, tc.method, tc.target, id, body, hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			rec := f.rec.byID(t, id)
			if !rec.Verdict.Blocked || rec.Verdict.RuleID != tc.rule {
				t.Errorf("verdict blocked %v by %d (rules %v), want %d", rec.Verdict.Blocked, rec.Verdict.RuleID, rec.Verdict.RuleIDs(), tc.rule)
			}
			for _, m := range rec.Verdict.Rules {
				if len(m.Targets) > verdict.MaxTargets {
					t.Errorf("rule %d keeps %d targets", m.ID, len(m.Targets))
				}
			}
			if got, _ := up.get(id); got != nil {
				t.Error("forwarded")
			}
		})
	}
	for line := range strings.Lines(f.logs.String()) {
		if len(line) > 16<<10 {
			t.Errorf("a log line of %d bytes: %.200s...", len(line), line)
		}
	}
}

// discardTransport answers every request in process, so a benchmark
// measures the WAF's path and not loopback networking.
type discardTransport struct{}

func (discardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// BenchmarkHostileRequests: the CPU each hostile shape costs through the
// proxy, with the shipped baseline and with the same baseline without
// its limits (rules 9100-9199 removed, SecRequestBodyNoFilesLimit at its
// 1 GiB maximum), side by side. docs/RATIONALE.md quotes a run:
//
//	go test -run '^$' -bench BenchmarkHostileRequests -count 3 ./router/
func BenchmarkHostileRequests(b *testing.B) {
	base, err := os.ReadFile(shipped("baseline.conf"))
	if err != nil {
		b.Fatal(err)
	}
	without := filepath.Join(b.TempDir(), "without-limits.conf")
	os.WriteFile(without, append(base, "\nSecRuleRemoveById 9100-9199\nSecRequestBodyNoFilesLimit 1073741824\n"...), 0o600)
	rulesets := []struct{ name, path string }{{"without-limits", without}, {"shipped", shipped("baseline.conf")}}
	u, _ := url.Parse("http://upstream.internal")
	// What the limits still admit, at their edges: the most a request that
	// gets through can cost.
	var args, cjk strings.Builder
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := 0; args.Len() < 127<<10 && i < 999; i++ {
		fmt.Fprintf(&args, "field%d=", i)
		for range 12 {
			args.WriteString([]string{"hello", "%3C", "world", "(", "%27", "select", "+"}[rnd.IntN(7)])
		}
		args.WriteString("&")
	}
	cjk.WriteString("text=")
	for cjk.Len() < 127<<10 {
		cjk.WriteRune(rune(0x4e00 + rnd.IntN(20000)))
	}
	shapes := append(hostile(), []struct {
		name, method, target, ctype string
		body                        []byte
		status, rule                int
	}{
		{"admitted: 999 arguments of text with punctuation, 127 KB", "POST", "/f", "application/x-www-form-urlencoded", []byte(args.String()), 0, 0},
		{"admitted: 127 KB of CJK text in one field", "POST", "/f", "application/x-www-form-urlencoded", []byte(cjk.String()), 0, 0},
	}...)
	for _, h := range shapes {
		for _, rs := range rulesets {
			b.Run(strings.ReplaceAll(h.name, " ", "_")+"/"+rs.name, func(b *testing.B) {
				rt, err := New(&Snapshot{Baseline: load(b, rs.path)}, Options{
					Upstream: u, Routing: DefaultRoutingConfig, Shadow: DefaultShadowConfig, Proxy: DefaultProxyConfig,
					Secret: []byte("bench-secret-0123456789"), Logger: discardLogger(), Transport: discardTransport{},
				})
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					var body io.Reader
					if h.body != nil {
						body = bytes.NewReader(h.body)
					}
					r := httptest.NewRequest(h.method, h.target, body)
					r.Host = "shop.example"
					r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
					r.Header.Set("Accept", "text/html")
					if h.ctype != "" {
						r.Header.Set("Content-Type", h.ctype)
					}
					rt.ServeHTTP(httptest.NewRecorder(), r)
				}
			})
		}
	}
}
