package exception

import (
	"fmt"
	"strings"
	"testing/fstest"

	"github.com/corazawaf/coraza/v3/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/ruleset"
)

// Without compiles rs without exception e: its lines are commented out,
// every other line stays where it was, so the variant's rules keep
// their file:line. The caller retires the result.
func Without(rs *ruleset.Ruleset, e Exception) (*ruleset.Ruleset, error) {
	files, err := withoutFiles(rs, e)
	if err != nil {
		return nil, err
	}
	v, err := compileFiles(files, rs.Files[0].Name, fmt.Sprintf("%s without exception %s", rs.Path, e.ID))
	if err != nil {
		return nil, fmt.Errorf("exception %s: the baseline without it: %w", e.ID, err)
	}
	return v, nil
}

// withoutFiles is rs's own files with e's lines commented out.
func withoutFiles(rs *ruleset.Ruleset, e Exception) (map[string][]byte, error) {
	if len(e.links) == 0 {
		return nil, fmt.Errorf("exception %s: not read from a ruleset", e.ID)
	}
	return editFiles(rs, e, func(content []byte) ([]byte, error) { return commentOut(content, e.links) })
}

// editFiles is rs's own files with e's file changed by edit.
func editFiles(rs *ruleset.Ruleset, e Exception, edit func([]byte) ([]byte, error)) (map[string][]byte, error) {
	files := map[string][]byte{}
	found := false
	for _, f := range rs.Files {
		if f.Embedded {
			continue
		}
		content := f.Content
		if f.Name == e.File {
			var err error
			if content, err = edit(content); err != nil {
				return nil, fmt.Errorf("exception %s (%s): %w", e.ID, e.Where(), err)
			}
			found = true
		}
		files[f.Name] = content
	}
	if !found || len(rs.Files) == 0 || rs.Files[0].Embedded {
		return nil, fmt.Errorf("exception %s: %s is not one of ruleset %s's own files", e.ID, e.File, rs.Version)
	}
	return files, nil
}

// compileFiles compiles a ruleset of files, main the one to load.
func compileFiles(files map[string][]byte, main, path string) (*ruleset.Ruleset, error) {
	local := fstest.MapFS{}
	for name, content := range files {
		local[name] = &fstest.MapFile{Data: content, Mode: 0o444}
	}
	return ruleset.LoadFS(local, main, path)
}

// commentOut turns every line of the directives links, from the first
// one's first line to the last one's last (its continuation lines, or
// its backtick block), into a comment.
func commentOut(content []byte, links []ruleset.Directive) ([]byte, error) {
	lines := strings.SplitAfter(string(content), "\n")
	first, end, err := span(lines, links)
	if err != nil {
		return nil, err
	}
	for i := first - 1; i < end; i++ {
		lines[i] = "# " + lines[i]
	}
	return []byte(strings.Join(lines, "")), nil
}

// span is the lines, from 1, that the directives links take in a file
// split after each newline: from the first one's first line to the last
// one's last (its continuation lines, or its backtick block).
func span(lines []string, links []ruleset.Directive) (first, end int, err error) {
	first, last := links[0].Line, links[len(links)-1].Line
	if first < 1 || last > len(lines) {
		return 0, 0, fmt.Errorf("lines %d-%d: past the file's %d lines", first, last, len(lines))
	}
	end = last
	for backticks := false; end <= len(lines); end++ {
		l := strings.TrimSpace(lines[end-1])
		if l == "" || l[0] == '#' {
			continue
		}
		switch {
		case !backticks && l[len(l)-1] == '`':
			backticks = true
			continue
		case backticks && l[0] == '`':
			backticks = false
		}
		if backticks || strings.HasSuffix(l, `\`) {
			continue
		}
		break
	}
	if end > len(lines) {
		return 0, 0, fmt.Errorf("line %d: the directive does not end", last)
	}
	return first, end, nil
}

// variant is the served baseline without one exception, and what tells
// when it cannot differ from the baseline.
type variant struct {
	exception string
	rs        *ruleset.Ruleset
	// diff compares the variant (as the baseline) with the served
	// baseline (as a candidate that adds the exception): where
	// BaselineAgrees, the variant's verdict is the served one.
	diff *ruleset.Difference
	// stats are the exception's, shared with the variants of other
	// baselines that keep it.
	stats                          *stats
	judged, evaluated, wouldBlocks prometheus.Counter
}

// agrees reports whether the variant is certain to reach the served
// baseline's verdict, given every rule that matched on the served side
// (nolog ones included): the exception is a rule whose removals act only
// when it matches (ruleset.Difference's argument, roles swapped), and it
// did not match. A directive acts on every request: never certain.
func (v *variant) agrees(served []types.MatchedRule) bool {
	return v.diff.BaselineAgrees(served)
}
