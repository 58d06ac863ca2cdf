// Package admin serves wafcanary's operator endpoints on their own
// listener: Prometheus metrics, health, and a token-protected API.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wafcanary/wafcanary/certificate"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset"
)

// Config is the admin listener's configuration.
type Config struct {
	// Listen is the admin address. It defaults to loopback; any other
	// address needs an explicit token.
	Listen string `mapstructure:"listen"`
	// Token is the bearer token the API requires. Empty on a loopback
	// listener means one generated and kept in the state directory.
	Token string `mapstructure:"token"`
	// TLS serves the admin listener over HTTPS, optionally requiring
	// client certificates: a fleet's bearer tokens then never cross the
	// network in clear.
	TLS certificate.Config `mapstructure:"tls"`
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
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("tls.%w", err)
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
type StatusFunc func() Status

// Rollouts is the rollout controller as the admin API drives it.
// Implementations must be safe for concurrent use. Each call returns the
// status after it.
type Rollouts interface {
	Start(context.Context, StartRequest) (Status, error)
	// Do carries out one of Actions.
	Do(ctx context.Context, action Action, req ActionRequest) (Status, error)
	History(n int) ([]rollout.Entry, error)
	// Gates says what a start's gates are doing.
	Gates() GateProgress
}

// Explainer explains a blocked request by its ID.
type Explainer interface {
	Explain(id string) (Explanation, error)
}

// Rulesets serves the rulesets in service: `wafcanary tune` writes its
// candidate from the served baseline, which after a promotion is no
// longer the file on disk.
type Rulesets interface {
	ServedBaseline() (ruleset.Bundle, error)
}

// ErrInvalidRuleset is a ruleset that does not compile: answered 400 with
// kind "invalid_ruleset", so a client can tell it from another bad request.
var ErrInvalidRuleset = errors.New("ruleset does not compile")

// InvalidRuleset marks err, which says why a ruleset does not compile,
// as ErrInvalidRuleset without repeating that in its message.
func InvalidRuleset(err error) error { return invalidRuleset{err} }

type invalidRuleset struct{ error }

func (e invalidRuleset) Unwrap() error        { return e.error }
func (e invalidRuleset) Is(target error) bool { return target == ErrInvalidRuleset }

// ErrNotFound is an ID the server knows nothing of.
var ErrNotFound = errors.New("not found")

// Handler returns the admin mux: /metrics, /healthz and the status page
// (/, /ui/) are open (the listener is loopback by default, scrapers rarely
// carry tokens, and none of them shows a secret); everything under /api/
// needs the bearer token, and refuses a browser's cross-origin request. rollouts, explain and
// rulesets may be nil.
func Handler(g prometheus.Gatherer, token string, status StatusFunc, rollouts Rollouts, explain Explainer, rulesets Rulesets) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set(Header, "1")
		fmt.Fprintln(w, "ok")
	})
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, status())
	})
	if rollouts != nil {
		api.HandleFunc("POST /api/v1/rollout/start", func(w http.ResponseWriter, r *http.Request) {
			var req StartRequest
			if !decode(w, r, &req) {
				return
			}
			if req.Actor == "" {
				req.Actor = "api"
			}
			reply(w, func() (any, error) { return rollouts.Start(r.Context(), req) })
		})
		api.HandleFunc("POST /api/v1/rollout/{action}", func(w http.ResponseWriter, r *http.Request) {
			action := Action(r.PathValue("action"))
			if !slices.Contains(Actions, action) {
				writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q: want start, pause, resume, promote, rollback or undo", action))
				return
			}
			var req ActionRequest
			if !decode(w, r, &req) {
				return
			}
			if req.Actor == "" {
				req.Actor = "api"
			}
			reply(w, func() (any, error) { return rollouts.Do(r.Context(), action, req) })
		})
		api.HandleFunc("GET /api/v1/rollout/gates", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, rollouts.Gates())
		})
		api.HandleFunc("GET /api/v1/rollout/history", func(w http.ResponseWriter, r *http.Request) {
			n := 0
			if v := r.URL.Query().Get("n"); v != "" {
				var err error
				if n, err = strconv.Atoi(v); err != nil || n < 0 {
					writeError(w, http.StatusBadRequest, "n: want a non-negative integer, got "+strconv.Quote(v))
					return
				}
			}
			reply(w, func() (any, error) {
				h, err := rollouts.History(n)
				if h == nil {
					h = []rollout.Entry{}
				}
				return h, err
			})
		})
	}
	if explain != nil {
		api.HandleFunc("GET /api/v1/requests/{id}", func(w http.ResponseWriter, r *http.Request) {
			reply(w, func() (any, error) { return explain.Explain(r.PathValue("id")) })
		})
	}
	if rulesets != nil {
		api.HandleFunc("GET /api/v1/rulesets/baseline", func(w http.ResponseWriter, r *http.Request) {
			reply(w, func() (any, error) { return rulesets.ServedBaseline() })
		})
	}
	mux.Handle("/api/", requireToken(token, api))
	addPage(mux, status, rollouts)
	return mux
}

// decode reads a JSON body strictly; an empty body is an empty request.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

func reply(w http.ResponseWriter, f func() (any, error)) {
	v, err := f()
	switch {
	case errors.Is(err, rollout.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, gates.ErrRefused):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, ErrInvalidRuleset):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "kind": KindInvalidRuleset})
	case errors.Is(err, rollout.ErrBadRequest):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// KindInvalidRuleset is the kind of an ErrInvalidRuleset answer.
const KindInvalidRuleset = "invalid_ruleset"

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused: the admin API acts only on requests from its own page or a client without an Origin")
			return
		}
		got := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wafcanary"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
