package spop

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler answers NOTIFY frames.
type Handler interface {
	// ServeSPOP returns the actions for one NOTIFY frame, which carries
	// every message HAProxy sends for one event of one stream.
	//
	// It is called concurrently, for frames of one connection too when
	// pipelining is on, and may take its time: the connection keeps
	// reading while it runs. ctx is cancelled when the connection goes
	// away or HandlerTimeout passes; HAProxy will have given up by then.
	// n and its values may be kept after return. A panic is recovered and
	// treated as an error: the frame is ACKed with Server.ErrorActions,
	// the connection and the process live on.
	ServeSPOP(ctx context.Context, n *Notify) ([]Action, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, n *Notify) ([]Action, error)

// ServeSPOP calls f(ctx, n).
func (f HandlerFunc) ServeSPOP(ctx context.Context, n *Notify) ([]Action, error) { return f(ctx, n) }

// Notify is one decoded NOTIFY frame and where it came from.
type Notify struct {
	StreamID   uint64 // HAProxy's stream; the ACK repeats it
	FrameID    uint64 // the frame within the stream; the ACK repeats it
	Messages   []Message
	EngineID   string   // from the connection's HELLO; "" if HAProxy sent none
	RemoteAddr net.Addr // the HAProxy end of the connection
}

// Message returns the first message called name.
func (n *Notify) Message(name string) (Message, bool) {
	for _, m := range n.Messages {
		if m.Name == name {
			return m, true
		}
	}
	return Message{}, false
}

// PanicError is the error a handler's panic becomes.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("spop: handler panic: %v", e.Value) }

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("spop: server closed")

// Defaults for the Server's zero fields.
var (
	// DefaultMaxFrameSize is HAProxy's own default, tune.bufsize (16 KiB)
	// minus the 4-byte length. Raise it together with tune.bufsize to let
	// larger bodies through: the agent answers the smaller of the two.
	DefaultMaxFrameSize uint32 = 16380
	// DefaultMaxInFlight bounds the NOTIFY frames of one connection being
	// handled at once. HAProxy keeps at most max-waiting-frames (20 by
	// default) in flight per connection; the bound is for other peers.
	DefaultMaxInFlight   = 64
	DefaultHelloTimeout  = 10 * time.Second
	DefaultReadTimeout   = 10 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	disconnectWriteLimit = time.Second
	lingerTime           = 500 * time.Millisecond
	lingerBytes          = int64(1 << 20)
)

// Server is an SPOE agent's side of SPOP: it accepts HAProxy's
// connections, does the HELLO handshake, hands each NOTIFY to Handler and
// writes the ACK. Its exported fields are configuration, read when a
// connection starts; set them before Serve. Its methods are safe for
// concurrent use.
//
// A peer that breaks the protocol gets an AGENT-DISCONNECT with the
// status of doc/SPOE.txt 3.5 and is closed; nothing a peer sends can stop
// the server or make it allocate more than MaxFrameSize per frame being
// read or handled.
type Server struct {
	Handler Handler

	// MaxFrameSize is the largest frame the agent accepts; it answers
	// HAProxy's HELLO with the smaller of this and HAProxy's value, and
	// refuses a longer frame with StatusTooBig before reading it.
	// Zero means DefaultMaxFrameSize; at least MinFrameSize.
	MaxFrameSize uint32
	// MaxInFlight bounds the frames of one connection handled at once;
	// reading waits when it is reached. 1 turns pipelining off. Zero
	// means DefaultMaxInFlight.
	MaxInFlight int
	// Limits bound the messages and arguments of one frame.
	Limits Limits

	// HelloTimeout bounds the wait for HAPROXY-HELLO on a new connection.
	// Zero means DefaultHelloTimeout; negative, none.
	HelloTimeout time.Duration
	// IdleTimeout closes (with StatusTimeout) a connection that carried no
	// frame for that long and has none in flight. Zero means none: HAProxy
	// closes idle connections itself ("timeout idle"), and TCP keep-alive
	// finds dead peers.
	IdleTimeout time.Duration
	// ReadTimeout bounds the reading of a frame once its length arrived.
	// Zero means DefaultReadTimeout; negative, none.
	ReadTimeout time.Duration
	// WriteTimeout bounds each frame's write. Zero means
	// DefaultWriteTimeout; negative, none.
	WriteTimeout time.Duration
	// HandlerTimeout, when positive, is the deadline of the handler's ctx.
	// Set it to about HAProxy's "timeout processing": an ACK after that is
	// thrown away.
	HandlerTimeout time.Duration

	// ErrorActions gives the actions to ACK a frame with when the handler
	// fails or panics, or its actions do not fit a frame. Nil means none:
	// an empty ACK, and HAProxy carries on as if the agent found nothing.
	// For a WAF that should fail closed, set a variable the HAProxy
	// configuration denies on; HAProxy's own "option set-on-error" only
	// covers what HAProxy sees (timeouts, disconnects).
	ErrorActions func(n *Notify, err error) []Action

	// Disconnected, when set, is told how each connection that did not
	// end cleanly between frames ended: the status of the DISCONNECT
	// HAProxy sent (byPeer) or the agent sent (a peer that broke the
	// protocol, a timeout, a shutdown), for metrics. It must not block.
	Disconnected func(st Status, byPeer bool)

	// Logger receives connection and handler errors. Nil means
	// slog.Default().
	Logger *slog.Logger

	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	connWG     sync.WaitGroup // one per tracked connection; a connection waits for its handlers
}

// Validate checks the configuration, naming the field and the constraint.
func (s *Server) Validate() error {
	switch {
	case s.Handler == nil:
		return errors.New("spop: Server.Handler: must be set")
	case s.MaxFrameSize != 0 && s.MaxFrameSize < MinFrameSize:
		return fmt.Errorf("spop: Server.MaxFrameSize: must be at least %d, got %d", MinFrameSize, s.MaxFrameSize)
	case s.MaxInFlight < 0:
		return fmt.Errorf("spop: Server.MaxInFlight: must not be negative, got %d", s.MaxInFlight)
	case s.Limits.MaxMessages < 0 || s.Limits.MaxArgs < 0:
		return fmt.Errorf("spop: Server.Limits: must not be negative, got %+v", s.Limits)
	}
	return nil
}

func (s *Server) maxFrameSize() uint32 {
	if s.MaxFrameSize == 0 {
		return DefaultMaxFrameSize
	}
	return s.MaxFrameSize
}

func (s *Server) maxInFlight() int {
	if s.MaxInFlight == 0 {
		return DefaultMaxInFlight
	}
	return s.MaxInFlight
}

// timeout turns a duration field into a deadline: zero takes def, a
// negative value (or a zero def) means no deadline.
func timeout(d, def time.Duration) time.Time {
	if d == 0 {
		d = def
	}
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Serve accepts connections on l, each served by its own goroutine, until
// l fails or the server shuts down; then it returns ErrServerClosed.
// Transient accept errors (out of file descriptors) are retried with a
// back-off. Serve may be called with several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if !s.trackListener(&l, true) {
		return ErrServerClosed
	}
	defer s.trackListener(&l, false)
	var delay time.Duration
	for {
		rwc, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			if transientAcceptError(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger().Warn("spop: accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("spop: accept: %w", err)
		}
		delay = 0
		// The context is made here, not in serve, so that Close can cancel
		// it as soon as the connection is tracked.
		ctx, cancel := context.WithCancel(context.Background())
		c := &conn{s: s, rwc: rwc, br: bufio.NewReaderSize(rwc, 4096), cancel: cancel}
		if !s.trackConn(c, true) {
			cancel()
			rwc.Close()
			return ErrServerClosed
		}
		go c.serve(ctx)
	}
}

func transientAcceptError(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// Shutdown stops the server gracefully: it closes the listeners, lets
// every connection finish the frame it is reading and the handlers it
// started, ACKs them, sends AGENT-DISCONNECT (status normal) and closes.
// NOTIFY frames HAProxy sent but the agent had not started reading are
// not handled; HAProxy sees the DISCONNECT and treats them as failed.
// If ctx ends first, Shutdown closes the remaining connections, cancels
// their handlers' contexts and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	err := s.closeListenersLocked()
	for c := range s.conns {
		c.beginShutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		s.closeConns()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, without
// DISCONNECT frames; handlers' contexts are cancelled. It does not wait.
func (s *Server) Close() error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	err := s.closeListenersLocked()
	s.mu.Unlock()
	s.closeConns()
	return err
}

func (s *Server) closeListenersLocked() error {
	var err error
	for l := range s.listeners {
		if cerr := (*l).Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	clear(s.listeners)
	return err
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.cancel()
		c.rwc.Close()
	}
}

func (s *Server) trackListener(l *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, l)
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[*net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	return true
}

// trackConn adds or removes c. The Add happens under s.mu after checking
// inShutdown, which Shutdown sets under s.mu before it waits, so no
// connection is added to connWG once Shutdown waits on it.
func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		s.connWG.Done()
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return true
}

var (
	errShutdown    = errors.New("spop: server shutting down")
	errHealthcheck = errors.New("spop: health check answered")
	errConnDead    = errors.New("spop: connection closed")
)

// peerDisconnect is a HAPROXY-DISCONNECT received.
type peerDisconnect struct{ d Disconnect }

func (p *peerDisconnect) Error() string {
	return fmt.Sprintf("spop: HAProxy disconnected: %d %s: %s", p.d.Status, p.d.Status, p.d.Message)
}

// conn is one HAProxy connection. One goroutine reads frames; each NOTIFY
// is handled by a goroutine of its own; writes of whole frames are
// serialised by wmu, which is what makes pipelining safe.
type conn struct {
	s      *Server
	rwc    net.Conn
	br     *bufio.Reader
	buf    []byte             // the frame being read; reused, as decoding copies out of it
	cancel context.CancelFunc // of the handlers' context

	// Set by the handshake, before any handler starts.
	max      uint32 // negotiated max-frame-size
	sem      chan struct{}
	engineID string

	inflight atomic.Int32
	handlers sync.WaitGroup

	mu      sync.Mutex // guards idle and closing against Shutdown
	idle    bool       // blocked waiting for the next frame's length
	closing bool

	wmu          sync.Mutex
	dead         bool // under wmu: no frame may be written any more
	disconnected bool // under wmu: an AGENT-DISCONNECT was written
}

// beginShutdown asks c to stop after the frame it is reading. A reader
// blocked between frames is woken by a deadline in the past.
func (c *conn) beginShutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.idle {
		c.rwc.SetReadDeadline(time.Unix(1, 0))
	}
}

