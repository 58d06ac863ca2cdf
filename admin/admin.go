// Package admin serves wafcanary's operator endpoints on their own
// listener: Prometheus metrics, health, and a token-protected API.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wafcanary/wafcanary/capture"
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
	// listener without users means one generated and kept in the state
	// directory. Its holder acts as one admin identity (TokenIdentity).
	Token string `mapstructure:"token"`
	// Users are the named identities and their roles: each person's own
	// token (its hash) or client certificate, so the journal says who did
	// what and an approval can be told from its rollout's start.
	Users []User `mapstructure:"users"`
	// TLS serves the admin listener over HTTPS, optionally requiring
	// client certificates: a fleet's bearer tokens then never cross the
	// network in clear.
	TLS certificate.Config `mapstructure:"tls"`
	// AllowedHosts are the host names, besides IP addresses and
	// localhost, that the status page, /ui/ and /api/ answer to in the
	// Host header: a page on another name rebound to this address (DNS
	// rebinding) is refused. /metrics and /healthz answer any Host.
	AllowedHosts []string `mapstructure:"allowed_hosts"`
}

// DefaultConfig is the admin section's default.
var DefaultConfig = Config{Listen: "127.0.0.1:9090", Users: []User{}, AllowedHosts: []string{}}

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen: want host:port, got %q", c.Listen)
	}
	if !IsLoopback(host) && c.Token == "" && len(c.Users) == 0 {
		return fmt.Errorf("token: required when listen is not a loopback address (%q), unless users are given", c.Listen)
	}
	if c.Token != "" && len(c.Token) < 16 {
		return fmt.Errorf("token: must be at least 16 characters, got %d", len(c.Token))
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("tls.%w", err)
	}
	if err := c.validateUsers(); err != nil {
		return err
	}
	for i, h := range c.AllowedHosts {
		if !isHostName(h) {
			return fmt.Errorf("allowed_hosts[%d]: want a host name such as wafcanary.ops.svc (no scheme, port, path or wildcard; IP addresses and localhost need no entry), got %q", i, h)
		}
	}
	return nil
}

// Hosts are the names, besides IP addresses and localhost, that the page
// and the API answer to (Options.AllowedHosts): allowed_hosts, and the
// host of listen when it is a name, which clients configured alike reach
// it by.
func (c Config) Hosts() []string {
	hosts := slices.Clone(c.AllowedHosts)
	if h, _, err := net.SplitHostPort(c.Listen); err == nil && isHostName(h) {
		hosts = append(hosts, h)
	}
	return hosts
}

// isHostName reports whether h is a DNS name: dot-separated labels of
// letters, digits, hyphens and underscores, 1 to 63 characters each, not
// all digits at the end (that would be an IP address).
func isHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	_, err := netip.ParseAddr(h)
	return err != nil
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

// Blocks serves the captures grouped by signature: `wafcanary blocks`,
// the page's Blocks panel, and `tune sig:...`. A ref is a signature as
// shown (sig: and at least 8 hex digits). Implementations must be safe
// for concurrent use.
type Blocks interface {
	// Blocks lists the n signatures seen most recently.
	Blocks(n int) (BlockList, error)
	// Block returns one signature with the requests it keeps.
	Block(ref string) (BlockGroup, error)
	// Pin pins or unpins a signature; either, asked again, succeeds.
	Pin(ref string, pinned bool) (capture.Summary, error)
}

// Rulesets serves the rulesets in service: `wafcanary tune` writes its
// candidate from the served baseline, which after a promotion is no
// longer the file on disk.
type Rulesets interface {
	ServedBaseline() (ruleset.Bundle, error)
	// Ruleset is the bundle of a version kept here: one in service, a
	// kept baseline, or the last rollout's candidate (rolled back, its
	// new blocks are what `tune` writes the candidate's exceptions from);
	// ErrNotFound for any other.
	Ruleset(ctx context.Context, version string) (ruleset.Bundle, error)
}

