package ruleset

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
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
	var file string
	var line, seen int
	w := &walker{files: src.files(), route: src.route, visit: func(f string, l int, _ string) bool {
		seen++
		if seen == parsed {
			file, line = f, l
			return true
		}
		return false
	}}
	if !w.walk(main) {
		return &compileError{cause: cause}
	}
	if !strings.HasPrefix(file, "@") {
		file = filepath.Join(dir, filepath.FromSlash(file))
	}
	return &compileError{file: file, line: line, cause: cause}
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
			if w.walk(inc) {
				return true
			}
		}
	}
	return false
}