func (c *conn) serve(ctx context.Context) {
	defer c.s.trackConn(c, false)
	defer c.cancel()
	log := c.s.logger().With("remote", c.rwc.RemoteAddr().String())

	err := c.run(ctx)

	var pe *Error
	var pd *peerDisconnect
	switch {
	case errors.Is(err, errShutdown):
		// Graceful: the handlers started still get to ACK.
		c.handlers.Wait()
		c.disconnect(StatusNormal, "agent shutting down")
	case errors.As(err, &pd):
		// HAProxy ignores everything but the DISCONNECT it waits for.
		log.Debug("spop: HAProxy disconnected", "status", uint32(pd.d.Status), "message", pd.d.Message)
		c.s.disconnected(pd.d.Status, true)
		c.disconnect(StatusNormal, "normal")
	case errors.Is(err, errHealthcheck), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, errConnDead):
		// Answered, closed by the peer between frames, or by Close.
	case errors.As(err, &pe):
		log.Warn("spop: peer broke the protocol", "status", uint32(pe.Status), "err", err)
		c.disconnect(pe.Status, pe.message())
	case errors.Is(err, os.ErrDeadlineExceeded):
		log.Info("spop: timeout", "err", err)
		c.disconnect(StatusTimeout, "a timeout occurred")
	case errors.Is(err, io.ErrUnexpectedEOF):
		log.Warn("spop: connection closed inside a frame")
		c.disconnect(StatusIO, "connection closed inside a frame")
	default:
		log.Info("spop: connection", "err", err)
	}
	c.cancel()
	c.lingeringClose()
	c.handlers.Wait()
}

