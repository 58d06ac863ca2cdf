package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wafcanary/wafcanary/rollout"
)

// The status page's files, embedded: the page works with no network
// beyond this listener, and its assets change only with the binary.
//
//go:embed ui
var uiFiles embed.FS

// PageState is what the status page polls, GET /ui/state: the status and
// the last journal entries. It needs no token: it shows what /metrics
// shows, and neither carries a secret.
type PageState struct {
	Status  Status          `json:"status"`
	History []rollout.Entry `json:"history"`
}

// pageEntries is how many journal entries the page shows.
const pageEntries = 200

// securePage sets the headers a page that drives a rollout needs: its own
// scripts and styles only, no framing, no referrer, no sniffing.
func securePage(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func addPage(mux *http.ServeMux, hosts hostCheck, page *pageState) {
	sub, _ := fs.Sub(uiFiles, "ui") // embedded: cannot fail
	files := http.FileServerFS(sub)
	mux.Handle("GET /{$}", hosts.check(securePage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	}))))
	mux.Handle("GET /ui/", hosts.check(securePage(http.StripPrefix("/ui/", files))))
	mux.Handle("GET /ui/state", hosts.check(securePage(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		code, body := page.answer()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(body)
	}))))
}

// pageMaxAge is how long an answer of GET /ui/state is served again: the
// page polls every 2 s, and many open pages must cost one read.
const pageMaxAge = time.Second

// pageState answers GET /ui/state: one answer, built from the status and
// the journal's tail, shared by every poller for up to pageMaxAge and
// built again at once after an action through this API. It is safe for
// concurrent use: one poller builds an answer at a time, and the others
// wait for it rather than read the journal themselves.
type pageState struct {
	status   StatusFunc
	rollouts Rollouts // nil: no history
	now      func() time.Time
	// changes counts the actions taken; an answer built before one is
	// stale however young.
	changes atomic.Uint64

	mu    sync.Mutex // held while building an answer
	body  []byte
	code  int
	built time.Time
	gen   uint64 // changes when body was built
}

func newPageState(status StatusFunc, rollouts Rollouts, now func() time.Time) *pageState {
	return &pageState{status: status, rollouts: rollouts, now: now}
}

// changed marks the answer stale: an action was taken.
func (p *pageState) changed() { p.changes.Add(1) }

// answer returns the status code and body of GET /ui/state.
func (p *pageState) answer() (int, []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gen := p.changes.Load()
	if age := p.now().Sub(p.built); p.body != nil && gen == p.gen && age >= 0 && age < pageMaxAge {
		return p.code, p.body
	}
	// Read before building: an action during the build makes it stale.
	p.code, p.body = p.build()
	p.built, p.gen = p.now(), gen
	return p.code, p.body
}

func (p *pageState) build() (int, []byte) {
	ps := PageState{Status: p.status(), History: []rollout.Entry{}}
	if p.rollouts != nil {
		h, err := p.rollouts.History(pageEntries)
		if err != nil {
			return marshalAnswer(http.StatusInternalServerError, map[string]string{"error": "journal: " + err.Error()})
		}
		for i := len(h) - 1; i >= 0; i-- { // newest first, as a person reads it
			ps.History = append(ps.History, h[i])
		}
	}
	return marshalAnswer(http.StatusOK, ps)
}

// sameOrigin refuses a state-changing request a browser sent from another
// origin: the token is only ever sent as a header the page sets itself,
// but a refusal here does not depend on that. Requests without Origin
// (the CLI, curl) are not a browser's cross-origin requests.
func sameOrigin(r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host) && (u.Scheme == "http" || u.Scheme == "https")
}