// Exceptions lists the exceptions of the baseline in service
// (`wafcanary exceptions`). Implementations must be safe for concurrent
// use.
type Exceptions interface {
	Exceptions(ctx context.Context) (ExceptionList, error)
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

// Conflict marks err, which says why, as a request the server's state
// refuses (answered 409), without repeating that in its message.
func Conflict(err error) error { return conflict{err} }

type conflict struct{ error }

func (e conflict) Unwrap() error { return e.error }

// errConflict is what Conflict's errors are.
var errConflict = errors.New("conflict")

func (e conflict) Is(target error) bool { return target == errConflict }

// Options are what Handler serves. Gatherer and Status are required;
// Rollouts, Explain, Rulesets and Blocks may be nil (their endpoints are
// then absent).
type Options struct {
	Gatherer prometheus.Gatherer
	// Token is admin.token, the bearer token of one shared admin
	// identity; empty, with no Users, refuses every call.
	Token string
	// Users are admin.users: the named identities /api/ knows, by token
	// hash or client certificate subject, and their roles.
	Users    []User
	Status   StatusFunc
	Rollouts Rollouts
	Explain  Explainer
	Rulesets Rulesets
	Blocks   Blocks
	// Exceptions serves GET /api/v1/exceptions; nil leaves it out.
	Exceptions Exceptions
	// AllowedHosts are admin.allowed_hosts: the names, besides IP
	// addresses and localhost, the page, /ui/ and /api/ answer to.
	AllowedHosts []string
	// Now is the clock of the page state's cache; nil is time.Now.
	Now func() time.Time
}

// Handler returns the admin mux: /metrics, /healthz and the status page
// (/, /ui/) are open (the listener is loopback by default, scrapers rarely
// carry tokens, and none of them shows a secret); everything under /api/
// needs a credential (a user's token or client certificate, or
// admin.token) whose role allows the route (Role), and refuses a
// browser's cross-origin request.
// The page, /ui/ and /api/ answer only a Host that is an IP address,
// localhost or one of o.AllowedHosts, so that a page on another name
// rebound to this address cannot read them; /metrics and /healthz answer
// any Host (Prometheus scrapes by service name).
func Handler(o Options) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set(Header, "1")
		fmt.Fprintln(w, "ok")
	})
	page := newPageState(o.Status, o.Rollouts, o.Now)
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/status", role(Viewer, "read the status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Status())
	}))
	if rollouts := o.Rollouts; rollouts != nil {
		api.HandleFunc("POST /api/v1/rollout/start", func(w http.ResponseWriter, r *http.Request) {
			var req StartRequest
			if !decode(w, r, &req) {
				return
			}
			if !allowed(w, r, startRole(req), "start a rollout"+startOverrides(req)) || !validTicket(w, req.Ticket) {
				return
			}
			req.By, _ = IdentityOf(r.Context())
			defer page.changed()
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
			if req.Emergency && (action != Promote || strings.TrimSpace(req.Reason) == "") {
				writeError(w, http.StatusBadRequest, "emergency: only a promote takes it, and with a reason (journalled and notified as an emergency)")
				return
			}
			if !allowed(w, r, actionRole(action, req), actionWhat(action, req)) || !validTicket(w, req.Ticket) {
				return
			}
			req.By, _ = IdentityOf(r.Context())
			// The page polls right after an action: it must see it.
			defer page.changed()
			reply(w, func() (any, error) { return rollouts.Do(r.Context(), action, req) })
		})
		api.HandleFunc("GET /api/v1/rollout/gates", role(Viewer, "read the gates", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, rollouts.Gates())
		}))
		api.HandleFunc("GET /api/v1/rollout/history", role(Viewer, "read the history", func(w http.ResponseWriter, r *http.Request) {
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
		}))
	}
	if explain := o.Explain; explain != nil {
		api.HandleFunc("GET /api/v1/requests/{id}", role(Viewer, "explain a request", func(w http.ResponseWriter, r *http.Request) {
			reply(w, func() (any, error) { return explain.Explain(r.PathValue("id")) })
		}))
	}
	if exceptions := o.Exceptions; exceptions != nil {
		api.HandleFunc("GET /api/v1/exceptions", role(Viewer, "list the exceptions", func(w http.ResponseWriter, r *http.Request) {
			reply(w, func() (any, error) { return exceptions.Exceptions(r.Context()) })
		}))
	}
	if blocks := o.Blocks; blocks != nil {
		api.HandleFunc("GET /api/v1/blocks", role(Viewer, "list the blocks", func(w http.ResponseWriter, r *http.Request) {
			n := DefaultBlocks
			if v := r.URL.Query().Get("n"); v != "" {
				var err error
				if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxBlocks {
					writeError(w, http.StatusBadRequest, fmt.Sprintf("n: want an integer from 1 to %d, got %q", MaxBlocks, v))
					return
				}
			}
			reply(w, func() (any, error) { return blocks.Blocks(n) })
		}))
		api.HandleFunc("GET /api/v1/blocks/{sig}", role(Viewer, "read a block", func(w http.ResponseWriter, r *http.Request) {
			reply(w, func() (any, error) { return blocks.Block(r.PathValue("sig")) })
		}))
		for action, pin := range map[string]bool{"pin": true, "unpin": false} {
			api.HandleFunc("POST /api/v1/blocks/{sig}/"+action, role(Operator, action+" a block", func(w http.ResponseWriter, r *http.Request) {
				if !decode(w, r, &struct{}{}) {
					return
				}
				reply(w, func() (any, error) { return blocks.Pin(r.PathValue("sig"), pin) })
			}))
		}
	}
	if rulesets := o.Rulesets; rulesets != nil {
		api.HandleFunc("GET /api/v1/rulesets/baseline", role(Viewer, "read a ruleset", func(w http.ResponseWriter, r *http.Request) {
			reply(w, func() (any, error) { return rulesets.ServedBaseline() })
		}))
		api.HandleFunc("GET /api/v1/rulesets/{version}", role(Viewer, "read a ruleset", func(w http.ResponseWriter, r *http.Request) {
			reply(w, func() (any, error) { return rulesets.Ruleset(r.Context(), r.PathValue("version")) })
		}))
	}
	hosts := newHostCheck(o.AllowedHosts)
	mux.Handle("/api/", hosts.check(requireIdentity(newAuthenticator(o.Token, o.Users), api)))
	addPage(mux, hosts, page)
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
	case errors.Is(err, rollout.ErrSameApprover):
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error(), "kind": KindForbidden})
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
	case errors.Is(err, errConflict):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// The signatures GET /api/v1/blocks lists: by default, and at most.
