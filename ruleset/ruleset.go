// Package ruleset loads SecLang rulesets (a file plus everything it
// includes, local or from the embedded OWASP Core Rule Set), compiles them
// with Coraza, names them by a content hash, and closes them once the last
// request using them has finished.
package ruleset

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing/fstest"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/form"
	"github.com/wafcanary/wafcanary/pm"
	"github.com/wafcanary/wafcanary/rx"
	"github.com/wafcanary/wafcanary/transform"
)

// ErrClosed is returned by Acquire's callers when a ruleset has been retired
// and closed; callers load the current routing state again.
var ErrClosed = errors.New("ruleset closed")

// Rule describes one loaded rule, for inventories and bounded metric labels.
type Rule struct {
	ID       int
	Phase    int
	Paranoia int  // from the CRS tag paranoia-level/N; 0 when untagged
	Logs     bool // false for bookkeeping rules marked nolog
	Tags     []string
	File     string
	// Line is where the rule's directive starts in File, from 1; 0 when
	// not known.
	Line int
	// Order is the rule's place in evaluation order, from 0.
	Order int
	// Chain is set when the rule has chain links.
	Chain bool
	// Counts is set when the rule's first link reads a count (&ARGS):
	// taking a target away changes the count it compares.
	Counts bool
	// NegatedCapture is set for a capture on a negated operator (!@rx):
	// it writes TX:0-9 when the rule does not match.
	NegatedCapture bool
	// Skip is the N of a skip:N action: the rule, when it matches, passes
	// over the next N rules of its phase, whichever those are.
	Skip int
	// Action is the rule's disruptive action as written (pass, block,
	// deny, drop, allow, redirect); "" when it takes its phase's
	// SecDefaultAction.
	Action string
	// Targets and Operator are the first link's variables and operator
	// as written, quotes off (ARGS|REQUEST_COOKIES, @rx ...); "" for a
	// SecAction.
	Targets, Operator string
	// Severity is the severity action as written, upper-cased
	// (CRITICAL); "" for none.
	Severity string
}

// Ruleset is a compiled ruleset. It is safe for concurrent use: any number
// of requests may run transactions on it at once.
//
// Its lifetime is reference counted. It starts with one reference, owned
// by whoever puts it into service; each request takes one with Acquire and
// gives it back with Release; Retire gives back the owner's. The Coraza WAF
// is closed when the count reaches zero, so in-flight requests finish on
// the ruleset they started with and retired rulesets do not pile up memory.
type Ruleset struct {
	// Path is the file the ruleset was loaded from, as given.
	Path string
	// Version is a content hash over every file read to compile it, local
	// and embedded, in read order: the same bytes give the same version.
	Version string
	// Files are the files read, in order.
	Files []File
	// Rules is the inventory of loaded rules, ordered by ID.
	Rules []Rule
	// CRS is the Core Rule Set it includes, and its version.
	CRS CRS
	// NoFilesLimit is SecRequestBodyNoFilesLimit: the most bytes of a
	// request body that is not multipart the ruleset judges; a longer one
	// is refused with 413 (verdict.RequestPhases), since Coraza does not
	// enforce the directive itself.
	NoFilesLimit int64

	waf     coraza.WAF
	refs    atomic.Int64
	retired sync.Once
	closed  atomic.Bool
}

