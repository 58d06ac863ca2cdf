package spop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logBuffer collects a server's log lines; connections may log after a
// test ends, so it must not be tied to testing.T.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startServer serves s on a loopback port until the test ends.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	if s.Logger == nil {
		s.Logger = quietLogger()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

// fakeHAProxy plays HAProxy's side of a connection, frame by frame.
type fakeHAProxy struct {
	t   testing.TB
	c   *net.TCPConn
	buf []byte
}

func dial(t testing.TB, addr string) *fakeHAProxy {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second)) // no test waits this long unless it is broken
	return &fakeHAProxy{t: t, c: c.(*net.TCPConn)}
}

func (h *fakeHAProxy) send(b []byte) {
	h.t.Helper()
	if _, err := h.c.Write(b); err != nil {
		h.t.Fatalf("send: %v", err)
	}
}

func (h *fakeHAProxy) frame() Frame {
	h.t.Helper()
	f, buf, err := ReadFrame(h.c, h.buf, 1<<20)
	if err != nil {
		h.t.Fatalf("reading a frame: %v", err)
	}
	h.buf = buf
	return f
}

var haproxyHello = HAProxyHello{SupportedVersions: "2.0", MaxFrameSize: 16380, Capabilities: []string{"pipelining", "async"}, EngineID: "engine-1"}

func (h *fakeHAProxy) hello(hh HAProxyHello) AgentHello {
	h.t.Helper()
	h.send(hh.AppendFrame(nil))
	f := h.frame()
	if f.Type != FrameAgentHello || f.Flags != FlagFin || f.StreamID != 0 || f.FrameID != 0 {
		h.t.Fatalf("answer to HELLO: %v flags %d ids %d/%d", f.Type, f.Flags, f.StreamID, f.FrameID)
	}
	a, err := DecodeAgentHello(f.Payload)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func (h *fakeHAProxy) notify(sid, fid uint64, msgs ...Message) {
	h.t.Helper()
	b, err := AppendNotify(nil, sid, fid, msgs)
	if err != nil {
		h.t.Fatal(err)
	}
	h.send(b)
}

func (h *fakeHAProxy) ack() (sid, fid uint64, acts []Action) {
	h.t.Helper()
	f := h.frame()
	if f.Type != FrameAck || f.Flags != FlagFin {
		h.t.Fatalf("got %v flags %d, want ACK with FIN", f.Type, f.Flags)
	}
	acts, err := DecodeActions(f.Payload, Limits{})
	if err != nil {
		h.t.Fatal(err)
	}
	return f.StreamID, f.FrameID, acts
}

// disconnected reads the AGENT-DISCONNECT and checks that the agent then
// closes the connection.
func (h *fakeHAProxy) disconnected(want Status) Disconnect {
	h.t.Helper()
	f := h.frame()
	if f.Type != FrameAgentDisconnect {
		h.t.Fatalf("got %v, want AGENT-DISCONNECT", f.Type)
	}
	d, err := DecodeDisconnect(f.Payload)
	if err != nil {
		h.t.Fatal(err)
	}
	if d.Status != want {
		h.t.Fatalf("DISCONNECT status %d %q, want %d (%v)", d.Status, d.Message, want, want)
	}
	h.closed()
	return d
}

func (h *fakeHAProxy) closed() {
	h.t.Helper()
	if n, err := h.c.Read(make([]byte, 1)); err != io.EOF {
		h.t.Fatalf("after the last frame: read %d, %v; want EOF", n, err)
	}
}

// echo is a handler that answers each message with a txn variable named
// after it, holding its first argument.
var echo = HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
	var acts []Action
	for _, m := range n.Messages {
		v := Null()
		if len(m.Args) > 0 {
			v = m.Args[0].Value
		}
		acts = append(acts, SetVar(ScopeTxn, m.Name, v))
	}
	return acts, nil
})

func msg(name string, args ...KV) Message { return Message{Name: name, Args: args} }

