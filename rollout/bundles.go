package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/wafcanary/wafcanary/ruleset"
)

// SaveRuleset keeps the ruleset's bundle under rulesets/<version>/: its
// own files, then manifest.json (the bundle without its files), last, so a
// bundle with a manifest is whole. It can then be served again after the
// originals change or vanish.
func (s FileStore) SaveRuleset(ctx context.Context, rs *ruleset.Ruleset) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Join(s.Dir, "rulesets", rs.Version)
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return nil // bundles are immutable: same version, same bytes
	}
	b, err := rs.Bundle()
	if err != nil {
		return err
	}
	for name, content := range b.Files {
		if err := writeAtomic(filepath.Join(dir, filepath.FromSlash(name)), content); err != nil {
			return fmt.Errorf("saving ruleset %s: %w", rs.Version, err)
		}
	}
	b.Files = nil
	m, _ := json.Marshal(b)
	return writeAtomic(filepath.Join(dir, "manifest.json"), m)
}

// LoadRuleset compiles a saved bundle and checks it is the version asked for.
func (s FileStore) LoadRuleset(ctx context.Context, version string) (*ruleset.Ruleset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, "rulesets", version)
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("ruleset bundle %s: %w", version, err)
	}
	var b ruleset.Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("ruleset bundle %s: %w", version, err)
	}
	if b.Version != version {
		return nil, fmt.Errorf("ruleset bundle %s: its manifest names version %q", version, b.Version)
	}
	rs, err := b.Compile(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("ruleset bundle %s: %w", version, err)
	}
	return rs, nil
}

// PruneRulesets implements Store: it deletes every bundle under
// rulesets/ whose version is not in keep.
func (s FileStore) PruneRulesets(ctx context.Context, keep []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Join(s.Dir, "rulesets")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ruleset bundles: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || slices.Contains(keep, e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
