package spop

import (
	"context"
	"net"
	"strings"
	"testing"
)

// typicalRequest is a coraza-req message for a browser's POST: the
// golden arguments with some 700 bytes of headers and a 1 KiB form body.
func typicalRequest() []Message {
	args := append([]KV(nil), goldenRequest[0].Args...)
	for i := range args {
		switch args[i].Name {
		case "headers":
			args[i].Value = String("Host: example.org\r\n" +
				"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
				"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
				"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n" +
				"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1024\r\n" +
				"Cookie: session=" + strings.Repeat("c", 300) + "\r\n")
		case "body":
			args[i].Value = Binary([]byte(strings.Repeat("field=value&", 85) + "end="))
		}
	}
	return []Message{{Name: "coraza-req", Args: args}}
}

func BenchmarkEncodeNotify(b *testing.B) {
	msgs := typicalRequest()
	buf, _ := AppendNotify(nil, 281, 5, msgs)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendNotify(buf[:0], 281, 5, msgs)
	}
}

func BenchmarkDecodeNotify(b *testing.B) {
	frame, _ := AppendNotify(nil, 281, 5, typicalRequest())
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := DecodeFrame(frame[4:])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeMessages(f.Payload, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeAck(b *testing.B) {
	buf, _ := AppendAck(nil, 281, 5, goldenActions)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendAck(buf[:0], 281, 5, goldenActions)
	}
}

func BenchmarkDecodeAck(b *testing.B) {
	frame, _ := AppendAck(nil, 281, 5, goldenActions)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, _ := DecodeFrame(frame[4:])
		if _, err := DecodeActions(f.Payload, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerRoundTrip is one NOTIFY answered with an ACK through the
// Server over loopback TCP, one at a time; allocations include the fake
// HAProxy's decoding of the ACK.
func BenchmarkServerRoundTrip(b *testing.B) {
	s := &Server{Logger: quietLogger(), Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
		return goldenActions, nil
	})}
	addr := startBenchServer(b, s)
	h := dial(b, addr)
	h.hello(haproxyHello)
	notify, _ := AppendNotify(nil, 281, 5, typicalRequest())
	b.SetBytes(int64(len(notify)))
	b.ReportAllocs()
	for b.Loop() {
		h.send(notify)
		if sid, _, _ := h.ack(); sid != 281 {
			b.Fatalf("ACK for %d", sid)
		}
	}
}

func startBenchServer(b *testing.B, s *Server) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	b.Cleanup(func() { s.Close() })
	return l.Addr().String()
}
