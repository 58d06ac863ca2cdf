package ruleset

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/debuglog"
)

// compileError is a ruleset that failed to compile, with the place Coraza
// stopped at. Coraza's own message names neither file nor line (its parser
// counts lines across all included files), so Load works them out.
type compileError struct {
	file  string
	line  int
	cause error
}

func (e *compileError) Error() string {
	msg := strings.ReplaceAll(e.cause.Error(), "failed to parse string: ", "")
	if e.file == "" {
		return msg
	}
	return fmt.Sprintf("%s:%d: %s", e.file, e.line, msg)
}

func (e *compileError) Unwrap() error { return e.cause }

// locate compiles the ruleset again, counting the directives Coraza parses
// through its debug log, then replays the files it read to find the
// directive the count stops at. It only runs after a failure, so its cost
// (a second, verbose compile) never touches a good ruleset.
func locate(dir, main string, newFS func() *sourceFS, cause error) *compileError {
	src := newFS()
	parsed := 0
	logger := debuglog.DefaultWithPrinterFactory(func(_ io.Writer) debuglog.Printer {
		return func(_ debuglog.Level, msg, _ string) {
			if msg == "Parsing directive" {
				parsed++
			}
		}
	}).WithLevel(debuglog.LevelDebug)
	cfg := coraza.NewWAFConfig().WithRootFS(src).WithDirectivesFromFile(main).WithDebugLogger(logger)
	if _, err := newWAF(cfg); err == nil || parsed == 0 {
		return &compileError{cause: cause}
	}
	// Coraza reads an include loop round and round until a rule id
	// repeats or its include count runs out, and says that instead.
	if loop := findLoop(main, src); loop != nil {
		return loop.in(dir)
	}
	var file string
	var line, seen int
	// Where each setting Coraza checks after parsing was last set.
	setAt := map[string]*compileError{}
	w := &walker{files: src.files(), route: src.route, visit: func(f string, l int, d string) bool {
		seen++
		verb, _, _ := strings.Cut(d, " ")
		setAt[strings.ToLower(verb)] = &compileError{file: f, line: l}
		if seen == parsed {
			file, line = f, l
		}
		return false
	}}
	w.walk(main)
	if settings := settingOf(cause); seen == parsed && settings != nil {
		// Every directive parsed, and the error is one of the settings
		// Coraza checks once the whole ruleset is read (a body limit over
		// 1 GiB): the last directive read is not to blame, the one that
		// set it is.
		for _, v := range settings {
			if at := setAt[v]; at != nil {
				return (&compileError{file: at.file, line: at.line, cause: cause}).in(dir)
			}
		}
		return &compileError{cause: fmt.Errorf("the ruleset's settings: %w", cause)}
	}
	if file == "" {
		return &compileError{cause: cause}
	}
	return (&compileError{file: file, line: line, cause: cause}).in(dir)
}

// settingOf names the directives that can cause one of the errors
// Coraza's WAF.Validate returns after parsing, most likely first.
func settingOf(err error) []string {
	msg := err.Error()
	for _, s := range []struct{ words, directives string }{
		{"memory limit", "secrequestbodyinmemorylimit secrequestbodylimit"},
		{"request body limit", "secrequestbodylimit"},
		{"response body limit", "secresponsebodylimit"},
		{"argument limit", "secargumentslimit"},
		{"request body json depth", "secrequestbodyjsondepthlimit"},
		{"response body json depth", "secresponsebodyjsondepthlimit"},
		{"SecUploadDir", "secuploadkeepfiles secuploaddir"},
	} {
		if strings.Contains(msg, s.words) {
			return strings.Fields(s.directives)
		}
	}
	return nil
}

// in places a local file name under the ruleset's directory.
func (e *compileError) in(dir string) *compileError {
	if e.file != "" && !strings.HasPrefix(e.file, "@") {
		e.file = filepath.Join(dir, filepath.FromSlash(e.file))
	}
	return e
}

// findLoop replays the files read and returns the Include that names a
// file already being read, or nil.
func findLoop(main string, src *sourceFS) *compileError {
	var found *compileError
	w := &walker{files: src.files(), route: src.route, visit: func(string, int, string) bool { return false },
		loop: func(file string, line int, chain []string) {
			found = &compileError{file: file, line: line,
				cause: fmt.Errorf("include loop: %s", strings.Join(chain, " -> "))}
		}}
	w.walk(main)
	return found
}

// walker replays SecLang's reading order over the recorded files: logical
// lines (joined by trailing backslashes, or between backtick lines), with
// each Include descending into the file(s) it names. Data files read by
// operators such as @pmFromFile sit between them in the record and are
// skipped by name. Files recorded without content (the embedded CRS, in a
// loaded Ruleset) are passed over in order.
type walker struct {
	files []File
	route func(string) (fs.FS, string, bool)
	next  int // next recorded file to descend into
	// visit sees every directive with the file and line it starts on;
	// returning true stops the walk.
	visit func(file string, line int, directive string) bool
	// loop, if set, is told of an Include of a file already being read
	// (chain runs from the outermost file to the repeated one), and the
	// walk stops there.
	loop  func(file string, line int, chain []string)
	stack []string
}

// walk replays the file Coraza knows as name; it reports whether visit
// stopped the walk.
func (w *walker) walk(name string) bool {
	_, want, _ := w.route(name)
	for w.next < len(w.files) && w.files[w.next].Name != want {
		w.next++
	}
	if w.next >= len(w.files) {
		return false
	}
	f := w.files[w.next]
	w.next++
	w.stack = append(w.stack, f.Name)
	defer func() { w.stack = w.stack[:len(w.stack)-1] }()
	lines := strings.Split(string(f.Content), "\n")
	var logical strings.Builder
	start, backticks := 0, false
	for i, raw := range lines {
		l := strings.TrimSpace(raw)
		if l == "" || l[0] == '#' { // as Coraza: comments are skipped even inside a continuation
			continue
		}
		if logical.Len() == 0 {
			start = i + 1
		}
		switch {
		case !backticks && l[len(l)-1] == '`':
			backticks = true
		case backticks && l[0] == '`':
			backticks = false
		}
		if backticks {
			logical.WriteString(l + "\n")
			continue
		}
		if strings.HasSuffix(l, `\`) {
			logical.WriteString(strings.TrimSuffix(l, `\`))
			continue
		}
		logical.WriteString(l)
		directive := logical.String()
		logical.Reset()

		if w.visit(f.Name, start, directive) {
			return true
		}
		verb, opts, _ := strings.Cut(directive, " ")
		if !strings.EqualFold(verb, "include") {
			continue
		}
		// Resolved as Coraza's parser does: globs against the root (here:
		// the files recorded from this point on, in the order read), other
		// names against the including file's directory.
		opts = strings.Trim(strings.TrimSpace(opts), `"`)
		included := []string{path.Join(path.Dir(name), opts)}
		if strings.Contains(opts, "*") {
			_, pattern, _ := w.route(opts)
			included = nil
			for _, rf := range w.files[w.next:] {
				if ok, _ := path.Match(pattern, rf.Name); ok {
					included = append(included, rf.Name)
				}
			}
		}
		for _, inc := range included {
			if _, n, _ := w.route(inc); w.loop != nil && slices.Contains(w.stack, n) {
				w.loop(f.Name, start, append(slices.Clone(w.stack), n))
				return true
			}
			if w.walk(inc) {
				return true
			}
		}
	}
	return false
}
