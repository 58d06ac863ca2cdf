// Package admin serves wafcanary's operator endpoints on their own
// listener: Prometheus metrics, health, and a token-protected API.
package admin

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is the admin listener's configuration.
type Config struct {
	// Listen is the admin address. It defaults to loopback; any other
	// address needs an explicit token.
	Listen string `mapstructure:"listen"`
	// Token is the bearer token the API requires. Empty on a loopback
	// listener means one generated and kept in the state directory.
	Token string `mapstructure:"token"`
}

// DefaultConfig is the admin section's default.
var DefaultConfig = Config{Listen: "127.0.0.1:9090"}

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen: want host:port, got %q", c.Listen)
	}
	if !IsLoopback(host) && c.Token == "" {
		return fmt.Errorf("token: required when listen is not a loopback address (%q)", c.Listen)
	}
	if c.Token != "" && len(c.Token) < 16 {
		return fmt.Errorf("token: must be at least 16 characters, got %d", len(c.Token))
	}
	return nil
}

// IsLoopback reports whether host names only the local machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// StatusFunc reports the state shown by GET /api/v1/status. It must be
// safe for concurrent use.
type StatusFunc func() any

// Handler returns the admin mux: /metrics and /healthz are open (the
// listener is loopback by default, and scrapers rarely carry tokens);
// everything under /api/ needs the bearer token.
func Handler(g prometheus.Gatherer, token string, status StatusFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(status())
	})
	mux.Handle("/api/", requireToken(token, api))
	return mux
}

func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wafcanary"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
