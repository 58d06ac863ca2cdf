package ruleset

import (
	"errors"
	"fmt"
	"io/fs"
	"testing/fstest"
)

// Bundle is a ruleset's own files with what it takes to compile them
// again, on any replica running this binary: the embedded CRS is part of
// every binary and not carried. The file store keeps a bundle as files
// beside a manifest (the bundle without Files), the fleet store as one
// JSON value in etcd.
type Bundle struct {
	Version string            `json:"version"`
	Main    string            `json:"main"`
	Source  string            `json:"source"`
	Files   map[string][]byte `json:"files,omitempty"`
}

// Bundle returns r's bundle. It fails for a ruleset whose main file is
// embedded (nothing of its own to carry) or was not recorded.
func (r *Ruleset) Bundle() (Bundle, error) {
	if len(r.Files) == 0 || r.Files[0].Embedded {
		return Bundle{}, fmt.Errorf("ruleset %s: main file not recorded", r.Path)
	}
	b := Bundle{Version: r.Version, Main: r.Files[0].Name, Source: r.Path, Files: map[string][]byte{}}
	for _, f := range r.Files {
		if !f.Embedded {
			b.Files[f.Name] = f.Content
		}
	}
	return b, nil
}

// ErrVersionMismatch is a bundle that compiles to another version than it
// was saved as: the embedded CRS changed with the binary, most likely.
var ErrVersionMismatch = errors.New("bundle compiles to another version")

// Compile compiles the bundle from fsys, or from its own Files when fsys
// is nil, and refuses the result unless it is the version saved, so that
// what serves is exactly what was validated.
func (b Bundle) Compile(fsys fs.FS) (*Ruleset, error) {
	if fsys == nil {
		m := fstest.MapFS{}
		for name, content := range b.Files {
			m[name] = &fstest.MapFile{Data: content, Mode: 0o644}
		}
		fsys = m
	}
	rs, err := LoadFS(fsys, b.Main, b.Source)
	if err != nil {
		return nil, err
	}
	if rs.Version != b.Version {
		rs.Retire()
		return nil, fmt.Errorf("%w: saved as %s, compiles to %s (was the embedded CRS upgraded with the binary?); not serving it", ErrVersionMismatch, b.Version, rs.Version)
	}
	return rs, nil
}
