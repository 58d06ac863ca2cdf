//go:build linux

package localfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Each row is a path an API request could name. Nothing but a regular
// file within the bound is read; nothing is ever waited on (a FIFO with
// no writer blocks an ordinary open forever); the error names the path and
// what is wrong, and holds none of the file.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := filepath.Join(dir, "huge")
	if f, err := os.Create(huge); err != nil || f.Truncate(1<<30) != nil || f.Close() != nil {
		t.Fatal("a sparse 1 GiB file", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(write("target", "via a link"), link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		max        int64
		content    string // read
		err        error  // or refused with this
		msg        string // in these words
	}{
		{"a regular file", write("ok", "must_pass: []\n"), 1 << 10, "must_pass: []\n", nil, ""},
		{"exactly the bound", write("full", "12345678"), 8, "12345678", nil, ""},
		// Why: Kubernetes mounts ConfigMaps through symbolic links.
		{"a link to a regular file", link, 1 << 10, "via a link", nil, ""},
		{"one byte over", write("over", "123456789"), 8, "", ErrTooLarge, "over: more than 8 bytes (9 bytes): too large"},
		{"a large file, never read", huge, 1 << 20, "", ErrTooLarge, "huge: more than 1 MiB (1073741824 bytes): too large"},
		// Why: /proc files say they are empty; the bound holds while reading.
		{"a file that reports no size", "/proc/self/status", 64, "", ErrTooLarge, "/proc/self/status: more than 64 bytes: too large"},
		{"/dev/zero", "/dev/zero", 1 << 20, "", ErrNotRegular, "/dev/zero (a character device): not a regular file"},
		{"a FIFO", fifo, 1 << 20, "", ErrNotRegular, "fifo (a named pipe): not a regular file"},
		{"a directory", dir, 1 << 20, "", ErrNotRegular, "(a directory): not a regular file"},
		{"a missing file", filepath.Join(dir, "gone"), 1 << 20, "", fs.ErrNotExist, "gone: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Read(tc.path, tc.max)
			switch {
			case tc.err == nil && (err != nil || string(b) != tc.content):
				t.Fatalf("%q, %v; want %q", b, err, tc.content)
			case tc.err != nil && (!errors.Is(err, tc.err) || b != nil):
				t.Fatalf("%q, %v; want %v", b, err, tc.err)
			case tc.err != nil && !strings.Contains(err.Error(), tc.msg):
				t.Fatalf("error %q, want it to say %q", err, tc.msg)
			case tc.err != nil && strings.Count(err.Error(), tc.path) != 1:
				t.Errorf("error %q names the path %d times", err, strings.Count(err.Error(), tc.path))
			}
		})
	}
}
