package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileStore keeps rollout state, journal and ruleset bundles in a
// directory. State is written atomically (temp file, fsync, rename, fsync
// of the directory) so a crash at any moment leaves the old or the new
// state, never half of one; the journal is appended and synced per entry.
type FileStore struct {
	Dir string
	// JournalMaxBytes and JournalKeep override the journal's rotation
	// (0: JournalMaxBytes, JournalKeep).
	JournalMaxBytes int64
	JournalKeep     int
}

func (s FileStore) statePath() string { return filepath.Join(s.Dir, "rollout.json") }

// Load returns the saved state, or the idle state if none was saved.
func (s FileStore) Load(ctx context.Context) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return State{Phase: Idle}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("rollout state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("rollout state %s: %w", s.statePath(), err)
	}
	return st, nil
}

// Save writes st atomically.
func (s FileStore) Save(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.statePath(), b)
}

// tempPrefix names writeAtomic's temporary files.
const tempPrefix = ".tmp-"

// RemoveTemp deletes the temporary files a crash left between create and
// rename (writeAtomic's, and name.tmp), anywhere under the directory, and
// returns how many there were. Call it holding the directory's lock: no
// write is then in progress.
func (s FileStore) RemoveTemp() (int, error) {
	n := 0
	err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if name := d.Name(); d.Type().IsRegular() && (strings.HasPrefix(name, tempPrefix) || strings.HasSuffix(name, ".tmp")) {
			if err := os.Remove(p); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("state_dir: removing temporary files: %w", err)
	}
	return n, nil
}

func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing left to remove
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Commit saves st, then journals e. On one node there is no other writer
// to lose a race to.
func (s FileStore) Commit(ctx context.Context, st State, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.Save(st); err != nil {
		return err
	}
	return s.Append(ctx, e)
}
