package spoa

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/spop"
)

// Whatever HAProxy (or a peer pretending to be it) sends as a coraza-req
// message, the agent reads it or refuses it with an error, never panics;
// a message it reads has a header map whose names are canonical, no Host
// or Transfer-Encoding left in it (they live in their fields, as for the
// HTTP proxy), and a URI that begins with the path it was sent.
func FuzzReadRequest(f *testing.F) {
	f.Add("GET", "/search", "q=1", "host: shop.example\r\nuser-agent: x\r\n\r\n", []byte(nil), "body", int64(-1), false)
	f.Add("POST", "/t", "", "", []byte("\x04host\x0cshop.example\x0ecookie\x05uid=1\x00\x00"), "a=b", int64(3), true)
	f.Add("GET", "/", "", "bad line\r\n", []byte("\xf0"), "", int64(0), true)
	f.Fuzz(func(t *testing.T, method, path, query, text string, bin []byte, body string, size int64, binary bool) {
		headers := spop.String(text)
		if binary {
			headers = spop.Binary(bin)
		}
		m := msg(method, path, query, http.Header{}, body)
		for i := range m.Args {
			if m.Args[i].Name == "headers" {
				m.Args[i].Value = headers
			}
		}
		if size >= 0 {
			m.Args = append(m.Args, spop.KV{Name: "body-size", Value: spop.Int64(size)})
		}
		in, err := readRequest(m)
		if err != nil {
			return
		}
		for k := range in.req.Header {
			if k != http.CanonicalHeaderKey(k) || k == "Host" || k == "Transfer-Encoding" {
				t.Fatalf("header %q left in the map", k)
			}
		}
		if !strings.HasPrefix(in.req.URI, path) {
			t.Fatalf("URI %q from path %q", in.req.URI, path)
		}
	})
}