func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		name         string
		own          uint32
		inFlight     int
		theirs       uint32
		theirCaps    []string
		wantSize     uint32
		wantCaps     []string
		wantInFlight int
	}{
		{"defaults", 0, 0, 16380, []string{"pipelining", "async"}, 16380, []string{"pipelining"}, DefaultMaxInFlight},
		{"haproxy's smaller size wins", 0, 0, 4096, []string{"pipelining"}, 4096, []string{"pipelining"}, DefaultMaxInFlight},
		{"the agent's smaller size wins", 1000, 0, 16380, nil, 1000, nil, 1},
		// Pipelining is symmetrical: announced only when HAProxy does.
		{"haproxy without pipelining", 0, 0, 16380, []string{"async"}, 16380, nil, 1},
		{"MaxInFlight 1 turns it off", 0, 1, 16380, []string{"pipelining"}, 16380, nil, 1},
		{"spaces in the list", 0, 4, 16380, []string{" pipelining "}, 16380, []string{"pipelining"}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var engine atomic.Value
			s := &Server{MaxFrameSize: tc.own, MaxInFlight: tc.inFlight, Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
				engine.Store(n.EngineID)
				return nil, nil
			})}
			h := dial(t, startServer(t, s))
			hh := haproxyHello
			hh.MaxFrameSize, hh.Capabilities = tc.theirs, tc.theirCaps
			a := h.hello(hh)
			if a.Version != "2.0" || a.MaxFrameSize != tc.wantSize || !reflect.DeepEqual(a.Capabilities, tc.wantCaps) {
				t.Fatalf("AGENT-HELLO %+v, want size %d caps %v", a, tc.wantSize, tc.wantCaps)
			}
			h.notify(1, 1, msg("m"))
			if sid, fid, acts := h.ack(); sid != 1 || fid != 1 || len(acts) != 0 {
				t.Fatalf("ACK %d/%d %v", sid, fid, acts)
			}
			if engine.Load() != "engine-1" {
				t.Fatalf("handler saw engine-id %v", engine.Load())
			}
			s.mu.Lock()
			for c := range s.conns {
				if cap(c.sem) != tc.wantInFlight {
					t.Errorf("frames in flight: %d, want %d", cap(c.sem), tc.wantInFlight)
				}
			}
			s.mu.Unlock()
		})
	}
}

func TestNotifyCorazaRequest(t *testing.T) {
	var got *Notify
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
		got = n
		m, ok := n.Message("coraza-req")
		if !ok {
			return nil, errors.New("no coraza-req")
		}
		if p, _ := m.Arg("path"); p.Text() == "/admin" {
			return goldenActions, nil
		}
		return nil, nil
	})}
	h := dial(t, startServer(t, s))
	h.hello(haproxyHello)
	h.send(unhex(t, goldenNotify))
	sid, fid, acts := h.ack()
	if sid != 281 || fid != 5 || !reflect.DeepEqual(acts, goldenActions) {
		t.Fatalf("ACK %d/%d %v", sid, fid, acts)
	}
	if !reflect.DeepEqual(got.Messages, goldenRequest) || got.StreamID != 281 || got.RemoteAddr == nil {
		t.Fatalf("handler got %+v", got)
	}
	// The golden ACK, byte for byte.
	b, _ := AppendAck(nil, sid, fid, acts)
	if !bytes.Equal(b, unhex(t, goldenAck)) {
		t.Fatalf("ACK bytes\n% x", b)
	}
}

