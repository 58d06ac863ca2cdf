package ruleset

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"github.com/wafcanary/wafcanary/localfile"
)

// File is one file that Coraza read while compiling a ruleset.
type File struct {
	// Name is the name Coraza asked for: relative to the ruleset's
	// directory for local files, "@..." for the CRS's files (embedded,
	// or from the ruleset's CRS directory).
	Name string
	// Embedded is true for files served from the embedded Core Rule Set.
	// A CRS read from a directory (CRSMarker) is not embedded: its files
	// keep their content, are hashed into the version and travel in the
	// ruleset's bundle under their "@..." names.
	Embedded bool
	// Content is the file's bytes as compiled. Local files keep them so a
	// ruleset can be stored and served again after the originals change.
	Content []byte
}

// sourceFS is the root file system handed to Coraza. It serves names that
// contain '@' from the embedded CRS, or from the ruleset's CRS directory
// (crsFrom), and everything else from the ruleset's directory, and records every file read, in order: the version hash is
// then taken over exactly what was compiled, without re-implementing
// SecLang's Include resolution (globs, relative directories) ourselves.
type sourceFS struct {
	local fs.FS
	// dir is local's directory on disk when it is one (Load): its files
	// are read through package localfile, the one reader of files a
	// request to the admin API names, which never opens a FIFO or a
	// device. Rulesets from bundles and the binary have none.
	dir string
	crs fs.FS
	// crsFrom, when set, serves the CRS's names instead of crs, except
	// @coraza.conf-recommended, which is Coraza's (a crsDir, or the
	// recorded files of a bundle).
	crsFrom fs.FS

	mu        sync.Mutex
	read      []File
	localSize int64
}

// Bounds on what a ruleset may read from disk. A candidate path comes
// from an operator over the admin API: /dev/zero once read at 400 MB/s
// until the OOM killer ended the proxy.
const (
	MaxFileBytes  = 8 << 20  // one file
	MaxLocalBytes = 32 << 20 // all of a ruleset's own files
)

// route picks the file system for name and the name to use inside it.
// The CRS file system keys its files by the part starting at '@'; Coraza
// prefixes include names with the including file's directory, so that
// prefix is cut here the same way coreruleset's own wrapper does.
func (s *sourceFS) route(name string) (fs.FS, string, bool) {
	if i := strings.IndexByte(name, '@'); i >= 0 {
		if n := name[i:]; s.crsFrom != nil && n != corazaRecommended {
			return s.crsFrom, n, true
		}
		return s.crs, name[i:], true
	}
	return s.local, name, false
}

// corazaRecommended is Coraza's recommended configuration, which the
// coraza-coreruleset module embeds beside the CRS.
const corazaRecommended = "@coraza.conf-recommended"

func (s *sourceFS) Open(name string) (fs.File, error) {
	fsys, n, crs := s.route(name)
	if err := checkLocal(!crs, n); err != nil {
		return nil, err
	}
	return fsys.Open(n)
}

func (s *sourceFS) ReadFile(name string) ([]byte, error) {
	fsys, n, crs := s.route(name)
	if err := checkLocal(!crs, n); err != nil {
		return nil, err
	}
	embedded := crs && (s.crsFrom == nil || n == corazaRecommended)
	var b []byte
	var err error
	if crs {
		b, err = fs.ReadFile(fsys, n)
	} else {
		b, err = s.readLocal(n)
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !embedded {
		if s.localSize += int64(len(b)); s.localSize > MaxLocalBytes {
			return nil, fmt.Errorf("%s: the ruleset's own files exceed %d MiB together", n, MaxLocalBytes>>20)
		}
	}
	s.read = append(s.read, File{Name: n, Embedded: embedded, Content: b})
	return b, nil
}

// readLocal reads one of the ruleset's own files: through localfile from
// disk, through readBounded from any other file system.
func (s *sourceFS) readLocal(name string) ([]byte, error) {
	if s.dir == "" {
		return readBounded(s.local, name)
	}
	b, err := localfile.Read(filepath.Join(s.dir, filepath.FromSlash(name)), MaxFileBytes)
	switch {
	case errors.Is(err, localfile.ErrTooLarge):
		return nil, fmt.Errorf("%s: more than the %d MiB a ruleset file may have", name, MaxFileBytes>>20)
	case errors.Is(err, localfile.ErrNotRegular):
		return nil, fmt.Errorf("%s: not a regular file", name)
	case errors.Is(err, fs.ErrNotExist):
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return b, err
}

// readBounded reads a local file that must be a regular file of at most
// MaxFileBytes; the size is checked while reading too, since some files
// (under /proc) report none.
//
// The type is checked before opening as well as after: opening a FIFO
// blocks until a writer comes, so an Include of one would hang whoever
// loads the ruleset (a start through the admin API).
func readBounded(fsys fs.FS, name string) ([]byte, error) {
	if info, err := fs.Stat(fsys, name); err == nil && !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", name, info.Mode().Type())
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", name, info.Mode().Type())
	}
	if info.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d MiB a ruleset file may have", name, info.Size(), MaxFileBytes>>20)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("%s: more than the %d MiB a ruleset file may have", name, MaxFileBytes>>20)
	}
	return b, nil
}

func (s *sourceFS) Glob(pattern string) ([]string, error) {
	fsys, p, _ := s.route(pattern)
	return fs.Glob(fsys, p)
}

// checkLocal turns io/fs's bare "invalid argument" for names that leave the
// ruleset directory into an error that says what to do.
func checkLocal(local bool, name string) error {
	if local && !fs.ValidPath(name) {
		return fmt.Errorf("include %q: included files must be inside the ruleset's directory and named relative to it", name)
	}
	return nil
}

func (s *sourceFS) files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]File(nil), s.read...)
}
