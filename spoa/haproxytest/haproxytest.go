// Package haproxytest runs Debian's haproxy with wafcanary's shipped
// deploy/haproxy configuration on loopback, for tests and the bench: in
// front of an application, with its SPOE agent wherever the caller serves
// one.
package haproxytest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// HAProxy is a running haproxy.
type HAProxy struct {
	// Frontend is the address clients send requests to.
	Frontend string
	cmd      *exec.Cmd
	exited   chan struct{}
	out      syncBuffer
	dir      string
}

// ErrNotInstalled is Start without a haproxy binary.
var ErrNotInstalled = errors.New("haproxy is not installed (apt-get install haproxy; .ci/run installs it)")

// Shipped is the directory of the shipped configuration.
func Shipped() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "haproxy")
}

// Start runs haproxy with the shipped haproxy.cfg and wafcanary.spoe.cfg,
// their addresses replaced: the frontend on a free loopback port, the
// application at app, the agent at agent (checked every 100 ms, so a
// restarted agent is back in a test's time). Stop it when done.
func Start(agent, app string) (*HAProxy, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, ErrNotInstalled
	}
	h := &HAProxy{exited: make(chan struct{})}
	close(h.exited)
	if h.dir, err = os.MkdirTemp("", "wafcanary-haproxy-"); err != nil {
		return nil, err
	}
	// HAProxy binds its own port: take a free one, release it, and start
	// again if something took it in between.
	for attempt := 0; ; attempt++ {
		h.Frontend = freeAddr()
		path, err := Render(h.dir, h.Frontend, app, agent, 100*time.Millisecond)
		if err != nil {
			h.Stop()
			return nil, err
		}
		err = h.run(bin, path)
		if err == nil {
			return h, nil
		}
		if attempt == 2 || !strings.Contains(h.out.String(), "cannot bind") {
			h.Stop()
			return nil, fmt.Errorf("%w\n%s", err, h.out.String())
		}
	}
}

// Render writes the shipped haproxy.cfg and wafcanary.spoe.cfg into dir
// with their addresses replaced (the frontend, the application, the agent,
// health-checked every check) and returns haproxy.cfg's path. It fails if
// the shipped files no longer hold the addresses it replaces.
func Render(dir, frontend, app, agent string, check time.Duration) (string, error) {
	spoe, err := os.ReadFile(filepath.Join(Shipped(), "wafcanary.spoe.cfg"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "wafcanary.spoe.cfg"), spoe, 0o644); err != nil {
		return "", err
	}
	shipped, err := os.ReadFile(filepath.Join(Shipped(), "haproxy.cfg"))
	if err != nil {
		return "", err
	}
	cfg := strings.NewReplacer(
		"bind 127.0.0.1:8000", "bind "+frontend,
		"server app 127.0.0.1:8081", "server app "+app,
		"server agent1 127.0.0.1:9000 check inter 2s", fmt.Sprintf("server agent1 %s check inter %dms", agent, check.Milliseconds()),
		"/etc/haproxy/wafcanary.spoe.cfg", filepath.Join(dir, "wafcanary.spoe.cfg"),
	).Replace(string(shipped))
	for _, want := range []string{frontend, app, agent, dir} {
		if !strings.Contains(cfg, want) {
			return "", fmt.Errorf("the shipped haproxy.cfg changed: %s not substituted", want)
		}
	}
	path := filepath.Join(dir, "haproxy.cfg")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

func (h *HAProxy) run(bin, cfg string) error {
	h.cmd = exec.Command(bin, "-db", "-f", cfg)
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	if err := h.cmd.Start(); err != nil {
		return err
	}
	h.exited = make(chan struct{})
	go func() { h.cmd.Wait(); close(h.exited) }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-h.exited:
			return fmt.Errorf("haproxy exited: %v", h.cmd.ProcessState)
		default:
		}
		if c, err := net.DialTimeout("tcp", h.Frontend, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
	}
	h.cmd.Process.Kill()
	<-h.exited
	return errors.New("haproxy did not listen within 10s")
}

// Log is what haproxy has written: its log lines (the shipped log-format)
// and its own messages.
func (h *HAProxy) Log() string { return h.out.String() }

// Stop kills haproxy and removes its files.
func (h *HAProxy) Stop() {
	if h.cmd != nil && h.cmd.Process != nil {
		h.cmd.Process.Kill()
		<-h.exited
	}
	os.RemoveAll(h.dir)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