// lingeringClose closes c after a DISCONNECT was sent. Closing a socket
// with unread input makes the kernel send a reset, which can destroy the
// DISCONNECT before the peer reads it, and a peer that broke the protocol
// usually has unread bytes in flight. So the agent half-closes, reads and
// discards for a bounded time and amount, then closes.
func (c *conn) lingeringClose() {
	c.wmu.Lock()
	sent := c.disconnected
	c.wmu.Unlock()
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok && sent {
		if cw.CloseWrite() == nil {
			c.rwc.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, c.br, lingerBytes)
		}
	}
	c.rwc.Close()
}

// run does the handshake and reads frames until something stops it.
func (c *conn) run(ctx context.Context) error {
	if err := c.hello(); err != nil {
		return err
	}
	for {
		f, err := c.readFrame(c.s.IdleTimeout, 0)
		if err != nil {
			return err
		}
		switch f.Type {
		case FrameNotify:
			if f.Flags&FlagFin == 0 {
				return &Error{Status: StatusFragmentation, Msg: "NOTIFY without FIN"}
			}
			if f.Flags&FlagAbort != 0 {
				// ABORT cancels an unfinished fragmented frame; there
				// never is one here, so there is nothing to answer.
				continue
			}
			msgs, err := DecodeMessages(f.Payload, c.s.Limits)
			if err != nil {
				return err
			}
			n := &Notify{StreamID: f.StreamID, FrameID: f.FrameID, Messages: msgs, EngineID: c.engineID, RemoteAddr: c.rwc.RemoteAddr()}
			c.sem <- struct{}{} // at MaxInFlight, stop reading: back-pressure onto HAProxy
			c.inflight.Add(1)
			c.handlers.Add(1)
			go c.handle(ctx, n)
		case FrameHAProxyDisconnect:
			d, err := DecodeDisconnect(f.Payload)
			if err != nil {
				d = Disconnect{Status: StatusUnknown, Message: err.Error()}
			}
			return &peerDisconnect{d}
		default:
			return errorf(StatusInvalid, "unexpected %v frame", f.Type)
		}
	}
}

