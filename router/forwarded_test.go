package router

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/wafcanary/wafcanary/ruleset"
)

// The property: whatever reaches the upstream is what the WAF judged.
// Each request goes through the proxy to an upstream that keeps what it
// got; a recording rule keeps what Coraza was fed (path, query, arguments,
// headers, body) when its phase-2 rules ran. For every request the
// upstream received, everything it can read was judged: the same path,
// query and body bytes, each argument it parses and each header it sees
// among Coraza's, one Host (the one it got), no trailers. A request that
// cannot be judged as forwarded must be refused, never forwarded.

// fed is what Coraza held for a request when its phase-2 rules ran.
type fed struct {
	uriRaw, filename, query string
	argsGet, argsPost       []pair
	headers                 []pair // names in lower case
	body                    []byte
}

type pair struct{ k, v string }

// feeds is what the recording rule saw, by transaction ID.
var feeds sync.Map

type recordOperator struct{}

func (recordOperator) Evaluate(tx plugintypes.TransactionState, _ string) bool {
	f := &fed{}
	single := func(v variables.RuleVariable) string {
		if c, ok := tx.Collection(v).(collection.Single); ok {
			return c.Get()
		}
		return ""
	}
	all := func(v variables.RuleVariable, lower bool) []pair {
		var out []pair
		if c, ok := tx.Collection(v).(collection.Map); ok {
			for _, d := range c.FindAll() {
				k := d.Key()
				if lower {
					k = strings.ToLower(k)
				}
				out = append(out, pair{k, d.Value()})
			}
		}
		return out
	}
	f.uriRaw, f.filename, f.query = single(variables.RequestURIRaw), single(variables.RequestFilename), single(variables.QueryString)
	f.argsGet, f.argsPost, f.headers = all(variables.ArgsGet, false), all(variables.ArgsPost, false), all(variables.RequestHeaders, true)
	if br, ok := tx.(interface{ RequestBodyReader() (io.Reader, error) }); ok {
		if r, err := br.RequestBodyReader(); err == nil {
			f.body, _ = io.ReadAll(r)
		}
	}
	feeds.Store(tx.ID(), f)
	return false
}

func init() {
	plugins.RegisterOperator("testRecord", func(plugintypes.OperatorOptions) (plugintypes.Operator, error) {
		return recordOperator{}, nil
	})
}

