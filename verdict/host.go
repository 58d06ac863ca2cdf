package verdict

import (
	"net"
	"strings"
)

// HostName is a Host header as scopes and host lists compare it: lower
// case, without a port or a trailing dot.
func HostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
}
