package router

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// newH2CServer serves h on loopback over HTTP/1.1 and over HTTP/2 without
// TLS (prior knowledge), so a test can write HTTP/2 frames a Go client
// would never send.
func newH2CServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// h2Field is one header field of an HTTP/2 request, pseudo-headers
// included, in the order written.
type h2Field struct{ name, value string }

// h2Do sends one HTTP/2 request of exactly these fields (and body, if
// any) on a fresh prior-knowledge connection to addr, and returns the
// response's status and body.
func h2Do(t testing.TB, addr string, fields []h2Field, body []byte) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f.name, Value: f.value})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: body == nil}); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		if err := fr.WriteData(1, true, body); err != nil {
			t.Fatal(err)
		}
	}
	status := 0
	var out bytes.Buffer
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status, _ = strconv.Atoi(f.Value)
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the response: %v (status so far %d)", err, status)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				t.Fatal(err)
			}
			if f.StreamEnded() {
				return status, out.String()
			}
		case *http2.DataFrame:
			if f.StreamID != 1 {
				continue
			}
			out.Write(f.Data())
			if f.StreamEnded() {
				return status, out.String()
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return status, "RST_STREAM " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return status, "GOAWAY " + f.ErrCode.String()
		}
	}
}
