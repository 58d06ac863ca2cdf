package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The page and its state are open, with headers that keep the page its
// own; actions still need the token, and a browser's cross-origin request
// is refused even with it.
func TestPage(t *testing.T) {
	const token = "0123456789abcdef"
	srv := httptest.NewServer(Handler(prometheus.NewRegistry(), token, func() Status { return Status{State: "shadow"} }, fakeRollouts{}, nil, nil))
	defer srv.Close()
	do := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{}`))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := do("GET", "/", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<script src="/ui/app.js" defer></script>`) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("page: %d %v\n%.200s", resp.StatusCode, resp.Header, body)
	}
	for path, want := range map[string]string{"/ui/app.js": "sessionStorage", "/ui/app.css": "font:", "/ui/state": `"state": "shadow"`} {
		if resp, body := do("GET", path, nil); resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %.100s", path, resp.StatusCode, body)
		}
	}
	if _, body := do("GET", "/ui/state", nil); strings.Contains(body, token) {
		t.Error("the open state carries the token")
	}
	if resp, _ := do("GET", "/ui/../api/v1/status", nil); resp.StatusCode == 200 {
		t.Error("a path through /ui/ reaches the API without a token")
	}
	auth := "Bearer " + token
	for _, c := range []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"the page's own request", map[string]string{"Authorization": auth, "Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}, 200},
		{"the CLI (no Origin)", map[string]string{"Authorization": auth}, 200},
		{"another origin with the token", map[string]string{"Authorization": auth, "Origin": "http://evil.example"}, 403},
		{"a cross-site fetch", map[string]string{"Authorization": auth, "Sec-Fetch-Site": "cross-site"}, 403},
		{"the page without the token", map[string]string{"Origin": srv.URL}, 401},
		{"a cookie instead of the header", map[string]string{"Cookie": "token=" + token}, 401},
	} {
		if resp, body := do("POST", "/api/v1/rollout/rollback", c.hdr); resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
		}
	}
}