// Several NOTIFY frames in flight on one connection are handled at once
// and each ACK, sent when ready, carries its own frame's ids and answer.
func TestPipeliningAnswersOutOfOrder(t *testing.T) {
	const n = 8
	var arrived sync.WaitGroup
	arrived.Add(n)
	s := &Server{MaxInFlight: n, Handler: HandlerFunc(func(ctx context.Context, nf *Notify) ([]Action, error) {
		arrived.Done()
		arrived.Wait() // all n are in the handler at once, or this test times out
		time.Sleep(time.Duration(n-nf.StreamID) * 10 * time.Millisecond)
		return []Action{SetVar(ScopeTxn, "sid", Int64(int64(nf.StreamID)))}, nil
	})}
	h := dial(t, startServer(t, s))
	h.hello(haproxyHello)
	for i := uint64(1); i <= n; i++ {
		h.notify(i, i+100, msg("m"))
	}
	var order []uint64
	for range n {
		sid, fid, acts := h.ack()
		if fid != sid+100 || len(acts) != 1 || acts[0].Value.Uint() != sid {
			t.Fatalf("ACK %d/%d carries %v", sid, fid, acts)
		}
		order = append(order, sid)
	}
	if order[0] != n || order[n-1] != 1 {
		t.Fatalf("ACK order %v, want the slowest (1) last", order)
	}
}

func TestHandlerFailures(t *testing.T) {
	logs := &logBuffer{}
	s := &Server{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
			switch n.Messages[0].Name {
			case "panic":
				var m map[string]int
				m["x"]++ // a nil map write: a runtime panic, not just a panic call
			case "error":
				return nil, errors.New("no ruleset")
			case "huge":
				return []Action{SetVar(ScopeTxn, "x", String(strings.Repeat("a", 20000)))}, nil
			case "bad scope":
				return []Action{SetVar(9, "x", Null())}, nil
			}
			return []Action{SetVar(ScopeTxn, "ok", Bool(true))}, nil
		}),
		ErrorActions: func(n *Notify, err error) []Action {
			if n.Messages[0].Name == "error actions panic" {
				panic("again")
			}
			return []Action{SetVar(ScopeTxn, "error", String(err.Error()))}
		},
	}
	h := dial(t, startServer(t, s))
	h.hello(haproxyHello)
	for i, tc := range []struct {
		msg, want string
	}{
		{"panic", "spop: handler panic: assignment to entry in nil map"},
		{"fine", ""}, // the connection lives on
		{"error", "no ruleset"},
		{"huge", "spop: ACK of 20016 bytes exceeds max-frame-size 16380"},
		{"bad scope", "spop: action on variable \"x\": invalid scope(9)"},
		{"fine", ""},
	} {
		h.notify(uint64(i+1), 1, msg(tc.msg))
		_, _, acts := h.ack()
		want := []Action{SetVar(ScopeTxn, "ok", Bool(true))}
		if tc.want != "" {
			want = []Action{SetVar(ScopeTxn, "error", String(tc.want))}
		}
		if !reflect.DeepEqual(acts, want) {
			t.Errorf("%s: ACK %v, want %v", tc.msg, acts, want)
		}
	}
	if l := logs.String(); !strings.Contains(l, "handler panic") || !strings.Contains(l, "server_test.go") {
		t.Errorf("the panic and its stack are not logged:\n%s", l)
	}
	// ErrorActions that panics too still gets the frame an (empty) ACK.
	s.ErrorActions = func(*Notify, error) []Action { panic("again") }
	h2 := dial(t, startServer(t, &Server{Handler: s.Handler, ErrorActions: s.ErrorActions}))
	h2.hello(haproxyHello)
	h2.notify(1, 1, msg("panic"))
	if _, _, acts := h2.ack(); len(acts) != 0 {
		t.Fatalf("ACK %v, want empty", acts)
	}
}

func TestHealthcheck(t *testing.T) {
	h := dial(t, startServer(t, &Server{Handler: echo}))
	hh := haproxyHello
	hh.Healthcheck = true
	h.hello(hh)
	h.closed() // "AGENT-HELLO + close()", no DISCONNECT
}

// rawFrame builds a frame field by field, to say what an encoder refuses.
func rawFrame(t FrameType, fl Flags, sid, fid uint64, payload []byte) []byte {
	return AppendFrame(nil, Frame{Type: t, Flags: fl, StreamID: sid, FrameID: fid, Payload: payload})
}