// Load reads, compiles and versions the ruleset in path. A ruleset that does
// not compile is refused with Coraza's message, prefixed with the file and
// line at fault. Included files are read relative to path's directory.
func Load(path string) (*Ruleset, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("ruleset %s: %w", path, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("ruleset %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("ruleset %s: not a regular file (%s)", path, info.Mode().Type())
	}
	return load(os.DirFS(filepath.Dir(abs)), filepath.Dir(abs), filepath.Base(abs), path, "")
}

// LoadFS is Load for a ruleset in a file system, such as the rulesets
// embedded in the binary: name is the main file in dir, and path is how
// errors and Ruleset.Path refer to it.
func LoadFS(dir fs.FS, name, path string) (*Ruleset, error) {
	return load(dir, "", name, path, "")
}

// Recompile compiles the same bytes as r again, with prelude compiled
// before them. It is how a ruleset is run under a test profile, such as the
// CRS regression suite's, that must take effect before the ruleset's own
// settings and CRS's defaults. The result has its own version and owner
// reference; r is not affected.
func (r *Ruleset) Recompile(prelude string) (*Ruleset, error) {
	if len(r.Files) == 0 {
		return nil, fmt.Errorf("ruleset %s: no files recorded", r.Path)
	}
	// fstest.MapFS is the standard library's map file system; it does not
	// bring package testing with it.
	local := fstest.MapFS{}
	for _, f := range r.Files {
		if !f.Embedded {
			local[f.Name] = &fstest.MapFile{Data: f.Content, Mode: 0o444}
		}
	}
	return load(local, "", r.Files[0].Name, r.Path, prelude)
}

// load compiles name in dir; osDir is dir's directory on disk, when it is
// one (sourceFS.dir).
func load(dir fs.FS, osDir, name, path, prelude string) (*Ruleset, error) {
	// Every ruleset wafcanary compiles uses its faster @rx (package rx),
	// @pm (package pm) and transformations (package transform), which give
	// Coraza's outcomes: they must be in place before the first rule is
	// compiled.
	rx.Register()
	pm.Register()
	transform.Register()
	// And its URL-encoded body processor, which keeps every value of
	// arguments whose names differ only in case (package form).
	form.Register()
	newFS := func() *sourceFS { return &sourceFS{local: dir, dir: osDir, crs: coreruleset.FS} }
	src := newFS()
	var fromDir *crsDir
	crsPath := ""
	// A file with no directive at all is not a ruleset, and Coraza's
	// error would quote its first line: from an arbitrary path on the
	// server (/etc/passwd) that is a leak, not a diagnosis.
	if !strings.HasPrefix(name, "@") {
		main, err := src.readLocal(name)
		if err != nil {
			return nil, fmt.Errorf("ruleset %s: %w", path, err)
		}
		if !hasDirective(main) {
			return nil, fmt.Errorf("ruleset %s: not a SecLang file: no Sec... or Include directive in it", path)
		}
		marked, line, err := crsMarker(main)
		if err != nil {
			return nil, fmt.Errorf("ruleset %s: %s:%d: %w", path, name, line, err)
		}
		switch {
		case marked == "":
		case osDir != "":
			// From disk: the directory, relative to the ruleset's own.
			crsPath = marked
			if !filepath.IsAbs(crsPath) {
				crsPath = filepath.Join(osDir, crsPath)
			}
			if fromDir, err = openCRSDir(crsPath); err != nil {
				return nil, fmt.Errorf("ruleset %s: %s:%d: %s: %w", path, name, line, CRSMarker, err)
			}
		default:
			// A bundle or a Recompile: the CRS's files were recorded
			// with the ruleset's own, under their CRS names.
			crsPath = marked
		}
		newFS = func() *sourceFS {
			s := &sourceFS{local: dir, dir: osDir, crs: coreruleset.FS}
			switch {
			case fromDir != nil:
				s.crsFrom = fromDir
			case crsPath != "":
				s.crsFrom = recordedCRS{dir}
			}
			return s
		}
		src = newFS()
	}

	var rules []Rule
	vers := map[string]int{}
	setup := 0
	cfg := coraza.NewWAFConfig().WithRootFS(src)
	if prelude != "" {
		cfg = cfg.WithDirectives(prelude)
	}
	cfg = cfg.WithDirectivesFromFile(name)
	cfg = experimental.WAFConfigWithRuleObserver(cfg, func(m types.RuleMetadata) {
		rules = append(rules, ruleOf(m, len(rules)))
		if v, ok := strings.CutPrefix(m.Version(), "OWASP_CRS/"); ok {
			vers[v]++
		}
		if sv := setupVersion.FindStringSubmatch(m.Raw()); sv != nil {
			setup, _ = strconv.Atoi(sv[1])
		}
	})
	waf, err := newWAF(cfg)
	if err != nil {
		at := locate(filepath.Dir(path), name, newFS, err)
		if fromDir != nil && strings.HasPrefix(at.file, "@") && at.file != corazaRecommended {
			// Name the CRS directory's file, not the name it is
			// included by.
			if p, perr := fromDir.path(at.file); perr == nil {
				at.file = p
			}
		}
		if c := crsOf(crsPath, vers, setup); fromDir != nil && strings.HasPrefix(c.Version, "3.") {
			// The rules read before the error say which CRS it is.
			return nil, fmt.Errorf("ruleset %s does not compile: %w (%s is a CRS 3 release, written for ModSecurity: Coraza compiles CRS 4)", path, at, c)
		}
		return nil, fmt.Errorf("ruleset %s does not compile: %w", path, at)
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].ID < rules[j].ID })
	// Compiling CRS leaves tens of megabytes of parser garbage that the
	// runtime would otherwise keep mapped until the heap grew back into
	// it; a load is rare (start-up, SIGHUP, gates), so give it back now.
	debug.FreeOSMemory()

	files := src.files()
	if err := checkLineLengths(prelude, files); err != nil {
		if c, ok := waf.(experimental.WAFCloser); ok {
			_ = c.Close()
		}
		return nil, fmt.Errorf("ruleset %s: %w", path, err)
	}
	hashed := files
	if prelude != "" {
		hashed = append([]File{{Name: "<prelude>", Content: []byte(prelude)}}, files...)
	}
	ver := version(hashed)
	fixLines(rules, files) // before the embedded files' contents go
	for i := range files {
		if files[i].Embedded {
			// The embedded CRS is part of the binary; keeping a second
			// copy per ruleset would only cost memory.
			files[i].Content = nil
		}
	}
	for _, f := range files[1:] {
		if !f.Embedded && !strings.HasPrefix(f.Name, "@") {
			if _, line, _ := crsMarker(f.Content); line != 0 {
				if c, ok := waf.(experimental.WAFCloser); ok {
					_ = c.Close()
				}
				return nil, fmt.Errorf("ruleset %s: %s:%d: %q belongs in the ruleset's main file (%s), where it names the CRS for all of it", path, f.Name, line, CRSMarker, files[0].Name)
			}
		}
	}
	rs := &Ruleset{
		Path:    path,
		Version: ver,
		Files:   files,
		Rules:   rules,
		CRS:     crsOf(crsPath, vers, setup),
		waf:     waf,
	}
	rs.refs.Store(1)
	if rs.NoFilesLimit, err = bodyLimits(rs.Directives()); err != nil {
		rs.Retire()
		return nil, fmt.Errorf("ruleset %s: %w", path, err)
	}
	return rs, nil
}

