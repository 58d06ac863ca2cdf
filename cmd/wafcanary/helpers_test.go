package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/wafcanary/wafcanary/node"
)

// commandCase is a row of a table of command lines (checkCommand).
type commandCase struct {
	name  string
	args  []string
	exit  int
	lines []string // regular expressions that must each match some line
	err   string
}

// checkCommand runs the command line args and checks its exit code, that
// its error contains errPart (when not ""), and that each regular
// expression in lines matches some line of its output.
func checkCommand(t *testing.T, args []string, exit int, lines []string, errPart string) {
	t.Helper()
	out, _, err := runRoot(t, context.Background(), args...)
	if got := exitCode(err); got != exit {
		t.Fatalf("exit %d (%v), want %d; output:\n%s", got, err, exit, out)
	}
	if errPart != "" && (err == nil || !strings.Contains(err.Error(), errPart)) {
		t.Errorf("error %v, want it to contain %q", err, errPart)
	}
	for _, re := range lines {
		if !regexp.MustCompile(`(?m)` + re).MatchString(out) {
			t.Errorf("no line matches %s in:\n%s", re, out)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce  sync.Once
	binDir   string
	binPath  string
	binError error
)

// wafcanaryBinary is this package built with `go build`, once per test
// process: every test that runs the real binary (the fleet, the load
// test) shares it, and TestMain removes it at the end.
func wafcanaryBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binError = os.MkdirTemp("", "wafcanary-bin-"); binError != nil {
			return
		}
		binPath = filepath.Join(binDir, "wafcanary")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// clearEnv unsets every WAFCANARY_* variable for the duration of the test
// (t.Setenv restores them afterwards), so the environment the tests run in
// cannot leak into loadConfig.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "WAFCANARY_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to write from one goroutine while the
// test reads it from another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sqliPath is a request every CRS ruleset blocks.
const sqliPath = "/search?q=1%27%20OR%20%271%27%3D%271%27--"

// newUpstream is the application behind the proxy: it answers every
// request with 200 and names the path it saw.
func newUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw %s\n", r.URL.Path)
	}))
	t.Cleanup(up.Close)
	return up
}

func quietLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// testNode is a node as serve runs it, on loopback listeners, with the
// admin token in WAFCANARY_ADMIN_TOKEN as the README has the operator set
// it; edit adjusts the configuration first.
type testNode struct {
	n            *node.Node
	cfg          node.Config
	admin, proxy string
}

func startNode(t *testing.T, log *slog.Logger, edit func(*node.Config)) *testNode {
	t.Helper()
	const token = "cli-test-token-0123456789"
	cfg := node.Default()
	cfg.Listen, cfg.Admin.Listen, cfg.Admin.Token = "127.0.0.1:0", "127.0.0.1:0", token
	cfg.Upstream = newUpstream(t).URL
	cfg.StateDir = t.TempDir()
	cfg.Gates.CRSSuite = false
	if edit != nil {
		edit(&cfg)
	}
	n, err := node.New(cfg, log, "test")
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	al, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, pl, al) }()
	t.Cleanup(func() { cancel(); <-done })
	t.Setenv("WAFCANARY_ADMIN_TOKEN", token)
	return &testNode{n: n, cfg: cfg, admin: "http://" + al.Addr().String(), proxy: "http://" + pl.Addr().String()}
}
