package router

import (
	"crypto/tls"
	"net/http"
	"net/http/httputil"
	"reflect"
	"testing"
)

// setForwarded stands in for SetXForwarded (and a Set of X-Request-Id):
// the upstream must get the same headers, whatever Go's does.
func TestSetForwardedAsSetXForwarded(t *testing.T) {
	tests := []struct {
		name, remote, host string
		prior              []string
		tls                bool
	}{
		{"plain", "198.51.100.23:51234", "shop.example.com", nil, false},
		{"TLS", "198.51.100.23:51234", "shop.example.com", nil, true},
		{"IPv6 client", "[2001:db8::1]:443", "shop.example.com", nil, false},
		{"a trusted chain", "10.0.0.1:1", "shop.example.com", []string{"203.0.113.7, 10.0.0.3"}, false},
		{"a chain over two lines", "10.0.0.1:1", "shop.example.com", []string{"203.0.113.7", "10.0.0.3"}, false},
		{"an empty prior line", "10.0.0.1:1", "shop.example.com", []string{""}, false},
		{"no port in the peer: no X-Forwarded-For", "10.0.0.1", "shop.example.com", []string{"203.0.113.7"}, false},
		{"no host", "198.51.100.23:1", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := func() *httputil.ProxyRequest {
				in, _ := http.NewRequest("GET", "http://shop.example.com/", nil)
				in.RemoteAddr, in.Host = tt.remote, tt.host
				if tt.tls {
					in.TLS = &tls.ConnectionState{}
				}
				out := in.Clone(in.Context())
				out.Header = http.Header{"Accept": {"*/*"}}
				if tt.prior != nil {
					out.Header["X-Forwarded-For"] = tt.prior
				}
				return &httputil.ProxyRequest{In: in, Out: out}
			}
			want, got := pr(), pr()
			want.SetXForwarded()
			want.Out.Header.Set("X-Request-ID", "id-1")
			setForwarded(got, "id-1")
			if !reflect.DeepEqual(got.Out.Header, want.Out.Header) {
				t.Errorf("headers %q, SetXForwarded gives %q", got.Out.Header, want.Out.Header)
			}
			// The shared array must not leak one value into another.
			got.Out.Header["X-Forwarded-Host"] = append(got.Out.Header["X-Forwarded-Host"], "other")
			if got.Out.Header.Get("X-Forwarded-Proto") != want.Out.Header.Get("X-Forwarded-Proto") {
				t.Errorf("an append to X-Forwarded-Host changed X-Forwarded-Proto to %q", got.Out.Header.Get("X-Forwarded-Proto"))
			}
		})
	}
}
