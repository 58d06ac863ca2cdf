package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newAppServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewApp())
	t.Cleanup(srv.Close)
	return srv
}

// noRedirectClient returns a client for srv that reports redirects instead
// of following them.
func noRedirectClient(srv *httptest.Server) *http.Client {
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 5 * time.Second
	return &c
}

func TestAppRoutes(t *testing.T) {
	srv := newAppServer(t)
	client := noRedirectClient(srv)
	order := orderBody(0)
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string // request Content-Type
		body        string
		wantStatus  int
		wantType    string // exact response Content-Type
		wantBody    string // substring of the response body
	}{
		{"home", "GET", "/", "", "", 200, contentTypeHTML, "<h1>Canary Outfitters</h1>"},
		{"css", "GET", "/static/app.css", "", "", 200, "text/css; charset=utf-8", "font-family"},
		{"js", "GET", "/static/app.js", "", "", 200, "text/javascript; charset=utf-8", "addEventListener"},
		{"search", "GET", "/search?q=hiking+boots", "", "", 200, contentTypeHTML, "Search results for &quot;hiking boots&quot;"},
		{"search-empty", "GET", "/search", "", "", 200, contentTypeHTML, "0 result(s)"},
		{"comment", "POST", "/blog/comment", "application/x-www-form-urlencoded",
			commentForm("Alice", "alice@example.com", "Nice post"), 201, contentTypeHTML, "Thanks, Alice!"},
		{"comment-missing", "POST", "/blog/comment", "application/x-www-form-urlencoded",
			"name=Alice", 400, contentTypeText, "required"},
		{"comment-wrong-type", "POST", "/blog/comment", "application/json", `{}`, 415, contentTypeText, ""},
		{"order", "POST", "/api/orders", "application/json", order, 201, contentTypeJSON, `"status":"accepted"`},
		{"order-bad-json", "POST", "/api/orders", "application/json", `{"items":`, 400, contentTypeJSON, "invalid JSON"},
		{"order-no-items", "POST", "/api/orders", "application/json", `{"items":[]}`, 422, contentTypeJSON, "no items"},
		{"order-wrong-type", "POST", "/api/orders", "text/plain", order, 415, contentTypeJSON, ""},
		{"product", "GET", "/api/products/3", "", "", 200, contentTypeJSON, `"sku":"STOVE-GAS"`},
		{"product-unknown", "GET", "/api/products/999", "", "", 404, contentTypeJSON, "not found"},
		{"product-bad-id", "GET", "/api/products/abc", "", "", 400, contentTypeJSON, "invalid product id"},
		{"healthz", "GET", "/healthz", "", "", 200, contentTypeText, "ok"},
		{"echo-get", "GET", "/echo?a=1", "", "", 200, contentTypeText, "GET /echo?a=1 HTTP/1.1\n"},
		{"echo-post", "POST", "/echo", "text/plain", "hello", 200, contentTypeText, "\n\nhello"},
		{"unknown", "GET", "/nope", "", "", 404, "", ""},
		{"unknown-under-static", "GET", "/static/other.css", "", "", 404, "", ""},
		{"wrong-method", "DELETE", "/api/orders", "", "", 405, "", ""},
		{"traversal-redirects", "GET", "/static/../../etc/passwd", "", "", http.StatusTemporaryRedirect, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d; body %q", resp.StatusCode, tc.wantStatus, got)
			}
			if ct := resp.Header.Get("Content-Type"); tc.wantType != "" && ct != tc.wantType {
				t.Errorf("Content-Type = %q, want %q", ct, tc.wantType)
			}
			if !bytes.Contains(got, []byte(tc.wantBody)) {
				t.Errorf("body %q does not contain %q", got, tc.wantBody)
			}
			if tc.wantType == contentTypeJSON && !json.Valid(got) {
				t.Errorf("body is not valid JSON: %q", got)
			}
		})
	}
}

func TestAppHealthzBodyExact(t *testing.T) {
	srv := newAppServer(t)
	resp, err := noRedirectClient(srv).Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if string(got) != "ok" {
		t.Fatalf("body = %q, want %q", got, "ok")
	}
}

