package admin

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// hostCheck refuses a request whose Host names neither an IP address,
// nor localhost, nor one of admin.allowed_hosts. A browser sends the name
// it resolved in Host: a page on an attacker's name that resolves to this
// listener (DNS rebinding) reaches it as the browser's own origin, so
// only the Host says it is not for us. IP literals cannot be rebound.
type hostCheck struct{ allowed []string }

func newHostCheck(allowed []string) hostCheck {
	h := hostCheck{}
	for _, a := range allowed {
		h.allowed = append(h.allowed, strings.TrimSuffix(strings.ToLower(a), "."))
	}
	return h
}

// allows reports whether host (the Host header, port included or not)
// may reach the page and the API.
func (h hostCheck) allows(host string) bool {
	name := host
	if n, _, err := net.SplitHostPort(host); err == nil {
		name = n
	}
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")), ".")
	if name == "" {
		return false
	}
	if _, err := netip.ParseAddr(name); err == nil || name == "localhost" {
		return true
	}
	return slices.Contains(h.allowed, name)
}

func (h hostCheck) check(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.allows(r.Host) {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "Host "+stringQuote(r.Host)+" refused: the admin page and API answer only an IP address, localhost, or a name listed in admin.allowed_hosts (a guard against DNS rebinding); /metrics and /healthz answer any name", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// stringQuote quotes s for a plain-text answer, cut to a length a person
// reads: the Host header is the client's, of any length.
func stringQuote(s string) string {
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s) + `"`
}
