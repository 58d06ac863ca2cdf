package verdict

import (
	"strings"
	"testing"
)

// One rule for the host names of start --hosts (router), scope.hosts
// (evidence) and tune --host and inferred scopes (exclusion); before it
// the three disagreed on commas, case and underscores.
func TestValidHostName(t *testing.T) {
	for _, c := range []struct {
		host string
		ok   bool
	}{
		{"shop.example", true},
		{"localhost", true},
		{"my_service.internal", true}, // underscores are in real internal names; tune refused them
		{"xn--bcher-kva.example", true},
		{"192.0.2.1", true},
		{"2001:db8::1", true},
		{strings.Repeat("a.", 126) + "a", true}, // 253 bytes
		{strings.Repeat("a.", 126) + "ab", false},
		{"", false},
		{"a.example,b.example", false}, // why: two names in one entry; router refused it, a scope did not
		{"Shop.example", false},        // HostName would lower it: it could never equal a request's host
		{"shop.example.", false},
		{"shop.example:8080", false},
		{"[2001:db8::1]", false},
		{"2001:DB8::1", false},
		{"fe80::1%eth0", false},
		{"*.example", false},
		{".example", false},
		{"a..example", false},
		{"shop example", false},
		{"shop.example/path", false},
		{"user@shop.example", false},
		{"bücher.example", false},
		{"shop.example#x", false},
	} {
		if got := ValidHostName(c.host); got != c.ok {
			t.Errorf("ValidHostName(%q) = %v, want %v", c.host, got, c.ok)
		}
	}
}