// forwardedRuleset is the shipped baseline without CRS, the parts that
// decide what Coraza is fed and what is refused (the recommended engine
// settings and wafcanary's limits), with a first phase-2 rule that
// records what Coraza holds.
func forwardedRuleset(t testing.TB) *ruleset.Ruleset {
	t.Helper()
	base, err := os.ReadFile(shipped("baseline.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := "SecRule REQUEST_LINE \"@testRecord\" \"id:1,phase:2,pass,nolog,t:none\"\n"
	for line := range strings.Lines(string(base)) {
		if !strings.HasPrefix(line, "Include @crs-setup") && !strings.HasPrefix(line, "Include @owasp_crs") {
			conf += line
		}
	}
	if !strings.Contains(conf, "id:9101") {
		t.Fatal("the shipped baseline's limits are not where this test expects them")
	}
	path := filepath.Join(t.TempDir(), "forwarded.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return load(t, path)
}

// forwardedProxy is the proxy under test, with its recording upstream.
type forwardedProxy struct {
	f  *fixture
	up *recordingUpstream
	h2 *httptest.Server
}

func newForwardedProxy(t testing.TB) *forwardedProxy {
	up := newRecordingUpstream()
	f := newFixture(t, &Snapshot{Baseline: forwardedRuleset(t)}, up, nil)
	return &forwardedProxy{f: f, up: up, h2: newH2CServer(t, f.rt)}
}

// drain takes what reached the upstream since the last call.
func (p *forwardedProxy) drain() map[string]*http.Request {
	p.up.mu.Lock()
	defer p.up.mu.Unlock()
	got := p.up.got
	p.up.got, p.up.body = map[string]*http.Request{}, map[string][]byte{}
	return got
}

// proxyAdded are the headers the proxy sets itself; the client's
// versions never reach the upstream (router.newReverseProxy).
var proxyAdded = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id",
	// Framing: the upstream gets the body's bytes, compared whole.
	"Content-Length", "Transfer-Encoding"}

// check returns how what the upstream got under id differs from what the
// WAF judged; nothing when it is the same.
func check(id string, got *http.Request, upstreamHost string) []string {
	v, ok := feeds.Load(id)
	if !ok {
		return []string{"reached the upstream, and the WAF's phase 2 never ran"}
	}
	f := v.(*fed)
	var diffs []string
	diff := func(format string, a ...any) { diffs = append(diffs, fmt.Sprintf(format, a...)) }
	body, _ := io.ReadAll(got.Body)
	if !bytes.Equal(body, f.body) {
		diff("body: upstream got %d bytes %.60q, WAF judged %d bytes %.60q", len(body), body, len(f.body), f.body)
	}
	// An absolute-form target with no path (http://host) means "/", which
	// is what the upstream gets.
	if got.URL.Path != f.filename && !(got.URL.Path == "/" && f.filename == "") {
		diff("path: upstream %q, WAF REQUEST_FILENAME %q", got.URL.Path, f.filename)
	}
	// The query: when it does not parse whole, Go's reverse proxy forwards
	// the pieces that do, encoded again (cleanQueryParams); what the
	// upstream can read of it must be among what was judged.
	if got.URL.RawQuery != f.query {
		if _, err := url.ParseQuery(f.query); err == nil {
			diff("query: upstream %.100q, WAF QUERY_STRING %.100q", got.URL.RawQuery, f.query)
		}
	}
	q, _ := url.ParseQuery(got.URL.RawQuery) // what parses; the rest the upstream drops too
	for _, p := range pairsOf(q) {
		if !containsPair(f.argsGet, p) {
			diff("query argument %q=%.60q reached the upstream unjudged", p.k, p.v)
		}
	}
	// What the upstream parses before any error it meets; past an error it
	// has nothing more to act on.
	form, _ := bodyArgs(got, body)
	for _, p := range form {
		if !containsPair(f.argsPost, p) {
			diff("body argument %q=%.60q reached the upstream unjudged", p.k, p.v)
		}
	}
	for name, vals := range got.Header {
		if slices.Contains(proxyAdded, name) {
			continue
		}
		if name == "Accept-Encoding" && !slices.ContainsFunc(f.headers, func(h pair) bool { return h.k == "accept-encoding" }) {
			continue // Go's transport asks for gzip itself, and decompresses the answer
		}
		for _, val := range vals {
			if !slices.Contains(f.headers, pair{strings.ToLower(name), val}) {
				diff("header %s: %.60q reached the upstream unjudged", name, val)
			}
		}
	}
	var hosts []string
	for _, h := range f.headers {
		if h.k == "host" {
			hosts = append(hosts, h.v)
		}
	}
	// A request without Host (HTTP/1.0) or with an empty one goes
	// upstream with the upstream's own, which no client chose.
	noHost := len(hosts) == 0 || len(hosts) == 1 && hosts[0] == ""
	if got.Host != "" && !(noHost && got.Host == upstreamHost) && (len(hosts) != 1 || hosts[0] != got.Host) {
		diff("Host: upstream %q, WAF judged %q", got.Host, hosts)
	}
	if len(got.Trailer) > 0 {
		diff("trailers reached the upstream unjudged: %v", got.Trailer)
	}
	return diffs
}

func pairsOf(v url.Values) []pair {
	var out []pair
	for k, vs := range v {
		for _, s := range vs {
			out = append(out, pair{k, s})
		}
	}
	return out
}

// containsPair: argument names are matched without case, as Coraza's
// collections keep them.
func containsPair(ps []pair, p pair) bool {
	return slices.ContainsFunc(ps, func(q pair) bool { return strings.EqualFold(q.k, p.k) && q.v == p.v })
}

// bodyArgs parses a body as a Go application would: form and multipart
// fields (files aside); other types are compared as bytes only.
func bodyArgs(r *http.Request, body []byte) ([]pair, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil:
		return nil, nil
	case mt == "application/x-www-form-urlencoded":
		v, _ := url.ParseQuery(string(body))
		return pairsOf(v), nil
	case mt == "multipart/form-data":
		var out []pair
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return out, err
			}
			if p.FileName() == "" {
				out = append(out, pair{p.FormName(), string(b)})
			}
		}
	}
	return nil, nil
}