// maxLine is the longest line Coraza's SecLang parser reads: a
// bufio.Scanner with its default buffer, whose error it never checks.
const maxLine = bufio.MaxScanTokenSize - 1

// checkLineLengths refuses a line Coraza's parser would stop at: past it,
// the rest of that file is silently dropped and the ruleset still
// compiles, so attacks the dropped rules catch pass.
func checkLineLengths(prelude string, files []File) error {
	check := func(name string, b []byte) error {
		n := 0
		for line := range strings.Lines(string(b)) {
			n++
			if l := len(strings.TrimRight(line, "\n")); l > maxLine {
				return fmt.Errorf("%s:%d: a line of %d bytes, longer than the %d Coraza's parser reads: it would stop there and drop every rule after it; split the line (a trailing \\ continues it)", name, n, l, maxLine)
			}
		}
		return nil
	}
	if err := check("<prelude>", []byte(prelude)); err != nil {
		return err
	}
	for _, f := range files {
		if f.Embedded {
			continue
		}
		if err := check(f.Name, f.Content); err != nil {
			return err
		}
	}
	return nil
}

// hasDirective reports whether any line of a file starts with a SecLang
// directive (Sec..., Include), comments and blank lines aside.
func hasDirective(b []byte) bool {
	for line := range strings.Lines(string(b)) {
		line = strings.ToLower(strings.TrimSpace(line))
		if strings.HasPrefix(line, "sec") || strings.HasPrefix(line, "include") {
			return true
		}
	}
	return false
}

// newWAF compiles cfg. Coraza can panic on some valid-looking input (in
// v3.8.1, SecRuleRemoveByMsg with any loaded rule that has no msg, which
// is most of CRS); a candidate file must never take the process down, so
// a panic is a compile error like any other.
func newWAF(cfg coraza.WAFConfig) (waf coraza.WAF, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("coraza panicked while compiling: %v", p)
		}
	}()
	return coraza.NewWAF(cfg)
}

