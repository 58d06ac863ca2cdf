package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

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

func addPage(mux *http.ServeMux, status StatusFunc, rollouts Rollouts) {
	sub, _ := fs.Sub(uiFiles, "ui") // embedded: cannot fail
	files := http.FileServerFS(sub)
	mux.Handle("GET /{$}", securePage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})))
	mux.Handle("GET /ui/", securePage(http.StripPrefix("/ui/", files)))
	mux.Handle("GET /ui/state", securePage(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ps := PageState{Status: status(), History: []rollout.Entry{}}
		if rollouts != nil {
			h, err := rollouts.History(pageEntries)
			if err != nil {
				writeError(w, http.StatusInternalServerError, "journal: "+err.Error())
				return
			}
			for i := len(h) - 1; i >= 0; i-- { // newest first, as a person reads it
				ps.History = append(ps.History, h[i])
			}
		}
		writeJSON(w, http.StatusOK, ps)
	})))
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
