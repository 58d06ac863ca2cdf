package exception

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
)

// ErrNoSuchException is an ID the ruleset's inventory does not hold.
var ErrNoSuchException = errors.New("no such exception")

// ErrNotRetirement is a candidate that is not its baseline without
// exactly the one exception it claims to retire; the error says what else
// differs.
var ErrNotRetirement = errors.New("not the served baseline without that exception")

// Find returns the exception of list with id.
func Find(list []Exception, id string) (Exception, error) {
	for _, e := range list {
		if e.ID == id {
			return e, nil
		}
	}
	ids := make([]string, len(list))
	for i, e := range list {
		ids[i] = e.ID
	}
	return Exception{}, fmt.Errorf("exception %q: %w (the baseline has %s)", id, ErrNoSuchException, orNone(strings.Join(ids, ", ")))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Retirement is a ruleset without one of its exceptions: the candidate
// `wafcanary exceptions retire` writes and starts.
type Retirement struct {
	// Exception is the one taken away, as the ruleset had it.
	Exception Exception
	// Main is the file to load of Files, the ruleset's own files with the
	// exception's lines commented out and every other line where it was,
	// so the candidate's rules keep their file:line.
	Main  string
	Files map[string][]byte
}

// Compile compiles the retirement's files; path names the result. The
// caller retires it.
func (r Retirement) Compile(path string) (*ruleset.Ruleset, error) {
	return compileFiles(r.Files, r.Main, path)
}

// Retire returns rs without exception id, checked to compile, its
// exceptions judged at now. A directive's metadata comments are taken
// with it (wafcanary/ becomes retired-wafcanary/), so that a directive
// right below does not inherit its owner and expiry.
func Retire(rs *ruleset.Ruleset, id string, now time.Time) (Retirement, error) {
	e, err := Find(List(rs, now), id)
	if err != nil {
		return Retirement{}, err
	}
	files, err := editFiles(rs, e, func(content []byte) ([]byte, error) {
		out, err := commentOut(content, e.links)
		if err != nil || !e.directive {
			return out, err
		}
		lines := strings.SplitAfter(string(out), "\n")
		for i := e.Line - 2; i >= 0 && strings.HasPrefix(strings.TrimSpace(lines[i]), "#"); i-- {
			lines[i] = strings.ReplaceAll(lines[i], MetaPrefix, "retired-"+MetaPrefix)
		}
		return []byte(strings.Join(lines, "")), nil
	})
	if err != nil {
		return Retirement{}, err
	}
	main := rs.Files[0].Name
	cand, err := compileFiles(files, main, rs.Path)
	if err != nil {
		return Retirement{}, fmt.Errorf("exception %s: the ruleset without it does not compile: %w", id, err)
	}
	defer cand.Retire()
	if _, err := Retires(rs, cand, id); err != nil {
		return Retirement{}, fmt.Errorf("a bug in retire: %w", err)
	}
	return Retirement{Exception: e, Main: main, Files: files}, nil
}

// Retires checks that cand is served without exactly exception id, and
// returns that exception: the same CRS, the same own files but the
// exception's, nothing added, and of served's rules only the exception's
// missing. That is what lets start take a candidate that drops an
// exclusion as intended, not as a baseline it was not built on.
func Retires(served, cand *ruleset.Ruleset, id string) (Exception, error) {
	e, err := Find(List(served, time.Time{}), id)
	if err != nil {
		return Exception{}, err
	}
	if served.CRS != cand.CRS {
		return e, fmt.Errorf("%w: it runs CRS %s, the served baseline %s", ErrNotRetirement, cand.CRS, served.CRS)
	}
	// Data files and includes: any own file but the exception's and the
	// main file (which a candidate may rename) must be served's.
	have := map[string]string{}
	for _, f := range cand.Files {
		if !f.Embedded {
			have[f.Name] = string(f.Content)
		}
	}
	for i, f := range served.Files {
		if f.Embedded || i == 0 || f.Name == e.File {
			continue
		}
		if c, ok := have[f.Name]; !ok || c != string(f.Content) {
			return e, fmt.Errorf("%w: its %s is not the served baseline's", ErrNotRetirement, f.Name)
		}
	}
	if added := ruleset.Added(served.Directives(), cand.Directives()); len(added) > 0 {
		return e, fmt.Errorf("%w: it adds %d rule(s) or directive(s) the served baseline does not have, the first %s:%d %s",
			ErrNotRetirement, len(added), added[0][0].File, added[0][0].Line, added[0][0].Name)
	}
	gone := ruleset.Added(cand.Directives(), served.Directives())
	if len(gone) == 1 && gone[0][0].File == e.File && gone[0][0].Line == e.Line {
		return e, nil
	}
	var names []string
	for i, g := range gone {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(gone)-i))
			break
		}
		names = append(names, fmt.Sprintf("%s:%d %s", g[0].File, g[0].Line, g[0].Name))
	}
	return e, fmt.Errorf("%w: of the served baseline it takes away %s, not exception %s (%s) alone",
		ErrNotRetirement, orNone(strings.Join(names, ", ")), e.ID, e.Where())
}
