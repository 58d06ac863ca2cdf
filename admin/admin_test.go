package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // substring of the error, "" for valid
	}{
		{Config{Listen: "127.0.0.1:9090"}, ""},
		{Config{Listen: "[::1]:9090"}, ""},
		{Config{Listen: "localhost:9090"}, ""},
		{Config{Listen: "0.0.0.0:9090"}, "token: required"},
		{Config{Listen: "0.0.0.0:9090", Token: "0123456789abcdef"}, ""},
		{Config{Listen: "127.0.0.1:9090", Token: "short"}, "token: must be at least 16"},
		{Config{Listen: "9090"}, "listen: want host:port"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestHandlerAuth(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "wafcanary_test_total", Help: "x"}))
	srv := httptest.NewServer(Handler(reg, "0123456789abcdef", func() any { return map[string]int{"share": 5} }, nil))
	defer srv.Close()
	tests := []struct {
		path, auth string
		status     int
		body       string
	}{
		{"/metrics", "", 200, "wafcanary_test_total 0"},
		{"/healthz", "", 200, "ok"},
		{"/api/v1/status", "", 401, ""},
		{"/api/v1/status", "Bearer wrong-token-0000000", 401, ""},
		{"/api/v1/status", "Bearer 0123456789abcdef", 200, `"share": 5`},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		sb.Write(buf[:n])
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(sb.String(), tt.body) {
			t.Errorf("%s (%q): %d %q, want %d containing %q", tt.path, tt.auth, resp.StatusCode, sb.String(), tt.status, tt.body)
		}
	}
}