// version hashes names and contents with length prefixes, so that moving
// bytes from one file to the next changes the version.
func version(files []File) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range files {
		for _, part := range [][]byte{[]byte(f.Name), f.Content} {
			binary.BigEndian.PutUint64(n[:], uint64(len(part)))
			h.Write(n[:])
			h.Write(part)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func ruleOf(m types.RuleMetadata, order int) Rule {
	r := Rule{
		ID:    m.ID(),
		Phase: int(m.Phase()),
		Logs:  !hasAction(m.Raw(), "nolog"),
		Tags:  m.Tags(),
		File:  m.File(),
		Line:  m.Line(),
		Order: order,
	}
	// Raw is the rule's first link as one line: SecRule VARS "op" "actions".
	name, args, _ := strings.Cut(m.Raw(), " ")
	d := Directive{Name: name, Args: args}
	negated := false
	if f := d.Fields(); strings.EqualFold(name, "SecRule") && len(f) > 1 {
		r.Targets, r.Operator = Unquote(f[0]), Unquote(f[1])
		r.Counts = strings.Contains(r.Targets, "&")
		negated = strings.HasPrefix(strings.TrimSpace(r.Operator), "!")
	}
	for _, a := range d.Actions() {
		k, v := SplitAction(a)
		switch k {
		case "pass", "block", "deny", "drop", "allow", "redirect":
			r.Action = k
		case "chain":
			r.Chain = true
		case "skip":
			r.Skip, _ = strconv.Atoi(v)
		case "capture":
			r.NegatedCapture = negated
		case "severity":
			r.Severity = strings.ToUpper(Unquote(v))
		}
	}
	for _, t := range m.Tags() {
		if lvl, ok := strings.CutPrefix(t, "paranoia-level/"); ok {
			r.Paranoia, _ = strconv.Atoi(lvl)
		}
	}
	return r
}

// hasAction reports whether a rule's raw text lists action as a whole word.
// It only feeds the inventory (which series to create up front); counting
// at run time uses each matched rule's own Log flag.
func hasAction(raw, action string) bool {
	for rest := raw; ; {
		i := strings.Index(rest, action)
		if i < 0 {
			return false
		}
		before, after := byte(','), byte(',')
		if i > 0 {
			before = rest[i-1]
		}
		if j := i + len(action); j < len(rest) {
			after = rest[j]
		}
		if strings.IndexByte(`,"' `, before) >= 0 && strings.IndexByte(`,"' `, after) >= 0 {
			return true
		}
		rest = rest[i+len(action):]
	}
}

// WAF returns the compiled Coraza WAF. Callers must hold a reference
// (Acquire) for as long as they use it.
func (r *Ruleset) WAF() coraza.WAF { return r.waf }

// Acquire takes a reference for one use, typically one request. It returns
// false if the ruleset has already been closed; the caller should then load
// the current routing state again, which no longer contains it.
func (r *Ruleset) Acquire() bool {
	for {
		n := r.refs.Load()
		if n <= 0 {
			return false
		}
		if r.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release gives back a reference taken with Acquire.
func (r *Ruleset) Release() {
	if r.refs.Add(-1) == 0 {
		r.close()
	}
}

// Retire gives back the owner's reference: the ruleset is closed as soon as
// no request holds it. Calling it more than once is harmless.
func (r *Ruleset) Retire() {
	r.retired.Do(r.Release)
}

// Closed reports whether the Coraza WAF has been closed.
func (r *Ruleset) Closed() bool { return r.closed.Load() }

func (r *Ruleset) close() {
	r.closed.Store(true)
	if c, ok := r.waf.(experimental.WAFCloser); ok {
		_ = c.Close() // releases memoized matchers; it cannot fail today
	}
}

// LoggingRuleIDs returns the IDs of rules that log when they match, ordered.
func (r *Ruleset) LoggingRuleIDs() []int {
	ids := make([]int, 0, len(r.Rules))
	for _, rule := range r.Rules {
		if rule.Logs && (len(ids) == 0 || ids[len(ids)-1] != rule.ID) {
			ids = append(ids, rule.ID)
		}
	}
	return ids
}

// Rule returns what the ruleset says of rule id.
func (r *Ruleset) Rule(id int) (Rule, bool) {
	i := sort.Search(len(r.Rules), func(i int) bool { return r.Rules[i].ID >= id })
	if i < len(r.Rules) && r.Rules[i].ID == id {
		return r.Rules[i], true
	}
	return Rule{}, false
}