// hello answers HAPROXY-HELLO (doc/SPOE.txt 3.2.4, 3.2.5).
func (c *conn) hello() error {
	c.max = c.s.maxFrameSize() // HAProxy's HELLO must fit the agent's own size
	f, err := c.readFrame(c.s.HelloTimeout, DefaultHelloTimeout)
	if err != nil {
		return err
	}
	switch f.Type {
	case FrameHAProxyHello:
	case FrameHAProxyDisconnect:
		d, _ := DecodeDisconnect(f.Payload)
		return &peerDisconnect{d}
	default:
		return errorf(StatusInvalid, "%v frame before HAPROXY-HELLO", f.Type)
	}
	if f.Flags&FlagFin == 0 {
		return &Error{Status: StatusFragmentation, Msg: "HAPROXY-HELLO without FIN"}
	}
	if f.StreamID != 0 || f.FrameID != 0 {
		return errorf(StatusInvalid, "HAPROXY-HELLO with stream-id %d, frame-id %d", f.StreamID, f.FrameID)
	}
	h, err := DecodeHAProxyHello(f.Payload)
	if err != nil {
		return err
	}
	if !supportsVersion(h.SupportedVersions) {
		return errorf(StatusBadVersion, "HAProxy supports %q, the agent %s", h.SupportedVersions, Version)
	}
	if h.MaxFrameSize < MinFrameSize {
		return errorf(StatusBadFrameSize, "HAProxy's max-frame-size %d is under %d", h.MaxFrameSize, MinFrameSize)
	}
	c.max = min(c.max, h.MaxFrameSize)
	c.engineID = h.EngineID
	answer := AgentHello{Version: Version, MaxFrameSize: c.max, Capabilities: []string{}}
	inFlight := 1
	// Pipelining is safe here: each NOTIFY is decoded into memory of its
	// own before the next is read, its ACK repeats its own ids, and an
	// ACK is written whole under wmu. So announce it whenever HAProxy
	// does and more than one frame may be in flight.
	if slices.Contains(h.Capabilities, CapPipelining) && c.s.maxInFlight() > 1 {
		answer.Capabilities = append(answer.Capabilities, CapPipelining)
		inFlight = c.s.maxInFlight()
	}
	c.sem = make(chan struct{}, inFlight)
	if err := c.write(answer.AppendFrame(nil)); err != nil {
		return err
	}
	if h.Healthcheck {
		return errHealthcheck // "the agent can safely close the connection without DISCONNECT"
	}
	return nil
}

