package node

// The fault-injection suite: a full disk under state_dir, kill -9 at
// random moments, torn and corrupt state files. Each test checks what a
// user finds next: what serves, what the journal says, and whether the
// process starts again.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/rollout"
)

// smallDisk mounts a tmpfs of size bytes for the test, or reports why it
// cannot (mounting needs CAP_SYS_ADMIN).
func smallDisk(t *testing.T, size int) (string, error) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		return "", err
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir, nil
}

// fill writes to dir until the file system is full, and returns a func
// that frees the space again.
func fill(t *testing.T, dir string) func() {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	f.Close()
	return func() {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
}

// A full disk under state_dir: a start, a promotion and a step that cannot
// be recorded change nothing that serves; a rollback that cannot be
// recorded still takes the candidate out at once, is retried until it is
// recorded, and holds across a restart.
func TestFullDiskUnderStateDir(t *testing.T) {
	dir, err := smallDisk(t, 2<<20)
	if err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v); the controller's part is TestRollbackThatCannotBeRecordedStillWins", err)
	}
	cfg := rolloutConfig(t, newUpstream(t).URL)
	cfg.StateDir = dir
	ls := startLive(t, cfg)
	ctx := context.Background()
	serving := func() bool { return ls.s.router.Snapshot().Candidate != nil }

	free := fill(t, dir)
	_, err = ls.api().Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Actor: "test", Reason: "disk full"})
	if err == nil || !strings.Contains(err.Error(), "no space left") || serving() || ls.s.rollout.State().Phase != rollout.Idle {
		t.Fatalf("start on a full disk: %v; serving %v, state %s", err, serving(), ls.s.rollout.State().Phase)
	}
	free()
	ls.start(t, "embedded:candidate-exclusion.conf")
	send(t, ls.proxy, 200, 0, nil)
	settle(t, ls.s, 150)

	free = fill(t, dir)
	before, share := ls.s.rollout.State(), ls.s.router.Snapshot().Share
	if _, err := ls.api().Do(ctx, admin.Promote, admin.ActionRequest{Actor: "alice", Reason: "disk full", Full: true}); err == nil {
		t.Fatal("a promotion that could not be recorded was acknowledged")
	}
	// An analysis that would advance cannot record it: nothing changes.
	ls.s.rollout.Step(ctx, time.Now().Add(time.Minute))
	if st := ls.s.rollout.State(); st.Phase != before.Phase || st.Percent != before.Percent || st.Step != before.Step ||
		ls.s.router.Snapshot().Share != share {
		t.Fatalf("unrecorded actions changed the rollout: %s step %d at %v%%, was %s step %d", st.Phase, st.Step, st.Percent, before.Phase, before.Step)
	}

	_, err = ls.api().Do(ctx, admin.Rollback, admin.ActionRequest{Actor: "alice", Reason: "blocks customers"})
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("rollback on a full disk: %v, want the store's error", err)
	}
	if serving() || ls.s.rollout.State().Phase != rollout.RolledBack {
		t.Fatalf("after an unrecorded rollback: candidate serving %v, state %s", serving(), ls.s.rollout.State().Phase)
	}
	// Nothing puts the candidate back while the record is missing.
	ls.s.rollout.Step(ctx, time.Now().Add(2*time.Minute))
	if _, err := ls.api().Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Actor: "test", Reason: "again"}); err == nil {
		t.Fatal("a start was accepted while a rollback waited to be recorded")
	}
	if err := ls.s.Reload(); err != nil {
		t.Logf("reload on a full disk: %v", err)
	}
	if serving() {
		t.Fatal("the candidate serves again before the rollback is recorded")
	}

	free()
	ls.s.rollout.Step(ctx, time.Now().Add(3*time.Minute))
	h, err := ls.s.History(0)
	if err != nil || len(h) == 0 || h[len(h)-1].Action != "rollback" || !strings.Contains(h[len(h)-1].Reason, "blocks customers") {
		t.Fatalf("journal once space returned: %v; last %+v", err, h[len(h)-1])
	}
	ls.stop()
	again := startLive(t, cfg)
	if again.s.router.Snapshot().Candidate != nil || again.s.rollout.State().Phase != rollout.RolledBack {
		t.Fatalf("after a restart: %s, candidate serving %v", again.s.rollout.State().Phase, again.s.router.Snapshot().Candidate != nil)
	}
}

