//go:build unix

package ruleset

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Opening a FIFO blocks until a writer comes: an Include of one hung the
// load (a start through the admin API) for ever.
func TestLoadRefusesAFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	inc := filepath.Join(dir, "includes-fifo.conf")
	os.WriteFile(inc, []byte("SecRuleEngine On\nInclude fifo.conf\n"), 0o600)
	for path, want := range map[string]string{inc: "fifo.conf: not a regular file", filepath.Join(dir, "fifo.conf"): "not a regular file"} {
		done := make(chan error, 1)
		go func() { _, err := Load(path); done <- err }()
		err := <-done // hangs, and the test times out, if the FIFO is opened
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s): %v, want %q", path, err, want)
		}
	}
}
