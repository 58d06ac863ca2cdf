//go:build unix

package node

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
)

// The fault this guards against: `start --cases FILE` read any file on
// the server without a bound and quoted it in its answer. /etc/shadow's
// lines came back whole; a FIFO hung the handler; /dev/zero OOM-killed the
// proxy. Every row is a file that is not a cases file: the start is
// refused with 400, naming the file and what is wrong with it, and the
// answer holds nothing of what the file holds.
func TestStartCasesFileIsNeverQuoted(t *testing.T) {
	ls := startLive(t, rolloutConfig(t, newUpstream(t).URL))
	dir := t.TempDir()
	const secret = "SECRETHASHVALUE"
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("must_pass:\n  - {name: x, path: /}\n# "+strings.Repeat("y", 2<<20)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Today's code blocks in open(2) on the FIFO: a writer that opens and
	// closes it lets such a handler go, so a failing run still ends.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	for _, tc := range []struct {
		name, path string
		want       []string // fragments of the error, in order
	}{
		{"an /etc/shadow-format file", write("shadow", "root:$6$saltsalt$"+secret+":19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"),
			[]string{"cases ", "shadow: line 1: not a cases file"}},
		// Why: yaml quotes the value it could not decode (`root:x:...`).
		{"an /etc/passwd-format file", write("passwd", "root:x:0:0:"+secret+":/root:/bin/bash\n"),
			[]string{"passwd: line 1: not a cases file"}},
		// Why: yaml names the unknown key, which is the file's content.
		{"a key: value file", write("env", "DB_PASSWORD: "+secret+"\n"),
			[]string{"env: line 1: not a cases file (unknown key"}},
		{"a YAML syntax error", write("broken", "must_pass: [\n  "+secret+": {\n"),
			[]string{"broken: line ", ": not a cases file"}},
		{"a FIFO", fifo, []string{"fifo (a named pipe): not a regular file"}},
		// /dev/zero is localfile's test: here, today's code would read it
		// until the OOM killer came.
		{"a device", "/dev/null", []string{"/dev/null (a character device): not a regular file"}},
		{"a directory", dir, []string{"(a directory): not a regular file"}},
		{"a missing file", filepath.Join(dir, "gone.yaml"), []string{"gone.yaml: no such file"}},
		// Last: today's code takes it and starts a rollout.
		{"a file over the bound", big, []string{"big.yaml: more than 1 MiB (2097189 bytes): too large"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := ls.api().Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Reason: "r", Cases: tc.path})
			var e *admin.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("start: %v, want 400", err)
			}
			if strings.Contains(e.Message, secret) || strings.Contains(e.Message, "root") || strings.Contains(e.Message, "DB_PASSWORD") {
				t.Errorf("the answer quotes the file: %s", e.Message)
			}
			rest := e.Message
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("answer %q lacks %q", e.Message, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
	if st := ls.s.rollout.State(); st.Phase.Active() {
		t.Errorf("a rollout started: %s", st.Phase)
	}
}
