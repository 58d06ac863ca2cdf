package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

func startProcess(cmd *exec.Cmd, dir, name string) error {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Never outlive the bench; a group of its own lets stopProcess reach
	// nginx's workers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd.Start()
}

// stopProcess asks the process to stop and kills its whole group (nginx:
// master and workers) if it has not within five seconds.
func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// freeAddr returns a loopback address with a port the kernel just had free.
func freeAddr() string { return handedOut.next(kernelPort) }

// kernelPort is a loopback port the kernel says is free now.
func kernelPort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// addrs are the addresses freeAddr has given in this run. The kernel may
// hand a closed port out again before the target given it has bound it;
// two targets on one port would measure the first twice (the second
// exits, the first answers its readiness check).
type addrs struct {
	sync.Mutex
	given map[string]bool
}

var handedOut = addrs{given: map[string]bool{}}

// next is the first address from free not given before.
func (a *addrs) next(free func() string) string {
	a.Lock()
	defer a.Unlock()
	for {
		if addr := free(); !a.given[addr] {
			a.given[addr] = true
			return addr
		}
	}
}

// waitReady polls url until it answers, the process ends, or a minute
// has passed; a failure carries the end of the process's log.
func waitReady(ctx context.Context, url string, cmd *exec.Cmd, logDir, name string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case exited(cmd.Process.Pid):
			return fmt.Errorf("exited before answering; its log ends:\n%s", logTail(logDir, name))
		case time.Now().After(deadline):
			return fmt.Errorf("not ready after 60 s (%w); its log ends:\n%s", err, logTail(logDir, name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail is the last lines of a process's log (startProcess names it).
func logTail(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name+".log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}
