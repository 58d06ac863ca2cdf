// Package fleettest starts, for tests, the real servers a fleet of
// wafcanary replicas relies on: etcd and Prometheus, each on loopback in
// a temporary directory, installed from Debian's packages when missing.
package fleettest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Require finds binary, installing Debian's pkg when it is missing and
// this user may (root, or sudo without a password): the README's test
// command must work on a fresh machine.
func Require(t testing.TB, binary, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(binary); err == nil {
		return p
	}
	run := func(args ...string) ([]byte, error) {
		if os.Geteuid() != 0 {
			args = append([]string{"sudo", "-n"}, args...)
		}
		t.Logf("%s not found; running %s", binary, strings.Join(args, " "))
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	// A fresh machine has empty package lists.
	if out, err := run("apt-get", "update", "-q"); err != nil {
		t.Logf("apt-get update failed (%v); trying the install anyway:\n%s", err, out)
	}
	if out, err := run("apt-get", "install", "-y", "--no-install-recommends", pkg); err != nil {
		t.Fatalf("%s is needed and could not be installed (%v); install Debian's %s package:\n%s", binary, err, pkg, out)
	}
	// Where systemd runs, the package starts its service, whose port
	// (Prometheus's 9090) tests and the demo expect free.
	_, _ = run("systemctl", "stop", "prometheus", "etcd")
	p, err := exec.LookPath(binary)
	if err != nil {
		t.Fatalf("installed %s, still no %s: %v", pkg, binary, err)
	}
	return p
}

// FreeAddr returns a loopback address nothing listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Etcd is a single-member etcd cluster that a test can stop and start
// again on the same address and data.
type Etcd struct {
	t         testing.TB
	bin, dir  string
	client    string
	peer      string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	logPrefix string
}

// StartEtcd starts etcd; it is stopped when the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	e := &Etcd{t: t, bin: Require(t, "etcd", "etcd-server"), dir: t.TempDir(),
		client: FreeAddr(t), peer: FreeAddr(t), logPrefix: "etcd: "}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// Endpoint is the client URL.
func (e *Etcd) Endpoint() string { return "http://" + e.client }

// Start (re)starts the server and waits until it answers.
func (e *Etcd) Start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd != nil {
		return
	}
	cmd := exec.Command(e.bin, "--name", "test", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", "http://"+e.client, "--advertise-client-urls", "http://"+e.client,
		"--listen-peer-urls", "http://"+e.peer, "--initial-advertise-peer-urls", "http://"+e.peer,
		"--initial-cluster", "test=http://"+e.peer, "--log-level", "error", "--logger", "zap")
	cmd.Stdout, cmd.Stderr = &logWriter{t: e.t, prefix: e.logPrefix}, &logWriter{t: e.t, prefix: e.logPrefix}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("starting etcd: %v", err)
	}
	e.cmd, e.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, e.exited)
	WaitFor(e.t, 20*time.Second, "etcd answering", func() bool {
		resp, err := http.Get(e.Endpoint() + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (e *Etcd) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Kill()
	<-e.exited
	e.cmd = nil
}

// Prometheus starts a Prometheus scraping targets (host:port of
// /metrics) every scrape interval, and returns its URL.
func Prometheus(t testing.TB, ctx context.Context, scrape time.Duration, targets ...string) string {
	t.Helper()
	bin := Require(t, "prometheus", "prometheus")
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  evaluation_interval: %s\nscrape_configs:\n  - job_name: wafcanary\n    static_configs:\n      - targets: [%s]\n",
		scrape, scrape, strings.Join(quoted, ", "))
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	p := exec.CommandContext(ctx, bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	p.Stderr = &logWriter{t: t, prefix: "prometheus: "}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Process.Kill(); _ = p.Wait() })
	url := "http://" + addr
	WaitFor(t, 30*time.Second, "Prometheus ready", func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return url
}

// WaitFor polls cond every 50 ms until it holds or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogWriter returns a writer that passes a process's output to the test
// log with prefix.
func LogWriter(t testing.TB, prefix string) io.Writer { return &logWriter{t: t, prefix: prefix} }

// logWriter passes a server's output to the test log, line by line, and
// stops when the test has ended.
type logWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	done   bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		func() {
			defer func() {
				if recover() != nil { // logging after the test ended panics
					w.done = true
				}
			}()
			for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
				w.t.Log(w.prefix + line)
			}
		}()
	}
	return len(p), nil
}
