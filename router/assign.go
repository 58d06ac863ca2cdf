package router

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/wafcanary/wafcanary/verdict"
)

// Assigner maps a sticky key to an arm. It is a pure function of the key,
// the secret and the share: a key's bucket never changes, and a key is on
// the candidate exactly when its bucket is below the share, so raising the
// share only ever moves keys from baseline to candidate.
type Assigner struct {
	secret []byte
}

// NewAssigner returns an Assigner keyed with secret.
func NewAssigner(secret []byte) Assigner {
	return Assigner{secret: append([]byte(nil), secret...)}
}

// Bucket returns the key's position in 0..MaxShare-1. The hash is keyed so
// that a client who controls its key (a header, a cookie) cannot compute
// which arm a value lands on.
func (a Assigner) Bucket(key string) Share { return a.bucket("", key) }

// bucket is the Bucket of the key space+key, which it hashes in two
// writes: the digest is that of the concatenation, which a request's key
// is thus spared building.
func (a Assigner) bucket(space, key string) Share {
	h := sha256.New()
	h.Write(a.secret)
	h.Write([]byte{0}) // separates secret from key
	h.Write([]byte(space))
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return Share(binary.BigEndian.Uint64(h.Sum(sum[:0])) % uint64(MaxShare))
}

// Assign returns the arm for key under the candidate share.
func (a Assigner) Assign(key string, share Share) verdict.Arm { return armOf(a.Bucket(key), share) }

// armOf is the assignment rule, the one place it is written: a bucket below
// the share is the candidate's.
func armOf(bucket, share Share) verdict.Arm {
	if share > 0 && bucket < share {
		return verdict.Candidate
	}
	return verdict.Baseline
}

// stickyKey says where the sticky key comes from.
type stickyKey struct {
	kind string // "ip", "header" or "cookie"
	name string
}

func parseStickyKey(s string) (stickyKey, error) {
	if s == "" || s == "ip" {
		return stickyKey{kind: "ip"}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" || (kind != "header" && kind != "cookie") {
		return stickyKey{}, fmt.Errorf(`want "ip", "header:NAME" or "cookie:NAME", got %q`, s)
	}
	if kind == "header" {
		name = http.CanonicalHeaderKey(name)
	}
	return stickyKey{kind: kind, name: name}, nil
}

// of returns the sticky key of a request with these headers, as its key
// space ("h:", "c:" or "ip:") and its value, hashed as one (bucket).
// Requests that lack the configured header or cookie fall back to the
// client address; the spaces keep the kinds of key from colliding.
func (k stickyKey) of(h http.Header, clientIP string) (space, key string) {
	switch k.kind {
	case "header":
		if v := h.Get(k.name); v != "" {
			return "h:", v
		}
	case "cookie":
		if cs := (&http.Request{Header: h}).CookiesNamed(k.name); len(cs) > 0 && cs[0].Value != "" {
			return "c:", cs[0].Value
		}
	}
	return "ip:", clientIP
}

// given is the sticky key for a value a front-end was told directly:
// the configured header's or cookie's key space, so that the same value
// gives the same key as of; with "ip" configured, a space of its own.
func (k stickyKey) given(v string) (space, key string) {
	switch k.kind {
	case "header":
		return "h:", v
	case "cookie":
		return "c:", v
	}
	return "k:", v
}

// clientAddr finds the client's address. Behind trusted proxies the
// X-Forwarded-For chain is walked from the right, skipping trusted hops,
// so a client cannot spoof its address by sending the header itself.
type clientAddr struct {
	trusted []netip.Prefix
}

func newClientAddr(cidrs []string) (clientAddr, error) {
	c := clientAddr{}
	for _, s := range cidrs {
		p, err := parsePrefix(s)
		if err != nil {
			return c, err
		}
		c.trusted = append(c.trusted, p)
	}
	return c, nil
}

func (c clientAddr) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// resolve returns the client IP and port of a request from peer (the
// connection's remote host:port) with these headers. The port is the
// peer's and is only meaningful when no proxy sits in between.
func (c clientAddr) resolve(peer string, h http.Header) (ip string, port int, peerTrusted bool) {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		host, _, _ := net.SplitHostPort(peer)
		return host, 0, false
	}
	addr := ap.Addr().Unmap()
	host := peer[:strings.LastIndexByte(peer, ':')] // ParseAddrPort found the port after it
	ip, port = addrString(addr, strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")), int(ap.Port())
	if len(c.trusted) == 0 || !c.isTrusted(addr) {
		return ip, port, false
	}
	hops := h.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		// The hop's comma-separated parts from the right, cut in place
		// rather than split into a new slice.
		rest := hops[i]
		for more := true; more; {
			part := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				part, rest = rest[j+1:], rest[:j]
			} else {
				more = false
			}
			part = strings.TrimSpace(part)
			a, err := netip.ParseAddr(part)
			if err != nil {
				return ip, port, true // garbage in the chain: stop at the last good hop
			}
			a = a.Unmap()
			ip = addrString(a, part)
			if !c.isTrusted(a) {
				return ip, port, true
			}
		}
	}
	return ip, port, true
}

// addrString is a.String(), which is what Coraza and the logs are given,
// but it returns text, the address as the request wrote it, when that
// already reads the same: always for an IPv4 peer (netip refuses other
// spellings of one). Only another spelling (an IPv4-mapped or
// uncompressed IPv6 address) costs a new string.
func addrString(a netip.Addr, text string) string {
	var buf [64]byte // the longest IPv6 address with a zone fits
	if string(a.AppendTo(buf[:0])) == text {
		return text
	}
	return a.String()
}
