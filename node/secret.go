package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// stateValue returns the secret kept in state_dir/name, creating it (mode
// 0600) on first use, so sticky assignment and the admin token survive
// restarts without being written into the config file.
func stateValue(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(strings.TrimSpace(string(b))) >= 16:
		return strings.TrimSpace(string(b)), nil
	case err == nil:
		// Regenerating it would move about half the clients to the other
		// arm (routing.secret) or lock every operator out (admin.token).
		return "", fmt.Errorf("state_dir: %s holds %d characters, fewer than the 16 it was written with: truncated or edited; restore it from a backup (or, knowing that every client may change arm, delete it to generate a new one)", path, len(strings.TrimSpace(string(b))))
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("state_dir: %w", err)
	}
	// Written and synced before it is used: a secret lost in a crash
	// would move clients between arms at the next start.
	v := rand.Text()
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	_, werr := f.WriteString(v + "\n")
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	return v, nil
}
