package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/node"
)

// start always says the scope: the one declared, the one inferred, or
// that none was inferred, why, and the flags to declare it (issue 27,
// item 6: a hand-written candidate got no scope and only the server's
// log said why, so the rollout headed for a rollback on the operator's
// own fix).
func TestStartPrintsScope(t *testing.T) {
	clearEnv(t)
	tn := startNode(t, quietLogger(), nil)
	b, err := os.ReadFile("../../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(rule string) string {
		main := string(b)
		i := strings.Index(main, "Include @owasp_crs/*.conf")
		p := filepath.Join(dir, "c.conf")
		if err := os.WriteFile(p, []byte(main[:i]+rule+"\n"+main[i:]), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const how = "; declare it with --scope-rule, --scope-path, --scope-host"
	for _, c := range []struct {
		name      string
		candidate string // a rule to add to the baseline, or embedded:NAME
		flags     []string
		want      string
	}{
		{"an exclusion on / is that one path", `SecRule REQUEST_FILENAME "@streq /" "id:10001,phase:1,pass,nolog,ctl:ruleRemoveById=941100"`, nil,
			"scope       a disagreement is expected when: path /, and caused only by rules 941100 (inferred from the candidate)\n"},
		{"too many rules", `SecRule REQUEST_FILENAME "@streq /api/notes" "id:10001,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=attack-xss;ARGS:text"`, nil,
			"takes 33 rules away on path /api/notes: not inferred (at most 25)" + how + "\n"},
		{"body access off", `SecRule REQUEST_FILENAME "@streq /upload" "id:10001,phase:1,pass,nolog,ctl:requestBodyAccess=Off"`, []string{"--override-gates", "the test's"},
			"ctl:requestBodyAccess=off stops inspecting the body on path /upload: not inferred (any rule may lose its blocks there)" + how + "\n"},
		{"nothing taken away", "embedded:candidate-pl2.conf", nil,
			"scope       none inferred: the candidate adds no exclusion to the baseline (nothing taken away): every lost block counts" + how + "\n"},
		{"declared", "embedded:candidate-pl2.conf", []string{"--scope-path", "/x", "--scope-rule", "942100"},
			"scope       a disagreement is expected when: path under /x, and caused only by rules 942100\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cand := c.candidate
			if !strings.HasPrefix(cand, "embedded:") {
				cand = write(cand)
			}
			args := append([]string{"start", "--candidate", cand, "--reason", c.name, "--admin", tn.admin}, c.flags...)
			out, _, err := runRoot(t, context.Background(), args...)
			if err != nil {
				t.Fatalf("start: exit %d, %v\n%s", exitCode(err), err, out)
			}
			t.Logf("start prints:\n%s", out)
			if !strings.Contains(out, c.want) {
				t.Errorf("start prints:\n%s\nwant a line with %q", out, c.want)
			}
			if strings.Count(out, "scope  ") != 1 {
				t.Errorf("start prints the scope %d times:\n%s", strings.Count(out, "scope  "), out)
			}
			// status says it for the whole rollout, not only start.
			if st, _, err := runRoot(t, context.Background(), "status", "--admin", tn.admin); err != nil || !strings.Contains(st, c.want) {
				t.Errorf("status: %v\n%s\nwant a line with %q", err, st, c.want)
			}
			if _, _, err := runRoot(t, context.Background(), "rollback", "--reason", "next row", "--admin", tn.admin); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, _, err := runRoot(t, context.Background(), "start", "--reason", "neither", "--admin", tn.admin); exitCode(err) != exitUsage {
		t.Errorf("start without --candidate or --exclusion: exit %d, %v", exitCode(err), err)
	}
}

// tune takes blocked requests on several paths and hosts at once: one
// candidate with one exclusion each (issue 27, item 7: it exited 1, so
// eight false positives took six serial rollouts); options that do not
// fit the requests are a usage error (64), as the README's table says.
func TestTuneBatchAcrossPaths(t *testing.T) {
	clearEnv(t)
	tn := startNode(t, quietLogger(), func(c *node.Config) { c.Capture.Enabled = true })
	fp := demo.NoteFalsePositive()
	for id, path := range map[string]string{"batch-notes": "/api/notes", "batch-drafts": "/api/drafts"} {
		req, _ := http.NewRequest(fp.Method, tn.proxy+path, strings.NewReader(fp.Body))
		req.Header = fp.Header.Clone()
		req.Header.Set("X-Request-ID", id)
		req.Host = "shop.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: %d, want 403", path, resp.StatusCode)
		}
	}
	for _, id := range []string{"batch-notes", "batch-drafts"} {
		for i := 0; ; i++ { // the proxy reports a block after answering it
			if o, _, err := runRoot(t, context.Background(), "explain", id, "--admin", tn.admin); err == nil && strings.Contains(o, "capture (redacted)") {
				break
			}
			if i == 100 {
				t.Fatalf("no capture of %s", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	dir := t.TempDir()
	excl := filepath.Join(dir, "c.exclusions.conf")
	args := []string{"tune", "batch-notes", "batch-drafts", "--output", filepath.Join(dir, "c.conf"), "--cases", filepath.Join(dir, "c.cases.yaml"), "--exclusion-output", excl, "--admin", tn.admin}
	out, _, err := runRoot(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("tune across paths: exit %d, %v\n%s", exitCode(err), err, out)
	}
	t.Logf("tune prints:\n%s", out)
	for _, want := range []string{"plus, for each host and path:", "exclusion 10000, on shop.example, path /api/notes (requests batch-notes):",
		"exclusion 10001, on shop.example, path /api/drafts (requests batch-drafts):", "wrote " + filepath.Join(dir, "c.cases.yaml") + ": 2 must_pass"} {
		if !strings.Contains(out, want) {
			t.Errorf("tune lacks %q:\n%s", want, out)
		}
	}
	// The exclusions alone, started on the baseline that serves: each
	// its own clause of the scope, exactly its path.
	out, _, err = runRoot(t, context.Background(), "start", "--exclusion", excl, "--reason", "batch", "--admin", tn.admin)
	if err != nil {
		t.Fatalf("start --exclusion: exit %d, %v\n%s", exitCode(err), err, out)
	}
	for _, want := range []string{"base        the exclusions of " + excl + " applied to the served baseline",
		"scope       a disagreement is expected when: (host shop.example, and path /api/notes, and caused only by rules 941100, 941120) or (host shop.example, and path /api/drafts, and caused only by rules 941100, 941120) (inferred from the candidate)"} {
		if !strings.Contains(out, want) {
			t.Errorf("start --exclusion lacks %q:\n%s", want, out)
		}
	}
	_, _, err = runRoot(t, context.Background(), append(args, "--force", "--path", "/blog")...)
	if exitCode(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "not under --path") {
		t.Errorf("a --path that holds neither request: exit %d, %v", exitCode(err), err)
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
