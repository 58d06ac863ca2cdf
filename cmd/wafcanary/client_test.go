package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/wafcanary/wafcanary/node"
)

// Where a client command finds the admin API and its token: a flag
// given, the environment, the server's configuration file (paths in it
// relative to it), the defaults.
func TestClientTarget(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "wafcanary.yaml")
	os.WriteFile(cfgFile, []byte("admin:\n  listen: 127.0.0.1:9555\nstate_dir: st\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "st"), 0o700)
	os.WriteFile(filepath.Join(dir, "st", "admin.token"), []byte("token-from-state-dir-0123\n"), 0o600)
	tokenFile := filepath.Join(dir, "other.token")
	os.WriteFile(tokenFile, []byte("token-from-flag-file-0123"), 0o600)
	for _, c := range []struct {
		name             string
		args             []string
		env              map[string]string
		url, token, from string
		err              string
	}{
		{name: "the config gives both", args: []string{"-c", cfgFile}, url: "http://127.0.0.1:9555", token: "token-from-state-dir-0123", from: filepath.Join(dir, "st", "admin.token")},
		{name: "WAFCANARY_ADMIN over the config", args: []string{"-c", cfgFile}, env: map[string]string{"WAFCANARY_ADMIN": "10.0.0.5:9090"}, url: "http://10.0.0.5:9090", token: "token-from-state-dir-0123"},
		{name: "--admin over the environment", args: []string{"-c", cfgFile, "--admin", "https://admin.example:9443/"}, env: map[string]string{"WAFCANARY_ADMIN": "10.0.0.5:9090"}, url: "https://admin.example:9443"},
		{name: "--token-file over the config", args: []string{"-c", cfgFile, "--token-file", tokenFile}, token: "token-from-flag-file-0123", from: tokenFile},
		{name: "WAFCANARY_ADMIN_TOKEN over all", args: []string{"-c", cfgFile, "--token-file", tokenFile}, env: map[string]string{"WAFCANARY_ADMIN_TOKEN": "from-env-0123456789"}, token: "from-env-0123456789", from: "WAFCANARY_ADMIN_TOKEN"},
		{name: "not a URL", args: []string{"--admin", "ftp://x", "--token-file", tokenFile}, err: "want the admin listener's URL"},
		{name: "no token anywhere", args: []string{"--token-file", filepath.Join(dir, "missing")}, err: "no admin token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			o := &clientOptions{}
			cmd := &cobra.Command{Use: "x"}
			addClientFlags(cmd, o)
			if err := cmd.ParseFlags(c.args); err != nil {
				t.Fatal(err)
			}
			got, err := o.target()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.url != "" && got.url != c.url || c.token != "" && got.token != c.token || c.from != "" && got.tokenFrom != c.from {
				t.Errorf("got %+v", got)
			}
		})
	}
	for listen, want := range map[string]string{"0.0.0.0:9090": "http://127.0.0.1:9090", "[::]:9090": "http://[::1]:9090", ":9090": "http://127.0.0.1:9090", "10.1.2.3:9090": "http://10.1.2.3:9090"} {
		if got := adminURL(listen); got != want {
			t.Errorf("admin.listen %s: %s, want %s", listen, got, want)
		}
	}
	// serve reads the same file the same way: state_dir relative to it,
	// unless the environment gave it.
	clearEnv(t)
	cfg, err := loadConfig(cfgFile, nil)
	if err != nil || cfg.StateDir != filepath.Join(dir, "st") || cfg.Rulesets.Baseline != "embedded:baseline.conf" {
		t.Errorf("state_dir %q, baseline %q, %v", cfg.StateDir, cfg.Rulesets.Baseline, err)
	}
	t.Setenv("WAFCANARY_STATE_DIR", "elsewhere")
	if cfg, _ := loadConfig(cfgFile, nil); cfg.StateDir != "elsewhere" {
		t.Errorf("state_dir from the environment became %q", cfg.StateDir)
	}
}

