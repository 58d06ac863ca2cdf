package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fault this guards against: a truncated routing.secret was silently
// regenerated and about half the clients changed arm.
func TestStateValue(t *testing.T) {
	dir := t.TempDir()
	v, err := stateValue(dir, "routing.secret")
	if err != nil || len(v) < 16 {
		t.Fatalf("first use: %q, %v", v, err)
	}
	if again, err := stateValue(dir, "routing.secret"); err != nil || again != v {
		t.Fatalf("second read: %q, %v; want the same secret", again, err)
	}
	if info, _ := os.Stat(filepath.Join(dir, "routing.secret")); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	os.WriteFile(filepath.Join(dir, "routing.secret"), []byte(v[:7]+"\n"), 0o600)
	if _, err := stateValue(dir, "routing.secret"); err == nil || !strings.Contains(err.Error(), "routing.secret holds 7 characters") {
		t.Fatalf("truncated secret: %v, want refused naming the file", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "routing.secret")); string(b) != v[:7]+"\n" {
		t.Error("the truncated file was overwritten")
	}
}

// The fault this guards against: two processes on one state_dir each ran
// rollouts on the same files, the last writer winning.
func TestOneNodePerStateDir(t *testing.T) {
	cfg := testConfig(t, newUpstream(t).URL)
	first, err := New(cfg, quietLogger(), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, quietLogger(), "test")
	if err == nil || !strings.Contains(err.Error(), "in use by another wafcanary (pid ") || !strings.Contains(err.Error(), cfg.Listen) {
		t.Fatalf("second node on the same state_dir: %v, want refused naming the holder", err)
	}
	first.Close()
	again, err := New(cfg, quietLogger(), "test")
	if err != nil {
		t.Fatalf("after the first released it: %v", err)
	}
	again.Close()
}
