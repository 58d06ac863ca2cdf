package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/fleet/fleettest"
)

// serve applies the gc section to the process it runs in, before the
// rulesets compile; the standard GOGC and GOMEMLIMIT variables still win
// over it. The real binary is run, and the Go runtime's own figures are
// read back from /metrics, so what is checked is what the process runs
// with, not what a log line claims.
func TestServeAppliesTheGCSection(t *testing.T) {
	bin := wafcanaryBinary(t)
	up := newUpstream(t).URL
	run := func(env ...string) (metrics, log string) {
		t.Helper()
		dir := t.TempDir()
		adminAddr := freePort(t)
		cfg := filepath.Join(dir, "wafcanary.yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf("listen: %s\nupstream: %s\nstate_dir: %s\nadmin: {listen: %s, token: gc-test-token-0123456789abcdef}\ngates: {crs_suite: false}\n",
			freePort(t), up, filepath.Join(dir, "state"), adminAddr)), 0o600)
		cmd := exec.Command(bin, "serve", "-c", cfg)
		cmd.Env = append(withoutWafcanaryEnv(), env...)
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		fleettest.WaitFor(t, 60*time.Second, "wafcanary ready", func() bool {
			resp, err := http.Get("http://" + adminAddr + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+adminAddr+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), stderr.String()
	}
	gauge := func(metrics, name string) string {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("no %s in /metrics", name)
		}
		return m[1]
	}

	m, log := run("WAFCANARY_GC_PERCENT=250", "WAFCANARY_GC_MEMORY_LIMIT=300MiB")
	if p, l := gauge(m, "go_gc_gogc_percent"), gauge(m, "go_gc_gomemlimit_bytes"); p != "250" || l != "3.145728e+08" {
		t.Errorf("configured 250%% and 300MiB: the runtime runs with GOGC %s, GOMEMLIMIT %s", p, l)
	}
	if !strings.Contains(log, `"msg":"garbage collector","percent":250,"percent_from":"config","memory_limit_bytes":314572800,"memory_limit_from":"config"`) {
		t.Errorf("start-up log does not say what the collector runs with:\n%s", log)
	}

	m, log = run("WAFCANARY_GC_PERCENT=250", "WAFCANARY_GC_MEMORY_LIMIT=300MiB", "GOGC=150", "GOMEMLIMIT=1GiB")
	if p, l := gauge(m, "go_gc_gogc_percent"), gauge(m, "go_gc_gomemlimit_bytes"); p != "150" || l != "1.073741824e+09" {
		t.Errorf("GOGC=150 and GOMEMLIMIT=1GiB must win over the config: the runtime runs with GOGC %s, GOMEMLIMIT %s", p, l)
	}
	if !strings.Contains(log, `"percent":150,"percent_from":"environment","memory_limit_bytes":1073741824,"memory_limit_from":"environment"`) {
		t.Errorf("start-up log does not say the environment won:\n%s", log)
	}

	// A bad value is refused with its key before anything serves.
	bad := exec.Command(bin, "serve", "--state-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--upstream", up)
	bad.Env = append(withoutWafcanaryEnv(), "WAFCANARY_GC_MEMORY_LIMIT=512M")
	out, err := bad.CombinedOutput()
	if code := bad.ProcessState.ExitCode(); err == nil || code != exitUsage || !strings.Contains(string(out), "gc.memory_limit: want auto, off or a size such as 512MiB") {
		t.Errorf("memory_limit 512M: exit %d, %s; want a usage error naming gc.memory_limit", code, out)
	}
}

// withoutWafcanaryEnv is the test process's environment without any
// WAFCANARY_ variable or Go collector setting, for a child process.
func withoutWafcanaryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WAFCANARY_") && !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	return env
}