// A wrong --admin gets a message that says so, and never the token; a
// wrong token says where the token lives; an unresponsive server is
// given up on after --timeout.
func TestClientMessages(t *testing.T) {
	clearEnv(t)
	var sawToken atomic.Bool
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			sawToken.Store(true)
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body>Welcome to the shop</body></html>"))
	}))
	defer html.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	t.Setenv("WAFCANARY_ADMIN_TOKEN", "a-token-0123456789")

	_, _, err := runRoot(t, context.Background(), "status", "--admin", html.URL)
	if exitCode(err) != exitUnreachable || !strings.Contains(err.Error(), "not a wafcanary admin listener") || strings.Contains(err.Error(), "Welcome") || sawToken.Load() {
		t.Errorf("the shop's page as --admin: exit %d, %v, token sent %v", exitCode(err), err, sawToken.Load())
	}
	start := time.Now()
	_, _, err = runRoot(t, context.Background(), "status", "--admin", hang.URL, "--timeout", "300ms")
	if exitCode(err) != exitUnreachable || time.Since(start) > 3*time.Second {
		t.Errorf("an unresponsive admin: exit %d after %s, %v", exitCode(err), time.Since(start), err)
	}
	tn := startNode(t, quietLogger(), nil)
	t.Setenv("WAFCANARY_ADMIN_TOKEN", "the-wrong-token-0123456789")
	_, _, err = runRoot(t, context.Background(), "status", "--admin", strings.TrimPrefix(tn.admin, "http://"))
	if exitCode(err) != exitUnauthorized || !strings.Contains(err.Error(), "the admin token from WAFCANARY_ADMIN_TOKEN was refused") || !strings.Contains(err.Error(), "state_dir/admin.token") {
		t.Errorf("a wrong token: exit %d, %v", exitCode(err), err)
	}
}

// --watch under -o json prints one JSON object a line, no terminal codes,
// and ends with the rollout; --wait gives up at --timeout with exit 9 and
// refuses to wait on no rollout.
func TestStatusFollow(t *testing.T) {
	clearEnv(t)
	tn := startNode(t, quietLogger(), nil)
	if _, _, err := runRoot(t, context.Background(), "status", "--wait", "--admin", tn.admin); exitCode(err) != exitConflict {
		t.Errorf("--wait with no rollout: exit %d, %v", exitCode(err), err)
	}
	if out, _, err := runRoot(t, context.Background(), "start", "--candidate", "embedded:candidate-exclusion.conf", "--reason", "follow", "--admin", tn.admin); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	start := time.Now()
	if _, _, err := runRoot(t, context.Background(), "status", "--wait", "--timeout", "400ms", "--interval", "100ms", "--admin", tn.admin); exitCode(err) != exitWaitTimeout || time.Since(start) > 5*time.Second {
		t.Errorf("--wait past --timeout: exit %d after %s, %v", exitCode(err), time.Since(start), err)
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := runRoot(t, context.Background(), "status", "--watch", "-o", "json", "--interval", "100ms", "--admin", tn.admin)
		done <- result{out, err}
	}()
	time.Sleep(350 * time.Millisecond)
	if _, _, err := runRoot(t, context.Background(), "rollback", "--reason", "enough", "--admin", tn.admin); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("--watch did not end with the rollout")
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if r.err != nil || len(lines) < 3 || strings.Contains(r.out, "\033") || !strings.Contains(lines[len(lines)-1], `"state":"rolled_back"`) {
		t.Fatalf("--watch -o json: %v, %d lines:\n%s", r.err, len(lines), r.out)
	}
	for _, l := range lines {
		var st map[string]any
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			t.Errorf("not a JSON line: %q", l)
		}
	}
}

// start's refusals exit as the README's table says: a candidate that does
// not compile 3, with its file and line; a file the server does not have
// 64, saying so rather than "does not compile".
func TestStartExitCodes(t *testing.T) {
	clearEnv(t)
	tn := startNode(t, quietLogger(), nil)
	broken, _ := filepath.Abs("testdata/rulesets/broken.conf")
	_, _, err := runRoot(t, context.Background(), "start", "--candidate", broken, "--reason", "x", "--admin", tn.admin)
	if exitCode(err) != exitInvalidRuleset || !strings.Contains(err.Error(), "broken.conf:3:") || strings.Count(err.Error(), "does not compile") != 1 {
		t.Errorf("a broken candidate: exit %d, %v", exitCode(err), err)
	}
	_, _, err = runRoot(t, context.Background(), "start", "--candidate", "/no/such/candidate.conf", "--reason", "x", "--admin", tn.admin)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "no such file on the server") || strings.Contains(err.Error(), "compile") {
		t.Errorf("a missing candidate: exit %d, %v", exitCode(err), err)
	}
}

// start is not silent while the server's gates run: the CRS suite's
// progress reaches stderr.
func TestStartShowsGateProgress(t *testing.T) {
	needSuite(t, "runs the CRS regression suite through two proxies (about 15 s)")
	clearEnv(t)
	tn := startNode(t, quietLogger(), func(c *node.Config) { c.Gates.CRSSuite = true })
	out, stderr, err := runRoot(t, context.Background(), "start", "--candidate", "embedded:candidate-exclusion.conf", "--reason", "progress", "--admin", tn.admin)
	if err != nil {
		t.Fatalf("start: %v\n%s%s", err, out, stderr)
	}
	if !regexp.MustCompile(`gates: CRS regression suite, \d+ of \d+ cases sent \(\d+ s\)`).MatchString(stderr) {
		t.Errorf("no suite progress on stderr:\n%s", stderr)
	}
	t.Logf("stderr:\n%s", stderr)
}