const (
	DefaultBlocks = 50
	MaxBlocks     = 1000
)

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

// marshalAnswer is writeJSON's body, kept to be served again.
func marshalAnswer(code int, v any) (int, []byte) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return http.StatusInternalServerError, []byte(`{"error": "encoding the answer failed"}` + "\n")
	}
	return code, b.Bytes()
}

// MaxTicketBytes bounds a ticket: an ID or a URL, journalled with every
// entry of the action.
const MaxTicketBytes = 200

// validTicket answers 400 and returns false for a ticket that is too
// long or holds a control character (it is printed in history, status
// and notifications).
func validTicket(w http.ResponseWriter, ticket string) bool {
	ok := len(ticket) <= MaxTicketBytes && utf8.ValidString(ticket)
	for _, r := range ticket {
		ok = ok && unicode.IsPrint(r)
	}
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ticket: want at most %d bytes of printable text (an ID or a URL)", MaxTicketBytes))
	}
	return ok
}

// startRole is the role a start needs: an operator's, or an approver's to
// start despite the gates or the base.
func startRole(req StartRequest) Role {
	if req.OverrideGates != "" || req.ForceBase != "" {
		return Approver
	}
	return Operator
}

func startOverrides(req StartRequest) string {
	switch {
	case req.OverrideGates != "":
		return " with --override-gates"
	case req.ForceBase != "":
		return " with --force-base"
	}
	return ""
}

// actionRole is the role an action needs. Every promotion is an
// approval; rollback, the emergency action, is an operator's.
func actionRole(action Action, req ActionRequest) Role {
	switch {
	case req.Emergency:
		return Admin
	case action == Promote:
		return Approver
	}
	return Operator
}

func actionWhat(action Action, req ActionRequest) string {
	switch {
	case req.Emergency:
		return "promote as an emergency"
	case action == Promote && req.Full:
		return "promote --full"
	}
	return string(action)
}
