package ruleset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/wafcanary/wafcanary/localfile"
)

// CRS is the Core Rule Set a ruleset includes: the one embedded in the
// binary, or one read from a directory named by the ruleset's marker
// line (CRSMarker).
type CRS struct {
	// Dir is the directory the CRS was read from, absolute; "" for the
	// CRS embedded in the binary (or a ruleset from a bundle, whose CRS
	// files travel with it).
	Dir string `json:"dir,omitempty"`
	// Version is the release the rules say they are (their ver: action,
	// OWASP_CRS/4.22.0, read the most often): "4.22.0"; "" when the
	// ruleset loads no CRS rule.
	Version string `json:"version,omitempty"`
	// Setup is crs_setup_version as crs-setup sets it (4220), 0 when
	// nothing sets it.
	Setup int `json:"setup,omitempty"`
}

// String says which CRS it is: "CRS 4.25.0 (embedded)", "CRS 4.22.0
// from /srv/crs-4.22.0", "no CRS".
func (c CRS) String() string {
	if c.Version == "" {
		return "no CRS"
	}
	s := "CRS " + c.Version
	if c.Setup != 0 && c.Setup != setupOf(c.Version) {
		s += fmt.Sprintf(" (crs-setup %d)", c.Setup)
	}
	if c.Dir == "" {
		return s + " (embedded)"
	}
	return s + " from " + c.Dir
}

// setupOf is the crs_setup_version a release's own crs-setup sets:
// 4.22.0 -> 4220, 3.3.4 -> 334.
func setupOf(version string) int {
	parts := strings.Split(version, ".")
	if len(parts) != 3 {
		return 0
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return 0
		}
		v[i] = n
	}
	if v[0] < 4 {
		return v[0]*100 + v[1]*10 + v[2]
	}
	return v[0]*1000 + v[1]*10 + v[2]
}

// CRSMarker is the comment line that makes a ruleset read its CRS from a
// directory instead of the one embedded in the binary:
//
//	# wafcanary: crs /srv/crs/coreruleset-4.22.0
//
// Written in the ruleset's main file (one, anywhere in it), it changes
// where the CRS names are served from, and nothing else: the ruleset
// still includes @crs-setup.conf.example and @owasp_crs/*.conf, so the
// same file upgrades the CRS by changing one line. @coraza.conf-recommended
// is Coraza's, not the CRS's, and stays the embedded one. Coraza alone
// reads the marker as a comment (and would use its embedded CRS).
const CRSMarker = "wafcanary: crs"

var markerLine = regexp.MustCompile(`^\s*#\s*wafcanary:\s*crs(?:\s+(.*?))?\s*$`)

// crsMarker finds the marker in a file: the directory it names ("" for
// none) and its line, which is also the line an error is about.
func crsMarker(b []byte) (dir string, line int, err error) {
	n := 0
	for l := range strings.Lines(string(b)) {
		n++
		m := markerLine.FindStringSubmatch(strings.TrimRight(l, "\r\n"))
		if m == nil {
			continue
		}
		if line != 0 {
			return "", n, fmt.Errorf("a second %q line (the first is line %d): a ruleset has one CRS", CRSMarker, line)
		}
		d := strings.Trim(m[1], `"`)
		if d == "" {
			return "", n, fmt.Errorf("%q names no directory", CRSMarker)
		}
		dir, line = d, n
	}
	return dir, line, nil
}

// The layouts a CRS directory may have: a release archive unpacked
// (coreruleset-4.22.0/: crs-setup.conf.example, rules/*.conf and *.data),
// or the rules/ folder of a coraza-coreruleset module version
// (@crs-setup.conf.example, @owasp_crs/*.conf and *.data).
var crsLayouts = []struct{ setup, rules string }{
	{"crs-setup.conf.example", "rules"},
	{"@crs-setup.conf.example", "@owasp_crs"},
}