// Torn and corrupt state files, as a crash, a full disk or a hand edit
// leave them. Each is refused at start-up naming the file, or started
// from in a state that serves nothing it should not.
func TestCorruptStateFiles(t *testing.T) {
	cfg := rolloutConfig(t, newUpstream(t).URL)
	ls := startLive(t, cfg)
	ls.start(t, "embedded:candidate-exclusion.conf")
	cand := ls.s.rollout.State().Candidate.Version
	ls.stop()
	template := cfg.StateDir
	bundle := filepath.Join("rulesets", cand)
	var bundleFile string
	filepath.WalkDir(filepath.Join(template, bundle), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != "manifest.json" {
			bundleFile, _ = filepath.Rel(template, p)
		}
		return nil
	})
	if bundleFile == "" {
		t.Fatal("the candidate's bundle holds no file")
	}

	cut := func(name string, keep func(n int) int) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(p, b[:keep(len(b))], 0o600)
		}
	}
	write := func(name, content string, appendTo bool) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			if appendTo {
				flag = os.O_WRONLY | os.O_APPEND
			}
			f, err := os.OpenFile(filepath.Join(dir, name), flag, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(content)
			f.Close()
		}
	}
	rolledBack := func(t *testing.T, n *liveServer) {
		if st := n.s.rollout.State(); st.Phase != rollout.RolledBack || n.s.router.Snapshot().Candidate != nil {
			t.Fatalf("state %s, candidate serving %v; want rolled back, baseline alone", st.Phase, n.s.router.Snapshot().Candidate != nil)
		}
	}
	resumed := func(t *testing.T, n *liveServer) {
		if st := n.s.rollout.State(); !st.Phase.Active() || st.Candidate.Version != cand || n.s.router.Snapshot().Candidate == nil {
			t.Fatalf("state %s; want the rollout of %s resumed", st.Phase, cand)
		}
	}
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		refused string                            // an error containing this, or
		then    func(t *testing.T, n *liveServer) // a start followed by this check
	}{
		{"rollout.json cut in half", cut("rollout.json", func(n int) int { return n / 2 }), "rollout.json: unexpected end of JSON input", nil},
		{"rollout.json empty", cut("rollout.json", func(int) int { return 0 }), "rollout.json: unexpected end of JSON input", nil},
		{"rollout.json zeros", write("rollout.json", "\x00\x00\x00\x00", false), "rollout.json: invalid character", nil},
		{"rollout.json unknown state", write("rollout.json", `{"state":"exploded","baseline":{"version":"x"}}`, false), `"exploded"`, nil},
		{"routing.secret cut", cut("routing.secret", func(int) int { return 5 }), "routing.secret holds 5 characters", nil},
		{"admin.token cut", cut("admin.token", func(int) int { return 3 }), "admin.token holds 3 characters", nil},
		{"journal torn at its end", write("journal.jsonl", `{"time":"2026-12-01T00:00:00Z","act`, true), "", func(t *testing.T, n *liveServer) {
			resumed(t, n)
			if _, err := n.api().Do(context.Background(), admin.Rollback, admin.ActionRequest{Actor: "t", Reason: "after a torn line"}); err != nil {
				t.Fatal(err)
			}
			h, err := n.s.History(0)
			if err != nil || len(h) != 3 || h[1].Action != "start" || h[2].Reason != "after a torn line" {
				t.Fatalf("history %+v, %v; want the first baseline, the start, then the rollback", h, err)
			}
		}},
		{"journal garbage in the middle", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "journal.jsonl"))
			os.WriteFile(filepath.Join(dir, "journal.jsonl"), append([]byte("\x00\x01 not json\n"), b...), 0o600)
		}, "", func(t *testing.T, n *liveServer) {
			resumed(t, n)
			if h, err := n.s.History(0); err != nil || len(h) == 0 || h[len(h)-1].Action != "start" {
				t.Fatalf("history %d entries, %v", len(h), err)
			}
		}},
		{"candidate bundle manifest garbage", write(filepath.Join(bundle, "manifest.json"), "{", false), "", rolledBack},
		{"candidate bundle file cut", cut(bundleFile, func(n int) int { return n / 3 }), "", rolledBack},
		{"temporary files left by a crash", func(t *testing.T, dir string) {
			write(".tmp-123456", "{half a state", false)(t, dir)
			write(filepath.Join(bundle, ".tmp-99"), "SecRule", false)(t, dir)
			write("routing.secret.tmp", "abc", false)(t, dir)
		}, "", func(t *testing.T, n *liveServer) {
			resumed(t, n)
			left, _ := filepath.Glob(filepath.Join(n.s.cfg.StateDir, "*tmp*"))
			more, _ := filepath.Glob(filepath.Join(n.s.cfg.StateDir, bundle, ".tmp-*"))
			if len(left)+len(more) > 0 {
				t.Errorf("left behind: %v %v", left, more)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.CopyFS(dir, os.DirFS(template)); err != nil {
				t.Fatal(err)
			}
			tc.corrupt(t, dir)
			c := cfg
			c.StateDir = dir
			if tc.refused != "" {
				n, err := New(c, quietLogger(), "test")
				if err == nil {
					n.Close()
					t.Fatalf("started; want a refusal containing %q", tc.refused)
				}
				if !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("refused with %q, want %q", err, tc.refused)
				}
				return
			}
			tc.then(t, startLive(t, c))
		})
	}
}