func helloKVs(kvs ...KV) []byte {
	return rawFrame(FrameHAProxyHello, FlagFin, 0, 0, AppendKVs(nil, kvs))
}

var (
	kvVersions = KV{"supported-versions", String("2.0")}
	kvSize     = KV{"max-frame-size", Uint32(16380)}
	kvCaps     = KV{"capabilities", String("pipelining")}
)

// Every way a peer can break the protocol gets its DISCONNECT status, and
// the same server then serves the next connection normally.
func TestBadPeers(t *testing.T) {
	type end struct {
		st     Status
		byPeer bool
	}
	ends := make(chan end, 100)
	s := &Server{Handler: echo, HelloTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
		Disconnected: func(st Status, byPeer bool) { ends <- end{st, byPeer} }}
	addr := startServer(t, s)
	hello := func(h *fakeHAProxy) { h.hello(haproxyHello) }
	small := func(h *fakeHAProxy) {
		hh := haproxyHello
		hh.MaxFrameSize = 1024
		h.hello(hh)
	}
	manyMessages := make([]Message, 65)
	for i := range manyMessages {
		manyMessages[i].Name = "m"
	}
	tooMany, _ := AppendNotify(nil, 1, 1, manyMessages)
	for _, tc := range []struct {
		name string
		do   func(h *fakeHAProxy)
		want Status
	}{
		// The length prefix reads "GET " = 1195725856 bytes: refused unread.
		{"http instead of spop", func(h *fakeHAProxy) { h.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }, StatusTooBig},
		{"length over the agent's size before hello", func(h *fakeHAProxy) { h.send(unhex(t, "00 00 40 00")) }, StatusTooBig},
		{"length over the negotiated size", func(h *fakeHAProxy) { small(h); h.send(unhex(t, "00 00 04 01 03 00 00 00 01 01 01")) }, StatusTooBig},
		{"length 4 GiB", func(h *fakeHAProxy) { hello(h); h.send(unhex(t, "ff ff ff ff")) }, StatusTooBig},
		{"frame shorter than its header", func(h *fakeHAProxy) { h.send(unhex(t, "00 00 00 03 01 00 00")) }, StatusInvalid},
		{"notify before hello", func(h *fakeHAProxy) { h.notify(1, 1, msg("m")) }, StatusInvalid},
		{"hello with a stream-id", func(h *fakeHAProxy) {
			h.send(rawFrame(FrameHAProxyHello, FlagFin, 1, 0, AppendKVs(nil, []KV{kvVersions, kvSize, kvCaps})))
		}, StatusInvalid},
		{"second hello", func(h *fakeHAProxy) { hello(h); h.send(haproxyHello.AppendFrame(nil)) }, StatusInvalid},
		{"an agent's frame from haproxy", func(h *fakeHAProxy) { hello(h); b, _ := AppendAck(nil, 1, 1, nil); h.send(b) }, StatusInvalid},
		{"unknown frame type", func(h *fakeHAProxy) { hello(h); h.send(rawFrame(0, FlagFin, 1, 1, nil)) }, StatusInvalid},
		{"bad stream-id varint", func(h *fakeHAProxy) { hello(h); h.send(unhex(t, "00 00 00 07 03 00 00 00 01 f0 f0")) }, StatusInvalid},
		{"unsupported version", func(h *fakeHAProxy) { h.send(helloKVs(KV{"supported-versions", String("1.0, 3.0")}, kvSize, kvCaps)) }, StatusBadVersion},
		{"no version", func(h *fakeHAProxy) { h.send(helloKVs(kvSize, kvCaps)) }, StatusNoVersion},
		{"no max-frame-size", func(h *fakeHAProxy) { h.send(helloKVs(kvVersions, kvCaps)) }, StatusNoFrameSize},
		{"no capabilities", func(h *fakeHAProxy) { h.send(helloKVs(kvVersions, kvSize)) }, StatusNoCapabilities},
		{"max-frame-size under 256", func(h *fakeHAProxy) { h.send(helloKVs(kvVersions, KV{"max-frame-size", Uint32(255)}, kvCaps)) }, StatusBadFrameSize},
		{"fragmented hello", func(h *fakeHAProxy) {
			h.send(rawFrame(FrameHAProxyHello, 0, 0, 0, AppendKVs(nil, []KV{kvVersions, kvSize, kvCaps})))
		}, StatusFragmentation},
		{"fragmented notify", func(h *fakeHAProxy) {
			hello(h)
			p, _ := AppendMessages(nil, []Message{msg("m")})
			h.send(rawFrame(FrameNotify, 0, 1, 1, p))
		}, StatusFragmentation},
		{"reserved data type", func(h *fakeHAProxy) {
			hello(h)
			h.send(rawFrame(FrameNotify, FlagFin, 1, 1, unhex(t, "01 6d 01 01 6b 0b")))
		}, StatusInvalid},
		{"argument past the frame's end", func(h *fakeHAProxy) {
			hello(h)
			h.send(rawFrame(FrameNotify, FlagFin, 1, 1, unhex(t, "01 6d 01 01 6b 08 7f 61")))
		}, StatusInvalid},
		{"too many messages", func(h *fakeHAProxy) { hello(h); h.send(tooMany) }, StatusResource},
		// The peer closes inside a frame: the stream broke, not the frame.
		{"truncated, then closed", func(h *fakeHAProxy) { hello(h); h.send(unhex(t, "00 00 00 64 03 00 00 00 01")); h.c.CloseWrite() }, StatusIO},
		{"truncated, then silent", func(h *fakeHAProxy) { hello(h); h.send(unhex(t, "00 00 00 64 03 00 00 00 01")) }, StatusTimeout},
		{"half a length, then silent", func(h *fakeHAProxy) { hello(h); h.send(unhex(t, "00 00")) }, StatusTimeout},
		{"silent after connecting", func(h *fakeHAProxy) {}, StatusTimeout},
		{"idle after hello", hello, StatusTimeout},
		{"haproxy disconnects", func(h *fakeHAProxy) {
			hello(h)
			h.send(Disconnect{StatusNormal, "normal"}.AppendFrame(nil, FrameHAProxyDisconnect))
		}, StatusNormal},
		{"haproxy disconnects before hello", func(h *fakeHAProxy) {
			h.send(Disconnect{StatusTimeout, "a timeout occurred"}.AppendFrame(nil, FrameHAProxyDisconnect))
		}, StatusNormal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := dial(t, addr)
			tc.do(h)
			h.disconnected(tc.want)
			// Disconnected is told before the frame is written: the
			// agent's status, or the one HAProxy sent.
			want := end{tc.want, false}
			if strings.HasPrefix(tc.name, "haproxy disconnects") {
				want = end{StatusNormal, true}
				if strings.HasSuffix(tc.name, "before hello") {
					want.st = StatusTimeout
				}
			}
			select {
			case got := <-ends:
				if got != want {
					t.Errorf("Disconnected(%v, %v), want (%v, %v)", got.st, got.byPeer, want.st, want.byPeer)
				}
			default:
				t.Errorf("Disconnected not told of a %v", want.st)
			}

			// The next connection is served as if nothing happened.
			next := dial(t, addr)
			next.hello(haproxyHello)
			next.notify(7, 1, msg("after", KV{"x", Int64(1)}))
			if _, _, acts := next.ack(); !reflect.DeepEqual(acts, []Action{SetVar(ScopeTxn, "after", Int64(1))}) {
				t.Fatalf("next connection: ACK %v", acts)
			}
		})
	}
}