// crsDir serves the CRS names Coraza asks for (@crs-setup.conf.example,
// @owasp_crs/NAME) from a CRS directory on disk. Nothing else in the
// directory can be read through it: a setup file, and single files
// named .conf or .data under its rules folder, regular and bounded
// (localfile). The directory may be anywhere the server can read, unlike
// an Include, because it serves only these names.
type crsDir struct {
	dir          string // absolute
	setup, rules string // one of crsLayouts
}

// openCRSDir checks that dir holds a CRS in one of the layouts.
func openCRSDir(dir string) (*crsDir, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	for _, l := range crsLayouts {
		if _, err := os.Stat(filepath.Join(dir, l.rules, "REQUEST-901-INITIALIZATION.conf")); err == nil {
			return &crsDir{dir: dir, setup: l.setup, rules: l.rules}, nil
		}
	}
	return nil, fmt.Errorf("%s: not a CRS directory: it has neither rules/REQUEST-901-INITIALIZATION.conf (a CRS release unpacked) nor @owasp_crs/REQUEST-901-INITIALIZATION.conf (the rules/ folder of a coraza-coreruleset version)", dir)
}

// path is where on disk the CRS name (from '@') lives, or an error for
// a name the CRS does not have.
func (c *crsDir) path(name string) (string, error) {
	if name == "@crs-setup.conf.example" {
		return filepath.Join(c.dir, c.setup), nil
	}
	if base, ok := strings.CutPrefix(name, "@owasp_crs/"); ok && base != "" && !strings.ContainsAny(base, `/\`) &&
		base != "." && base != ".." && (strings.HasSuffix(base, ".conf") || strings.HasSuffix(base, ".data")) {
		return filepath.Join(c.dir, c.rules, base), nil
	}
	return "", &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a file of a CRS directory (crs-setup.conf.example, rules/*.conf, rules/*.data): %w", fs.ErrNotExist)}
}

func (c *crsDir) ReadFile(name string) ([]byte, error) {
	p, err := c.path(name)
	if err != nil {
		return nil, err
	}
	b, err := localfile.Read(p, MaxFileBytes)
	switch {
	case errors.Is(err, localfile.ErrTooLarge):
		return nil, fmt.Errorf("%s: more than the %d MiB a ruleset file may have", p, MaxFileBytes>>20)
	case errors.Is(err, localfile.ErrNotRegular):
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	return b, err
}

func (c *crsDir) Open(name string) (fs.File, error) {
	p, err := c.path(name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Glob lists the rules folder's files matching pattern (@owasp_crs/*.conf),
// by their CRS names, sorted as fs.Glob sorts.
func (c *crsDir) Glob(pattern string) ([]string, error) {
	dir, file := path.Split(pattern)
	if dir != "@owasp_crs/" {
		return nil, nil
	}
	entries, err := os.ReadDir(filepath.Join(c.dir, c.rules))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		ok, err := path.Match(file, e.Name())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, dir+e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// recordedCRS serves the CRS names from the recorded files of a ruleset
// from a bundle (or Recompile): they are kept under their CRS names.
type recordedCRS struct{ fsys fs.FS }

func (r recordedCRS) Open(name string) (fs.File, error) { return r.fsys.Open(name) }

func (r recordedCRS) ReadFile(name string) ([]byte, error) { return readBounded(r.fsys, name) }

func (r recordedCRS) Glob(pattern string) ([]string, error) { return fs.Glob(r.fsys, pattern) }

// crsOf reads the CRS a ruleset loaded from its rules: the release their
// ver: actions name most often, and the crs_setup_version 900990 sets.
func crsOf(dir string, vers map[string]int, setup int) CRS {
	c := CRS{Dir: dir, Setup: setup}
	best := 0
	for v, n := range vers {
		if n > best || (n == best && v > c.Version) {
			c.Version, best = v, n
		}
	}
	return c
}

var setupVersion = regexp.MustCompile(`(?i)setvar:'?tx\.crs_setup_version=(\d+)`)
