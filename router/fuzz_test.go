package router

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzStickyKey: any sticky_key the config accepts gives every request a
// key, from its own space (h:, c:, ip:), the same key each time.
func FuzzStickyKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, spec, header, cookie, ip string) {
		k, err := parseStickyKey(spec)
		if err != nil {
			return
		}
		r, _ := http.NewRequest("GET", "http://example.com/", nil)
		if r == nil {
			return
		}
		if k.kind == "header" {
			r.Header.Set(k.name, header)
		}
		r.Header.Set("Cookie", cookie)
		space, key := k.of(r.Header, ip)
		got := space + key
		if space2, key2 := k.of(r.Header, ip); space2 != space || key2 != key {
			t.Fatalf("%q: key not stable", spec)
		}
		switch {
		case strings.HasPrefix(got, "h:"):
			if k.kind != "header" || got != "h:"+r.Header.Get(k.name) {
				t.Fatalf("%q: header key %q", spec, got)
			}
		case strings.HasPrefix(got, "c:"):
			if c, err := r.Cookie(k.name); k.kind != "cookie" || err != nil || got != "c:"+c.Value {
				t.Fatalf("%q: cookie key %q", spec, got)
			}
		case got != "ip:"+ip:
			t.Fatalf("%q: key %q, want the client address's", spec, got)
		}
	})
}

// FuzzRequestID: an incoming X-Request-ID is kept only when it is a short
// token that cannot inject into a log line; otherwise a fresh one, itself
// valid, replaces it. The same ID a second time is never given twice.
func FuzzRequestID(f *testing.F) {
	f.Fuzz(func(t *testing.T, id string) {
		ids := newRequestIDs(4)
		r := &http.Request{Header: http.Header{"X-Request-Id": {id}}}
		got := ids.of(r.Header)
		if !validRequestID(got) || len(got) > 128 || strings.ContainsAny(got, "\r\n\" \\=") {
			t.Fatalf("request ID %q for %q", got, id)
		}
		if validRequestID(id) != (got == id) {
			t.Fatalf("%q valid %v, kept %v", id, validRequestID(id), got == id)
		}
		again := ids.of(r.Header)
		if again == got || !validRequestID(again) {
			t.Fatalf("%q given twice: %q then %q", id, got, again)
		}
	})
}

// FuzzClientAddr: whatever a client puts in X-Forwarded-For, the address
// found is a real address, and the peer's own unless the peer is trusted.
func FuzzClientAddr(f *testing.F) {
	f.Fuzz(func(t *testing.T, trusted, peer, xff string) {
		c, err := newClientAddr([]string{trusted})
		if err != nil {
			return
		}
		ap, err := netip.ParseAddrPort(peer)
		if err != nil {
			return
		}
		ip, _, peerTrusted := c.resolve(peer, http.Header{"X-Forwarded-For": {xff}})
		a, err := netip.ParseAddr(ip)
		if err != nil {
			t.Fatalf("client address %q from peer %q, X-Forwarded-For %q", ip, peer, xff)
		}
		if !peerTrusted && a != ap.Addr().Unmap() {
			t.Fatalf("untrusted peer %q, yet the address is %q from X-Forwarded-For %q", peer, ip, xff)
		}
	})
}
