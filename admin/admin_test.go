package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/rollout"
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
		{Config{Listen: "127.0.0.1:9090", AllowedHosts: []string{"wafcanary.ops.svc", "canary.example.com."}}, ""},
		{Config{Listen: "127.0.0.1:9090", AllowedHosts: []string{"wafcanary.ops.svc", "-bad.example"}}, "allowed_hosts[1]: want a host name"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// The page answers the names it is configured with: allowed_hosts and
// the host of listen when it is a name.
func TestConfigHosts(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{DefaultConfig, ""},
		{Config{Listen: "[::1]:9090", AllowedHosts: []string{"a.example"}}, "a.example"},
		{Config{Listen: "canary-admin.internal:9090", AllowedHosts: []string{"a.example"}}, "a.example canary-admin.internal"},
	} {
		if got := strings.Join(tc.cfg.Hosts(), " "); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

func TestHandlerAuth(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "wafcanary_test_total", Help: "x"}))
	srv := httptest.NewServer(Handler(Options{Gatherer: reg, Token: "0123456789abcdef", Status: func() Status { return Status{CandidatePercent: 5} }}))
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
		{"/api/v1/status", "Bearer 0123456789abcdef", 200, `"candidate_percent": 5`},
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

// fakeRollouts answers with a fixed error, to check the status mapping.
type fakeRollouts struct{ err error }

func (f fakeRollouts) Start(context.Context, StartRequest) (Status, error) {
	return Status{State: "shadow"}, f.err
}
func (f fakeRollouts) Do(_ context.Context, a Action, req ActionRequest) (Status, error) {
	return Status{State: "paused", LastDecision: &rollout.Decision{Action: rollout.Action(a), Reason: req.To}}, f.err
}
func (f fakeRollouts) History(int) ([]rollout.Entry, error) { return nil, f.err }
func (f fakeRollouts) Gates() GateProgress                  { return GateProgress{} }

func TestRolloutEndpoints(t *testing.T) {
	const token = "0123456789abcdef"
	tests := []struct {
		name, method, path, body, auth string
		err                            error
		status                         int
		body2                          string // substring of the answer
	}{
		{"start", "POST", "/api/v1/rollout/start", `{"candidate":"c.conf","reason":"r"}`, token, nil, 200, `"shadow"`},
		{"no token", "POST", "/api/v1/rollout/rollback", `{}`, "", nil, 401, ""},
		{"unknown field", "POST", "/api/v1/rollout/start", `{"candidat":"c.conf"}`, token, nil, 400, "unknown field"},
		{"bad JSON", "POST", "/api/v1/rollout/pause", `{`, token, nil, 400, "request body"},
		{"unknown action", "POST", "/api/v1/rollout/explode", `{}`, token, nil, 404, "unknown action"},
		{"conflict", "POST", "/api/v1/rollout/start", `{}`, token, fmt.Errorf("already running: %w", rollout.ErrConflict), 409, "already running"},
		{"bad request", "POST", "/api/v1/rollout/start", `{}`, token, fmt.Errorf("x.conf:3: nope: %w", rollout.ErrBadRequest), 400, "x.conf:3"},
		{"four-eyes", "POST", "/api/v1/rollout/promote", `{}`, token, fmt.Errorf("alice started this rollout: %w", rollout.ErrSameApprover), 403, `"kind": "forbidden"`},
		{"refused by gates", "POST", "/api/v1/rollout/start", `{}`, token, fmt.Errorf("candidate c.conf %w:\n  x.conf:4: removes 949110", gates.ErrRefused), 422, "x.conf:4"},
		{"empty body is an empty request", "POST", "/api/v1/rollout/rollback", ``, token, nil, 200, `"paused"`},
		{"undo to a version", "POST", "/api/v1/rollout/undo", `{"reason":"r","to":"abc123"}`, token, nil, 200, `"reason": "abc123"`},
		{"history bad n", "GET", "/api/v1/rollout/history?n=-1", ``, token, nil, 400, "non-negative"},
		{"history", "GET", "/api/v1/rollout/history?n=5", ``, token, nil, 200, "[]"},
		{"wrong method", "GET", "/api/v1/rollout/start", ``, token, nil, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Token: token, Status: func() Status { return Status{} }, Rollouts: fakeRollouts{tt.err}}))
			defer srv.Close()
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", "Bearer "+tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.body2) {
				t.Errorf("%d %s, want %d containing %q", resp.StatusCode, b, tt.status, tt.body2)
			}
		})
	}
}

// The typed client the CLI uses: answers decoded, refusals as *Error with
// the server's status and message, no answer as ErrUnreachable.
func TestClient(t *testing.T) {
	const token = "0123456789abcdef"
	for _, tt := range []struct {
		name   string
		err    error
		status int
	}{
		{"ok", nil, 0},
		{"conflict", fmt.Errorf("no rollout in progress; use undo: %w", rollout.ErrConflict), 409},
		{"refused", fmt.Errorf("candidate %w", gates.ErrRefused), 422},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Token: token, Status: func() Status { return Status{State: "idle"} }, Rollouts: fakeRollouts{tt.err}}))
			defer srv.Close()
			c := &Client{URL: srv.URL, Token: token}
			st, err := c.Do(context.Background(), Undo, ActionRequest{Reason: "r", To: "v1"})
			var e *Error
			switch {
			case tt.status == 0 && (err != nil || st.LastDecision.Action != "undo" || st.LastDecision.Reason != "v1"):
				t.Fatalf("undo: %v, %+v", err, st)
			case tt.status != 0 && (!errors.As(err, &e) || e.Status != tt.status || !strings.Contains(e.Message, tt.err.Error())):
				t.Fatalf("error %v, want status %d with the server's message", err, tt.status)
			}
			if st, err := c.Status(context.Background()); err != nil || st.State != "idle" {
				t.Errorf("status: %v, %+v", err, st)
			}
		})
	}
	if _, err := (&Client{URL: "http://127.0.0.1:1", Token: token}).Status(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Errorf("nothing listening: %v, want ErrUnreachable", err)
	}
	srv := httptest.NewServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Token: token, Status: func() Status { return Status{} }}))
	defer srv.Close()
	var e *Error
	if _, err := (&Client{URL: srv.URL, Token: "wrong-token-0000000"}).Status(context.Background()); !errors.As(err, &e) || e.Status != 401 {
		t.Errorf("wrong token: %v, want a 401 Error", err)
	}
}