// IdleTimeout does not close a connection whose frames are still being
// handled: HAProxy is waiting for their ACKs, not idle.
func TestIdleTimeoutSparesFramesInFlight(t *testing.T) {
	s := &Server{IdleTimeout: 50 * time.Millisecond, Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
		time.Sleep(200 * time.Millisecond)
		return echo(ctx, n)
	})}
	h := dial(t, startServer(t, s))
	h.hello(haproxyHello)
	h.notify(1, 1, msg("slow"))
	if sid, _, _ := h.ack(); sid != 1 {
		t.Fatalf("ACK for %d", sid)
	}
	h.disconnected(StatusTimeout) // and idle after it
}

func TestShutdownFinishesFramesInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := &Server{Logger: quietLogger(), Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
		close(started)
		<-release
		return []Action{SetVar(ScopeTxn, "done", Bool(true))}, nil
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	busy, idle := dial(t, l.Addr().String()), dial(t, l.Addr().String())
	busy.hello(haproxyHello)
	idle.hello(haproxyHello)
	busy.notify(1, 1, msg("m"))
	<-started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	idle.disconnected(StatusNormal) // an idle connection is told at once
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("the listener still accepts")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a frame in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if _, _, acts := busy.ack(); len(acts) != 1 {
		t.Fatalf("ACK %v", acts)
	}
	busy.disconnected(StatusNormal)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := s.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestShutdownDeadlineCancelsHandlers(t *testing.T) {
	cancelled := make(chan error, 1)
	started := make(chan struct{})
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return nil, ctx.Err()
	})}
	h := dial(t, startServer(t, s))
	h.hello(haproxyHello)
	h.notify(1, 1, msg("m"))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler's ctx: %v", err)
	}
}

