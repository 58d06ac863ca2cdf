package verdict

import (
	"net"
	"net/netip"
	"strings"
)

// HostName is a Host header as scopes and host lists compare it: lower
// case, without a port or a trailing dot.
func HostName(host string) string {
	// Without a colon there is no port, and SplitHostPort would allocate
	// an error to say so.
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
}

// ValidHostName reports whether h names one host as HostName writes it,
// so that a host list, a scope and an exclusion's Host condition can all
// hold it: labels of lower-case letters, digits, '-' and '_' joined by
// single dots, or an IPv4 or IPv6 address (no brackets, no zone); at
// most 253 bytes. A port, a wildcard, a comma (two names in one entry),
// or an empty label (".example") is refused: no request's host would
// ever equal it. Callers name their config key in the error.
func ValidHostName(h string) bool {
	if h == "" || len(h) > 253 || h != HostName(h) {
		return false
	}
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
