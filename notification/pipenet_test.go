package notification

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// pipeNet is an in-memory network for tests inside a synctest bubble: a
// goroutine blocked on one of its connections is durably blocked, so the
// bubble's clock moves on only when every receiver and worker waits, and a
// test sees what was delivered without a wall-clock wait. Servers are real
// httptest servers; the notifier's client dials them through dial.
type pipeNet struct {
	mu  sync.Mutex
	lns map[string]*pipeListener
}

type pipeListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

func (l *pipeListener) Addr() net.Addr { return l.addr }

// server starts an httptest server for h on the network, closed with the
// test.
func (p *pipeNet) server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	p.mu.Lock()
	if p.lns == nil {
		p.lns = map[string]*pipeListener{}
	}
	l := &pipeListener{addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10000 + len(p.lns)},
		conns: make(chan net.Conn), done: make(chan struct{})}
	p.lns[l.addr.String()] = l
	p.mu.Unlock()
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func (p *pipeNet) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	p.mu.Lock()
	l, ok := p.lns[addr]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// use makes n's client dial through the network; its connections are
// closed with the test.
func (p *pipeNet) use(t *testing.T, n *Notifier) {
	tr := &http.Transport{DialContext: p.dial}
	n.client.Transport = tr
	t.Cleanup(tr.CloseIdleConnections)
}
