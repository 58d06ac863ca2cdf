package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

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
