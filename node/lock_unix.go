//go:build unix

package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockStateDir takes an exclusive lock on state_dir for this process: two
// processes on one state_dir would each run rollouts on the same files,
// the last writer winning. The lock file names its holder; the lock is
// the kernel's (flock), so a holder that dies leaves none behind.
func lockStateDir(dir, who string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state_dir %s is in use by another wafcanary (%s): one process per state_dir", dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("state_dir: locking %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d, %s\n", os.Getpid(), who)), 0)
	return func() { _ = f.Close() }, nil
}