func TestHandlerTimeout(t *testing.T) {
	s := &Server{HandlerTimeout: 20 * time.Millisecond, Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}), ErrorActions: func(n *Notify, err error) []Action {
		return []Action{SetVar(ScopeTxn, "error", String(err.Error()))}
	}}
	h := dial(t, startServer(t, s))
	h.hello(haproxyHello)
	h.notify(1, 1, msg("m"))
	if _, _, acts := h.ack(); len(acts) != 1 || acts[0].Value.Text() != "context deadline exceeded" {
		t.Fatalf("ACK %v", acts)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		s    *Server
		want string
	}{
		{&Server{}, "spop: Server.Handler: must be set"},
		{&Server{Handler: echo, MaxFrameSize: 100}, "spop: Server.MaxFrameSize: must be at least 256, got 100"},
		{&Server{Handler: echo, MaxInFlight: -1}, "spop: Server.MaxInFlight: must not be negative, got -1"},
		{&Server{Handler: echo, Limits: Limits{MaxArgs: -1}}, "spop: Server.Limits: must not be negative, got {MaxMessages:0 MaxArgs:-1}"},
	} {
		if err := tc.s.Validate(); fmt.Sprint(err) != tc.want {
			t.Errorf("Validate: %v, want %s", err, tc.want)
		}
		if err := tc.s.Serve(nil); fmt.Sprint(err) != tc.want {
			t.Errorf("Serve: %v, want %s", err, tc.want)
		}
	}
}

// ABORT cancels a frame: it reaches no handler and gets no ACK, and the
// next frame is answered as usual.
func TestAbortedNotifyIsNotAnswered(t *testing.T) {
	var calls atomic.Int32
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, n *Notify) ([]Action, error) {
		calls.Add(1)
		return echo(ctx, n)
	})}
	h := dial(t, startServer(t, s))
	h.hello(haproxyHello)
	p, _ := AppendMessages(nil, []Message{msg("aborted")})
	h.send(rawFrame(FrameNotify, FlagFin|FlagAbort, 1, 1, p))
	h.notify(2, 1, msg("next"))
	if sid, _, acts := h.ack(); sid != 2 || acts[0].Name != "next" {
		t.Fatalf("ACK for %d: %v", sid, acts)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times", n)
	}
}