// readFrame reads the next frame. Waiting for its length is bounded by
// wait (def when zero, none when negative or def is zero), and is where
// a graceful shutdown interrupts; the rest of the frame by ReadTimeout.
func (c *conn) readFrame(wait, def time.Duration) (Frame, error) {
	var hdr [4]byte
	for {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return Frame{}, errShutdown
		}
		c.idle = true
		c.rwc.SetReadDeadline(timeout(wait, def))
		c.mu.Unlock()

		n, err := io.ReadFull(c.br, hdr[:])

		c.mu.Lock()
		c.idle = false
		closing := c.closing
		// Replaces a deadline Shutdown may just have set: a frame whose
		// length arrived is read to its end.
		c.rwc.SetReadDeadline(timeout(c.s.ReadTimeout, DefaultReadTimeout))
		c.mu.Unlock()

		if err == nil {
			break
		}
		if n == 0 {
			switch {
			case closing:
				return Frame{}, errShutdown
			case errors.Is(err, os.ErrDeadlineExceeded) && c.inflight.Load() > 0:
				continue // not idle: HAProxy is waiting for ACKs
			}
		}
		if n > 0 {
			err = unexpectedEOF(err)
		}
		return Frame{}, err
	}
	size, err := checkLength(binary.BigEndian.Uint32(hdr[:]), c.max)
	if err != nil {
		return Frame{}, err
	}
	c.buf = grow(c.buf, size)
	if _, err := io.ReadFull(c.br, c.buf); err != nil {
		return Frame{}, unexpectedEOF(err)
	}
	return DecodeFrame(c.buf)
}

// handle runs the handler for one NOTIFY and writes its ACK.
func (c *conn) handle(ctx context.Context, n *Notify) {
	defer c.handlers.Done()
	defer func() {
		c.inflight.Add(-1)
		<-c.sem
	}()
	if c.s.HandlerTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.s.HandlerTimeout)
		defer cancel()
	}
	acts, err := c.call(ctx, n)
	if err != nil {
		c.s.logError(n, err)
		acts = c.errorActions(n, err)
	}
	bp := ackBuffers.Get().(*[]byte)
	defer ackBuffers.Put(bp)
	frame, err := AppendAck((*bp)[:0], n.StreamID, n.FrameID, acts)
	if err == nil && len(frame)-4 > int(c.max) {
		err = fmt.Errorf("spop: ACK of %d bytes exceeds max-frame-size %d", len(frame)-4, c.max)
	}
	if err != nil {
		// The handler's actions cannot be sent; its error actions, or
		// else nothing, still answer HAProxy without waiting for its
		// timeout.
		c.s.logError(n, err)
		frame, err = AppendAck(frame[:0], n.StreamID, n.FrameID, c.errorActions(n, err))
		if err != nil || len(frame)-4 > int(c.max) {
			frame, _ = AppendAck(frame[:0], n.StreamID, n.FrameID, nil)
		}
	}
	if cap(frame) <= 64<<10 {
		*bp = frame // keep the grown buffer, unless one huge ACK would pin it
	}
	c.write(frame)
}

// call runs the handler, turning a panic into a *PanicError.
func (c *conn) call(ctx context.Context, n *Notify) (acts []Action, err error) {
	defer func() {
		if r := recover(); r != nil {
			acts, err = nil, &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return c.s.Handler.ServeSPOP(ctx, n)
}

// errorActions calls ErrorActions, which is user code too.
func (c *conn) errorActions(n *Notify, cause error) (acts []Action) {
	if c.s.ErrorActions == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			c.s.logError(n, &PanicError{Value: r, Stack: debug.Stack()})
			acts = nil
		}
	}()
	return c.s.ErrorActions(n, cause)
}

func (s *Server) logError(n *Notify, err error) {
	args := []any{"stream_id", n.StreamID, "frame_id", n.FrameID, "err", err}
	var pe *PanicError
	if errors.As(err, &pe) {
		args = append(args, "stack", string(pe.Stack))
	}
	s.logger().Error("spop: handler", args...)
}

var ackBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// write writes one whole frame; a failed write closes the connection, which
// ends the reader too.
func (c *conn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return errConnDead
	}
	c.rwc.SetWriteDeadline(timeout(c.s.WriteTimeout, DefaultWriteTimeout))
	if _, err := c.rwc.Write(frame); err != nil {
		c.dead = true
		c.rwc.Close()
		return err
	}
	return nil
}

func (s *Server) disconnected(st Status, byPeer bool) {
	if s.Disconnected != nil {
		s.Disconnected(st, byPeer)
	}
}

// disconnect sends AGENT-DISCONNECT, the last frame of the connection.
func (c *conn) disconnect(st Status, msg string) {
	if st != StatusNormal || c.s.inShutdown.Load() {
		c.s.disconnected(st, false)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return
	}
	c.dead = true
	c.rwc.SetWriteDeadline(time.Now().Add(disconnectWriteLimit))
	_, err := c.rwc.Write(Disconnect{Status: st, Message: msg}.AppendFrame(nil, FrameAgentDisconnect))
	c.disconnected = err == nil
}