func TestAppSearchEscapesQuery(t *testing.T) {
	srv := newAppServer(t)
	resp, err := noRedirectClient(srv).Get(srv.URL + searchPath(`<script>alert(1)</script> "x" & 'y'`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if bytes.Contains(got, []byte("<script>alert")) {
		t.Errorf("query reflected unescaped: %s", got)
	}
	want := "&lt;script&gt;alert(1)&lt;/script&gt; &#34;x&#34; &amp; &#39;y&#39;"
	if !bytes.Contains(got, []byte(want)) {
		t.Errorf("body does not contain escaped query %q:\n%s", want, got)
	}
}

func TestAppOrderResponse(t *testing.T) {
	srv := newAppServer(t)
	client := noRedirectClient(srv)
	for i := 1; i <= 2; i++ {
		resp, err := client.Post(srv.URL+"/api/orders", "application/json", strings.NewReader(orderBody(i)))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			OrderID   string  `json:"order_id"`
			ItemCount int     `json:"item_count"`
			Total     float64 `json:"total"`
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := "ord-00000" + string(rune('0'+i)); got.OrderID != want {
			t.Errorf("order_id = %q, want %q", got.OrderID, want)
		}
		if loc := resp.Header.Get("Location"); loc != "/api/orders/"+got.OrderID {
			t.Errorf("Location = %q", loc)
		}
		if got.ItemCount <= 0 || got.Total <= 0 {
			t.Errorf("item_count=%d total=%v, want positive", got.ItemCount, got.Total)
		}
	}
}

func TestAppEchoReflectsBodyAndOmitsCredentials(t *testing.T) {
	srv := newAppServer(t)
	body := make([]byte, 0, 4096)
	for i := range 4096 {
		body = append(body, byte(i*7+i/256)) // every byte value, incl. NUL, CR, LF
	}
	req, err := http.NewRequest("POST", srv.URL+"/echo?x=%2e%2e&y=1", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Cookie", "session=secret-cookie")
	req.Header.Set("Authorization", "Bearer secret-token")
	req.Header.Set("X-Test", "visible")
	resp, err := noRedirectClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentTypeText {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	head, echoed, ok := bytes.Cut(got, []byte("\n\n"))
	if !ok {
		t.Fatalf("no blank line in echo response: %q", got)
	}
	if !bytes.Equal(echoed, body) {
		t.Errorf("echoed body differs: got %d bytes, want %d", len(echoed), len(body))
	}
	h := string(head)
	if !strings.HasPrefix(h, "POST /echo?x=%2e%2e&y=1 HTTP/1.1\n") {
		t.Errorf("request line not reflected verbatim: %q", h)
	}
	for _, want := range []string{"\nX-Test: visible", "\nContent-Type: application/octet-stream", "\nHost: 127.0.0.1:"} {
		if !strings.Contains(h, want) {
			t.Errorf("head missing %q:\n%s", want, h)
		}
	}
	for _, bad := range []string{"Cookie", "Authorization", "secret"} {
		if strings.Contains(h, bad) {
			t.Errorf("head contains %q:\n%s", bad, h)
		}
	}
}

func TestAppEventsStreamsThreeEvents(t *testing.T) {
	srv := newAppServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != contentTypeEvent {
		t.Fatalf("Content-Type = %q", ct)
	}
	var arrivals []time.Time
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			arrivals = append(arrivals, time.Now())
			data = append(data, d)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(data) != sseEvents {
		t.Fatalf("got %d events, want %d: %q", len(data), sseEvents, data)
	}
	for i, d := range data {
		var ev struct{ Seq, Of int }
		if err := json.Unmarshal([]byte(d), &ev); err != nil || ev.Seq != i+1 || ev.Of != sseEvents {
			t.Errorf("event %d data %q (err %v)", i, d, err)
		}
	}
	// The events are 100ms apart at the source; if they arrive together the
	// stream was buffered.
	if gap := arrivals[len(arrivals)-1].Sub(arrivals[0]); gap < 150*time.Millisecond {
		t.Errorf("first and last event arrived %v apart; stream looks buffered", gap)
	}
}
