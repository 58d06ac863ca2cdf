package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/fleet/fleettest"
)

// A small site shortens its steps and sends SIGHUP: `serve` reads its
// file again and the next rollout takes the new steps, journalled, with
// no restart (issue 27, item 6). The signal goes to this process, whose
// serve command has asked for it.
func TestSIGHUPReadsTheRolloutStepsAgain(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	adminAddr, up := freePort(t), newUpstream(t).URL
	write := func(steps string) {
		cfg := fmt.Sprintf("upstream: %s\nlisten: 127.0.0.1:0\nstate_dir: %s\nadmin: {listen: %q, token: test-token-0123456789abcdef}\nrollout:\n  steps:\n%s",
			up, filepath.Join(dir, "state"), adminAddr, steps)
		if err := os.WriteFile(filepath.Join(dir, "wafcanary.yaml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("    - {percent: 0, min_duration: 5m, min_requests: 5000}\n    - {percent: 50, min_duration: 5m, min_requests: 5000}\n    - {percent: 100, min_duration: 5m, min_requests: 5000}\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, _, err := runRoot(t, ctx, "serve", "-c", filepath.Join(dir, "wafcanary.yaml")); done <- err }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	api := &admin.Client{URL: "http://" + adminAddr, Token: "test-token-0123456789abcdef", Timeout: 10 * time.Second}
	plan := func() int {
		st, err := api.Status(context.Background())
		if err != nil {
			return -1
		}
		return len(st.Plan)
	}
	fleettest.WaitFor(t, 30*time.Second, "serve answering with 3 steps", func() bool { return plan() == 3 })

	write("    - {percent: 0, min_duration: 30m, min_requests: 500}\n    - {percent: 100, min_duration: 30m, min_requests: 500}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitFor(t, 30*time.Second, "2 steps after SIGHUP", func() bool { return plan() == 2 })
	h, err := api.History(context.Background(), 0)
	if err != nil || len(h) == 0 || h[len(h)-1].Action != "configure" || h[len(h)-1].Actor != "sighup" ||
		!strings.Contains(h[len(h)-1].Reason, "steps shadow 30m0s/500, 100% 30m0s/500") {
		t.Errorf("journal after SIGHUP: %+v, %v", h, err)
	}
}