// endOfInput follows every input on its connection: its response, the
// last, tells that the server has answered everything before it (a
// client that half-closes instead is taken for gone, and its requests
// are cancelled).
const endOfInput = "GET /end-of-input HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"

// sendRaw writes raw to the proxy as one connection, followed by
// endOfInput, and reads until the server closes it or wait passes (an
// input that leaves a body unfinished holds the server until then).
func (p *forwardedProxy) sendRaw(t testing.TB, raw []byte, wait time.Duration) string {
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(p.f.proxy.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	conn.Write(append(raw[:len(raw):len(raw)], endOfInput...))
	out, _ := io.ReadAll(conn)
	return string(out)
}

// verify checks every request that reached the upstream since the last
// call; it returns how many did.
func (p *forwardedProxy) verify(t testing.TB, name string) int {
	t.Helper()
	got := p.drain()
	for id, r := range got {
		for _, d := range check(id, r, strings.TrimPrefix(p.f.up.URL, "http://")) {
			t.Errorf("%s: %s", name, d)
		}
		feeds.Delete(id)
	}
	return len(got)
}

// multipartBody writes a multipart body by hand, so its edge cases are
// exactly as given.
func multipartBody(boundary string, parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

// h1 builds an HTTP/1.1 request with a Content-Length body.
func h1(head, body string) string {
	if body == "" {
		return head + "\r\n\r\n"
	}
	return fmt.Sprintf("%s\r\nContent-Length: %d\r\n\r\n%s", head, len(body), body)
}

// forwardedShapes are the request shapes the property is checked on, and
// the fuzz target's seeds: what HTTP allows and parsers disagree on.
func forwardedShapes() []struct{ name, raw string } {
	many := func(n int, sep string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "a%d=1%s", i, sep)
		}
		return b.String()
	}
	jsonKeys := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, "\"k%d\":1,", i)
		}
		b.WriteString("\"q\":\"<script>\"}")
		return b.String()
	}
	parts := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("Content-Disposition: form-data; name=\"f%d\"\r\n\r\nx", i))
		}
		return out
	}
	const host = "Host: shop.example"
	form := host + "\r\nContent-Type: application/x-www-form-urlencoded"
	mp := func(boundary string) string {
		return host + "\r\nContent-Type: multipart/form-data; boundary=" + boundary
	}
	return []struct{ name, raw string }{
		{"HTTP/1.0 without Host", "GET /a?x=1 HTTP/1.0\r\n\r\n"},
		{"HTTP/1.1 GET", h1("GET /search?q=tent&q=boots HTTP/1.1\r\n"+host, "")},
		{"absolute form, Host header another host", h1("GET http://shop.example/p?q=1 HTTP/1.1\r\nHost: other.example", "")},
		{"absolute form with userinfo", h1("GET http://u:p@shop.example/p HTTP/1.1\r\n"+host, "")},
		{"raw # in the query", h1("GET /s?x=1#&q=<script> HTTP/1.1\r\n"+host, "")},
		{"Host with case, trailing dot and port", h1("GET / HTTP/1.1\r\nHost: Shop.Example.:8080", "")},
		{"repeated headers and cookies", h1("GET / HTTP/1.1\r\n"+host+"\r\nX-A: 1\r\nX-A: 2\r\nCookie: a=1\r\nCookie: b=<script>", "")},
		{"obs-text in a header", h1("GET / HTTP/1.1\r\n"+host+"\r\nX-Name: caf\xe9", "")},
		{"client X-Forwarded-For and X-Request-ID", h1("GET / HTTP/1.1\r\n"+host+"\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-ID: bad id", "")},
		{"encoded dot-segments and slashes", h1("GET /a/%2e%2e/%2fetc%2Fpasswd?x=%2e%2e HTTP/1.1\r\n"+host, "")},
		{"encoded ? and # in the path", h1("GET /a%3Fq=1%23b HTTP/1.1\r\n"+host, "")},
		{"semicolons, empty pairs, bad escapes", h1("GET /a;p=1?&&a=1;q=<script>&%zz=1&b=%&c=%u003c&d=+x+ HTTP/1.1\r\n"+host, "")},
		{"NUL and control bytes escaped in the query", h1("GET /?q=%00%01%7f%ff HTTP/1.1\r\n"+host, "")},
		{"a form", h1("POST /f HTTP/1.1\r\n"+form, "a=1&b=%3Cscript%3E&b=2&c")},
		// Why: Coraza's URL-encoded processor kept one of q and Q (package form).
		{"a form with names differing only in case", h1("POST /f HTTP/1.1\r\n"+form, "q=%3Cscript%3E&Q=&a=1&A=2")},
		{"a form with a charset and odd spacing", h1("POST /f HTTP/1.1\r\n"+host+"\r\nContent-Type:  Application/X-WWW-Form-Urlencoded ; charset=UTF-8", "a=1&q=x")},
		{"two Content-Type headers", h1("POST /f HTTP/1.1\r\n"+form+"\r\nContent-Type: text/plain", "q=<script>")},
		{"chunked form", "POST /f HTTP/1.1\r\n" + form + "\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na=1&\r\n3\r\nq=x\r\n0\r\n\r\n"},
		{"chunked with trailers", "POST /f HTTP/1.1\r\n" + form + "\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nq=x\r\n0\r\nX-T: <script>\r\n\r\n"},
		{"Content-Length and Transfer-Encoding", "POST /f HTTP/1.1\r\n" + form + "\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nq=x\r\n0\r\n\r\n"},
		{"Expect: 100-continue", h1("POST /f HTTP/1.1\r\n"+form+"\r\nExpect: 100-continue", "q=x")},
		{"gzip-encoded body", h1("POST /f HTTP/1.1\r\n"+form+"\r\nContent-Encoding: gzip", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff+\xb4\xad\x00\x00\x8e\x05\x91\x0c\x03\x00\x00\x00")},
		{"JSON", h1("POST /api HTTP/1.1\r\n"+host+"\r\nContent-Type: application/json", `{"a":{"b":[1,"<script>"]},"a.b":2}`)},
		{"JSON with a UTF-8 BOM and duplicate keys", h1("POST /api HTTP/1.1\r\n"+host+"\r\nContent-Type: application/json", "\xef\xbb\xbf{\"q\":1,\"q\":\"<script>\"}")},
		{"multipart", h1("POST /f HTTP/1.1\r\n"+mp("xyz"), multipartBody("xyz", "Content-Disposition: form-data; name=\"a\"\r\n\r\n1", "Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nfile <script>"))},
		{"multipart, quoted boundary and duplicate names", h1("POST /f HTTP/1.1\r\n"+host+"\r\nContent-Type: multipart/form-data; boundary=\"a b\"", multipartBody("a b", "Content-Disposition: form-data; name=\"q\"\r\n\r\n1", "Content-Disposition: form-data; name=\"q\"\r\n\r\n<script>"))},
		{"multipart, LF line endings", h1("POST /f HTTP/1.1\r\n"+mp("b"), "--b\nContent-Disposition: form-data; name=\"q\"\n\n<script>\n--b--\n")},
		{"multipart, filename* and a preamble", h1("POST /f HTTP/1.1\r\n"+mp("b"), "preamble\r\n"+multipartBody("b", "Content-Disposition: form-data; name=\"q\"; filename*=UTF-8''%3Cs%3E.txt\r\n\r\nx", "Content-Disposition: form-data; name=\"r\"\r\n\r\n<script>"))},
		{"multipart without its final boundary", h1("POST /f HTTP/1.1\r\n"+mp("b"), "--b\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n<script>\r\n")},
		{"multipart, a part without Content-Disposition", h1("POST /f HTTP/1.1\r\n"+mp("b"), multipartBody("b", "Content-Type: text/plain\r\n\r\n<script>", "Content-Disposition: form-data; name=\"q\"\r\n\r\nx"))},
		{"1,001 query arguments", h1("GET /?"+many(1000, "&")+"q=<script> HTTP/1.1\r\n"+host, "")},
		{"1,001 form arguments", h1("POST /f HTTP/1.1\r\n"+form, many(1000, "&")+"q=<script>")},
		{"1,001 JSON keys", h1("POST /api HTTP/1.1\r\n"+host+"\r\nContent-Type: application/json", jsonKeys(1000))},
		{"1,001 multipart parts", h1("POST /f HTTP/1.1\r\n"+mp("b"), multipartBody("b", parts(1001)...))},
		{"a pipeline of three", h1("GET /1 HTTP/1.1\r\n"+host, "") + h1("POST /2 HTTP/1.1\r\n"+form, "q=x") + h1("GET /3?q=y HTTP/1.1\r\n"+host, "")},
		{"a body on GET", h1("GET /g HTTP/1.1\r\n"+form, "q=<script>")},
		{"OPTIONS *", h1("OPTIONS * HTTP/1.1\r\n"+host, "")},
	}
}

// TestWAFJudgesWhatUpstreamReceives: for each shape, over HTTP/1.x and
// the HTTP/2 ones over prior-knowledge h2c, whatever reached the upstream
// is what the WAF judged.
func TestWAFJudgesWhatUpstreamReceives(t *testing.T) {
	p := newForwardedProxy(t)
	forwarded := 0
	for _, s := range forwardedShapes() {
		if out := p.sendRaw(t, []byte(s.raw), 5*time.Second); !strings.Contains(out, "\r\n\r\nok") && !strings.Contains(out, "HTTP/1.1 400") {
			t.Errorf("%s: no answer to the end of input: %.200q", s.name, out)
		}
		forwarded += p.verify(t, s.name) - 1
	}
	h2 := strings.TrimPrefix(p.h2.URL, "http://")
	get := func(extra ...h2Field) []h2Field {
		return append([]h2Field{{":method", "GET"}, {":scheme", "http"}, {":authority", "shop.example"}, {":path", "/h2?q=1"}}, extra...)
	}
	for _, s := range []struct {
		name   string
		fields []h2Field
		body   []byte
		status int
	}{
		{"HTTP/2 GET", get(), nil, 200},
		{"HTTP/2 host equal to :authority", get(h2Field{"host", "shop.example"}), nil, 200},
		{"HTTP/2 host unlike :authority", get(h2Field{"host", "other.example"}), nil, 400},
		{"HTTP/2 host without :authority", []h2Field{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "shop.example"}}, nil, 200},
		{"HTTP/2 cookie crumbs", get(h2Field{"cookie", "a=1"}, h2Field{"cookie", "b=<script>"}), nil, 200},
		{"HTTP/2 form", []h2Field{{":method", "POST"}, {":scheme", "http"}, {":authority", "shop.example"}, {":path", "/f"}, {"content-type", "application/x-www-form-urlencoded"}}, []byte("q=<script>&a=1"), 200},
	} {
		status, body := h2Do(t, h2, s.fields, s.body)
		if status != s.status {
			t.Errorf("%s: status %d (%q), want %d", s.name, status, body, s.status)
		}
		forwarded += p.verify(t, s.name)
	}
	// The property must have been tested, not vacuously held: most
	// shapes are forwarded.
	if forwarded < 30 {
		t.Errorf("only %d requests reached the upstream", forwarded)
	}
}

// FuzzWAFJudgesWhatUpstreamReceives: whatever bytes a client sends, what
// reaches the upstream is what the WAF judged (TestWAFJudgesWhat...).
func FuzzWAFJudgesWhatUpstreamReceives(f *testing.F) {
	for _, s := range forwardedShapes() {
		if len(s.raw) < 4096 {
			f.Add([]byte(s.raw))
		}
	}
	p := newForwardedProxy(f) // one per fuzzing process, shared by its inputs
	f.Fuzz(func(t *testing.T, raw []byte) {
		p.sendRaw(t, raw, 300*time.Millisecond)
		p.verify(t, fmt.Sprintf("%.200q", raw))
	})
}
