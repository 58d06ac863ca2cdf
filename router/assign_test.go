package router

import (
	"net/http"
	"testing"
)

func TestClientAddrResolve(t *testing.T) {
	c, err := newClientAddr([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, peer  string
		xff         []string
		wantIP      string
		wantPort    int
		wantTrusted bool
	}{
		{"IPv4 peer", "198.51.100.23:51234", nil, "198.51.100.23", 51234, false},
		{"IPv6 peer", "[2001:db8::1]:443", nil, "2001:db8::1", 443, false},
		// Spelt otherwise than netip writes it: the canonical form, as before.
		{"IPv6 peer, uncompressed", "[2001:db8:0:0:0:0:0:1]:443", nil, "2001:db8::1", 443, false},
		{"IPv6 peer, upper case", "[2001:DB8::A]:443", nil, "2001:db8::a", 443, false},
		{"IPv4-mapped peer", "[::ffff:198.51.100.7]:80", nil, "198.51.100.7", 80, false},
		{"peer without a port", "198.51.100.23", nil, "", 0, false},
		{"untrusted peer: its X-Forwarded-For ignored", "198.51.100.23:1", []string{"203.0.113.7"}, "198.51.100.23", 1, false},
		{"trusted peer: the client from X-Forwarded-For", "10.0.0.1:1", []string{"203.0.113.7"}, "203.0.113.7", 1, true},
		{"trusted hops skipped from the right", "10.0.0.1:1", []string{"203.0.113.7, 10.0.0.3,10.0.0.2"}, "203.0.113.7", 1, true},
		{"over several lines", "10.0.0.1:1", []string{"203.0.113.7, 198.51.100.9", "10.0.0.2"}, "198.51.100.9", 1, true},
		{"garbage stops at the last good hop", "10.0.0.1:1", []string{"203.0.113.7, junk, 10.0.0.2"}, "10.0.0.2", 1, true},
		{"empty part is garbage", "10.0.0.1:1", []string{"203.0.113.7,,10.0.0.2"}, "10.0.0.2", 1, true},
		{"mapped and uncompressed hops written canonically", "10.0.0.1:1", []string{"::ffff:203.0.113.8", "2001:db8:0:0:0:0:0:2"}, "2001:db8::2", 1, true},
		{"mapped hop", "10.0.0.1:1", []string{"::ffff:203.0.113.8"}, "203.0.113.8", 1, true},
		{"only trusted hops: the leftmost", "10.0.0.1:1", []string{"10.0.0.9, 10.0.0.2"}, "10.0.0.9", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.xff {
				h.Add("X-Forwarded-For", v)
			}
			ip, port, trusted := c.resolve(tt.peer, h)
			if ip != tt.wantIP || port != tt.wantPort || trusted != tt.wantTrusted {
				t.Errorf("resolve(%q, %q) = %q, %d, %v; want %q, %d, %v", tt.peer, tt.xff, ip, port, trusted, tt.wantIP, tt.wantPort, tt.wantTrusted)
			}
		})
	}
}

// The request path hashes a key's space and value apart (bucket); the
// bucket must be the one of the whole key, or clients would change arms.
func TestBucketOfParts(t *testing.T) {
	a := NewAssigner([]byte("test-secret-0123456789"))
	for _, k := range [][2]string{{"ip:", "198.51.100.23"}, {"h:", "client-42"}, {"c:", "3f9a1c0b"}, {"k:", ""}, {"", "client-7"}} {
		if got, want := a.bucket(k[0], k[1]), a.Bucket(k[0]+k[1]); got != want {
			t.Errorf("bucket(%q, %q) = %d, Bucket of the whole key %d", k[0], k[1], got, want)
		}
	}
}
