package exclusion

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/wafcanary/wafcanary/ruleset"
)

// A candidate tune writes is "the served baseline V verbatim plus an
// exclusion"; by the time it is started another baseline may serve (the
// fix tuned before it was promoted meanwhile), and starting the file as
// written would take that fix away again. So tune records V in the
// candidate, and start carries the candidate's additions over to what
// serves then (Rebase), or refuses naming both versions.

// baseMarker starts the line of a candidate's main file that records the
// baseline it was written from: "# wafcanary: base 7ac70ac84b77a1f0".
const baseMarker = "# wafcanary: base "

var markerLine = regexp.MustCompile(`(?m)^# wafcanary: base ([0-9a-f]{16})[ \t]*(?:\(.*\))?\r?$`)

// RecordedBase returns the version of the baseline cand was written from,
// from the first base marker in its main file's leading comments; false
// for a candidate without one (written by hand).
func RecordedBase(cand *ruleset.Ruleset) (string, bool) {
	if len(cand.Files) == 0 || cand.Files[0].Embedded {
		return "", false
	}
	return recordedBase(string(cand.Files[0].Content))
}

func recordedBase(main string) (string, bool) {
	for _, line := range strings.SplitAfter(main, "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") {
			return "", false // past the leading comments
		}
		if m := markerLine.FindStringSubmatch(line); m != nil {
			return m[1], true
		}
	}
	return "", false
}

// ErrNotRebased is a candidate whose additions cannot be carried over to
// another baseline as they are; the error says why.
var ErrNotRebased = errors.New("cannot be rebased")

// Rebased is a candidate's additions carried over to another baseline.
type Rebased struct {
	// Ruleset is the rebased candidate, compiled; the caller retires it.
	Ruleset *ruleset.Ruleset
	// Carried names each rule carried over (file:line in the candidate),
	// Renumbered each ID changed because the new baseline has it.
	Carried, Renumbered []string
}

// Rebase carries what cand adds to base, the baseline it was written
// from, over to onto: each added rule, with the comments just above it,
// goes into onto's text before the same directive it came before in cand
// (for a tune exclusion, the CRS rules Include), or at the end. An added
// rule whose ID onto has is renumbered to the next free local ID. It is
// refused (ErrNotRebased) when cand also deletes or changes something of
// base, adds an Include, or when the result does not compile to exactly
// onto plus the additions.
func Rebase(base, cand, onto *ruleset.Ruleset) (Rebased, error) {
	if gone := ruleset.Added(cand.Directives(), base.Directives()); len(gone) > 0 {
		return Rebased{}, fmt.Errorf("%w: it deletes or changes %d directive(s) of its base %s (%s): only additions are carried over", ErrNotRebased, len(gone), short(base.Version), describe(gone, 3))
	}
	added := ruleset.Added(base.Directives(), cand.Directives())
	if len(added) == 0 {
		return Rebased{}, fmt.Errorf("%w: it adds nothing to its base %s", ErrNotRebased, short(base.Version))
	}
	bundle, err := onto.Bundle()
	if err != nil {
		return Rebased{}, fmt.Errorf("%w: %w", ErrNotRebased, err)
	}
	files := map[string][]byte{}
	for n, c := range bundle.Files {
		files[n] = c
	}
	texts := map[string]string{}
	for _, f := range cand.Files {
		if !f.Embedded {
			texts[f.Name] = string(f.Content)
		}
	}
	isAdded := map[pos]bool{}
	for _, ch := range added {
		for _, d := range ch {
			isAdded[pos{d.File, d.Line}] = true
		}
	}
	candDs := cand.Directives()
	var ins []insert
	var out Rebased
	used := map[int]bool{}
	for _, r := range onto.Rules {
		used[r.ID] = true
	}
	for _, ch := range added {
		first, last := ch[0], ch[len(ch)-1]
		if strings.EqualFold(first.Name, "Include") {
			return Rebased{}, fmt.Errorf("%w: %s:%d adds an Include: rebase carries rules over, not files", ErrNotRebased, first.File, first.Line)
		}
		text, ok := blockText(texts[first.File], first.Line, last.Line)
		if !ok {
			return Rebased{}, fmt.Errorf("%w: %s:%d: its text is not in the candidate's files", ErrNotRebased, first.File, first.Line)
		}
		if id, ok := first.ID(); ok {
			if used[id] {
				to := nextFree(used, firstLocalID)
				text = renumber(text, id, to)
				out.Renumbered = append(out.Renumbered, fmt.Sprintf("rule %d is now %d: the served baseline has a rule %d", id, to, id))
				id = to
			}
			used[id] = true
		}
		// The anchor: the first directive after the rule in cand that
		// cand did not add, found again in onto (same text, same
		// occurrence); none means the rule came last.
		at := -1
		for i, d := range candDs {
			if d.File == last.File && d.Line == last.Line {
				at = i
				break
			}
		}
		file, line := bundle.Main, 0
		for _, d := range candDs[at+1:] {
			if isAdded[pos{d.File, d.Line}] {
				continue
			}
			n := occurrence(candDs, isAdded, d)
			od, ok := nth(onto.Directives(), d, n)
			if !ok {
				return Rebased{}, fmt.Errorf("%w: %s:%d comes before %q, which the served baseline %s does not have", ErrNotRebased, first.File, first.Line, d.Name+" "+d.Args, short(onto.Version))
			}
			file, line = od.File, od.Line
			break
		}
		ins = append(ins, insert{file: file, line: line, text: text})
		out.Carried = append(out.Carried, fmt.Sprintf("%s:%d %s", first.File, first.Line, summary(first)))
	}
	for name, c := range apply(files, ins) {
		files[name] = c
	}
	// The rebased main file records its new base first: it is onto
	// verbatim plus the rules carried over.
	head := fmt.Sprintf("%s%s (rebased by wafcanary start from %s)\n", baseMarker, onto.Version, base.Version)
	files[bundle.Main] = append([]byte(head), files[bundle.Main]...)
	fsys := fstest.MapFS{}
	for n, c := range files {
		fsys[n] = &fstest.MapFile{Data: c, Mode: 0o644}
	}
	rs, err := ruleset.LoadFS(fsys, bundle.Main, cand.Path)
	if err != nil {
		return Rebased{}, fmt.Errorf("%w: the served baseline %s with the candidate's additions does not compile: %w", ErrNotRebased, short(onto.Version), err)
	}
	// Clean: exactly onto plus what cand added, nothing of onto lost.
	if gone := ruleset.Added(rs.Directives(), onto.Directives()); len(gone) > 0 {
		rs.Retire()
		return Rebased{}, fmt.Errorf("%w: the rebased candidate lacks %s of the served baseline; a bug in rebase, please report it", ErrNotRebased, describe(gone, 3))
	}
	if got := ruleset.Added(onto.Directives(), rs.Directives()); len(got) != len(added) {
		rs.Retire()
		return Rebased{}, fmt.Errorf("%w: the rebased candidate adds %d rule(s) to the served baseline, the candidate added %d to its own; a bug in rebase, please report it", ErrNotRebased, len(got), len(added))
	}
	out.Ruleset = rs
	return out, nil
}

// Dropped lists the exclusions baseline has that cand does not: rules
// with a ctl:ruleRemove* action, SecRuleRemove* and SecRuleUpdateTarget*.
// A candidate written from an older baseline drops the exclusions added
// since, and starting it brings their false positives back.
func Dropped(baseline, cand *ruleset.Ruleset) []string {
	var out []string
	for _, ch := range ruleset.Added(cand.Directives(), baseline.Directives()) {
		if len(ruleset.ExclusionsOf(ch)) > 0 {
			out = append(out, fmt.Sprintf("%s:%d %s", ch[0].File, ch[0].Line, summary(ch[0])))
		}
	}
	return out
}

// Apply makes a candidate of onto with the exclusions in text (a file of
// exclusion directives only, named name): each SecRule or SecAction goes
// before the Include of the CRS rules, as a ctl: exclusion changes only
// the rules after it; each SecRuleRemove* and SecRuleUpdateTarget* goes
// at the end of onto's main file, as it changes only the rules before it.
// Any other directive is refused: the file is meant to hold exclusions,
// and start judges what it takes away.
func Apply(onto *ruleset.Ruleset, name string, text []byte) (Rebased, error) {
	bs := blocks(string(text))
	if len(bs) == 0 {
		return Rebased{}, fmt.Errorf("%s: no directive in it", name)
	}
	ins, err := insertionPoint(onto)
	if err != nil {
		return Rebased{}, err
	}
	bundle, err := onto.Bundle()
	if err != nil {
		return Rebased{}, err
	}
	lines := strings.SplitAfter(string(text), "\n")
	var before, after []string
	var out Rebased
	used := map[int]bool{}
	for _, r := range onto.Rules {
		used[r.ID] = true
	}
	for _, b := range bs {
		chunk := strings.Join(lines[b.first-1:b.last], "")
		if !strings.HasSuffix(chunk, "\n") {
			chunk += "\n"
		}
		// A file tune wrote took the first free ID of the baseline it was
		// written from, which a fix promoted since may hold now.
		if m := idAction.FindStringSubmatch(strings.Join(lines[b.line-1:b.last], "")); m != nil {
			if id, _ := strconv.Atoi(m[2]); used[id] {
				to := nextFree(used, firstLocalID)
				chunk = renumber(chunk, id, to)
				out.Renumbered = append(out.Renumbered, fmt.Sprintf("rule %d is now %d: the served baseline has a rule %d", id, to, id))
			} else {
				used[id] = true
			}
		}
		switch n := strings.ToLower(b.name); {
		case n == "secrule" || n == "secaction":
			before = append(before, chunk)
		case strings.HasPrefix(n, "secruleremoveby") || strings.HasPrefix(n, "secruleupdatetargetby"):
			after = append(after, chunk)
		default:
			return Rebased{}, fmt.Errorf("%s:%d: %s is not an exclusion; --exclusion takes SecRule, SecAction, SecRuleRemove* and SecRuleUpdateTarget* only (use --candidate for a whole ruleset)", name, b.line, b.name)
		}
		out.Carried = append(out.Carried, fmt.Sprintf("%s:%d %s", name, b.line, b.name))
	}
	files := map[string][]byte{}
	for n, c := range bundle.Files {
		files[n] = c
	}
	var pieces []insert
	if len(before) > 0 {
		pieces = append(pieces, insert{file: bundle.Main, line: ins.line, text: fmt.Sprintf("# --- from %s, applied by wafcanary start ---\n%s", path.Base(name), strings.Join(before, ""))})
	}
	if len(after) > 0 {
		pieces = append(pieces, insert{file: bundle.Main, text: fmt.Sprintf("# --- from %s, applied by wafcanary start ---\n%s", path.Base(name), strings.Join(after, ""))})
	}
	for n, c := range apply(files, pieces) {
		files[n] = c
	}
	files[bundle.Main] = append([]byte(fmt.Sprintf("%s%s (with the exclusions of %s, applied by wafcanary start)\n", baseMarker, onto.Version, name)), files[bundle.Main]...)
	fsys := fstest.MapFS{}
	for n, c := range files {
		fsys[n] = &fstest.MapFile{Data: c, Mode: 0o644}
	}
	rs, err := ruleset.LoadFS(fsys, bundle.Main, name)
	if err != nil {
		return Rebased{}, fmt.Errorf("%w: the served baseline %s with the exclusions of %s: %w", ErrDoesNotCompile, short(onto.Version), name, err)
	}
	links := 0
	for _, ch := range ruleset.Added(onto.Directives(), rs.Directives()) {
		links += len(ch)
	}
	if links != len(bs) {
		rs.Retire()
		return Rebased{}, fmt.Errorf("%s holds %d directive(s), and the candidate adds %d to the served baseline: it repeats a rule the baseline has, or a chain is split between SecRules and configure-time directives", name, len(bs), links)
	}
	out.Ruleset = rs
	return out, nil
}

// ErrDoesNotCompile is a file of exclusions that makes the baseline fail
// to compile; the error names the line.
var ErrDoesNotCompile = errors.New("does not compile")

// insert is text to put into file before line (1-based), or at its end
// when line is 0.
type insert struct {
	file string
	line int
	text string
}

// apply returns the files ins change, each insert made; inserts at the
// same place keep their order.
func apply(files map[string][]byte, ins []insert) map[string][]byte {
	out := map[string][]byte{}
	byFile := map[string][]insert{}
	for _, in := range ins {
		byFile[in.file] = append(byFile[in.file], in)
	}
	for name, list := range byFile {
		content := string(files[name])
		if content != "" && !strings.HasSuffix(content, "\n") {
			content += "\n"
		}
		lines := strings.SplitAfter(content, "\n")
		if len(lines) > 0 && lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		var b strings.Builder
		for i := 0; i <= len(lines); i++ {
			for _, in := range list {
				if in.line == i+1 || (in.line == 0 || in.line > len(lines)) && i == len(lines) {
					b.WriteString(in.text)
					b.WriteString("\n")
				}
			}
			if i < len(lines) {
				b.WriteString(lines[i])
			}
		}
		out[name] = []byte(b.String())
	}
	return out
}

// block is one directive of a SecLang file: its first line (the comments
// just above it included), the line it starts on, its last line (its
// continuations included), 1-based, and its name.
type block struct {
	first, line, last int
	name              string
}

// blocks splits a SecLang file into directives as Coraza reads it: a
// line ending in a backslash continues on the next, comments inside a
// continuation are skipped, backticks hold lines together. A directive's
// block starts at the comment lines right above it (no blank line
// between), so a rule carried elsewhere keeps what it says of itself.
func blocks(text string) []block {
	lines := strings.Split(text, "\n")
	var out []block
	comment, open, backticks := 0, false, false
	var cur block
	for i, raw := range lines {
		l := strings.TrimSpace(raw)
		switch {
		case l == "" && !open:
			comment = 0
			continue
		case l == "" || l[0] == '#':
			if !open && comment == 0 {
				comment = i + 1
			}
			continue
		}
		if !open {
			cur = block{first: i + 1, line: i + 1}
			if comment > 0 {
				cur.first = comment
			}
			cur.name = strings.Fields(l)[0]
			comment, open = 0, true
		}
		switch {
		case !backticks && l[len(l)-1] == '`':
			backticks = true
		case backticks && l[0] == '`':
			backticks = false
		}
		if backticks || strings.HasSuffix(l, `\`) {
			continue
		}
		cur.last, open = i+1, false
		out = append(out, cur)
	}
	return out
}

// blockText is the text of the rule that starts on line first and whose
// last link starts on line last in content, with its comments.
func blockText(content string, first, last int) (string, bool) {
	var from, to int
	for _, b := range blocks(content) {
		if b.line == first {
			from = b.first
		}
		if b.line == last {
			to = b.last
		}
	}
	if from == 0 || to < from {
		return "", false
	}
	lines := strings.Split(content, "\n")
	return strings.Join(lines[from-1:to], "\n") + "\n", true
}

// idAction finds a rule's id action in its text.
var idAction = regexp.MustCompile(`(\bid:\s*'?)(\d+)\b`)

// nextFree marks and returns the first ID from id up not in used.
func nextFree(used map[int]bool, id int) int {
	for used[id] {
		id++
	}
	used[id] = true
	return id
}

// renumber changes rule id from to to in text, in its id action and in
// tune's comment that names it.
func renumber(text string, from, to int) string {
	re := regexp.MustCompile(`(\bid:\s*'?)` + strconv.Itoa(from) + `\b`)
	text = re.ReplaceAllString(text, "${1}"+strconv.Itoa(to))
	return strings.Replace(text, "exclusion "+strconv.Itoa(from)+",", "exclusion "+strconv.Itoa(to)+",", 1)
}

// occurrence is which occurrence of d's text d is among ds's directives
// that are not added (0 for the first).
func occurrence(ds []ruleset.Directive, isAdded map[pos]bool, d ruleset.Directive) int {
	n := 0
	for _, o := range ds {
		if o.File == d.File && o.Line == d.Line {
			return n
		}
		if !isAdded[pos{o.File, o.Line}] && same(o, d) {
			n++
		}
	}
	return n
}

// pos is where a directive starts.
type pos struct {
	file string
	line int
}

// nth is the n-th directive of ds with d's text.
func nth(ds []ruleset.Directive, d ruleset.Directive, n int) (ruleset.Directive, bool) {
	for _, o := range ds {
		if same(o, d) {
			if n == 0 {
				return o, true
			}
			n--
		}
	}
	return ruleset.Directive{}, false
}

func same(a, b ruleset.Directive) bool { return strings.EqualFold(a.Name, b.Name) && a.Args == b.Args }

// summary names a directive for a message: its rule ID, or its name and
// the start of its arguments.
func summary(d ruleset.Directive) string {
	if id, ok := d.ID(); ok {
		return fmt.Sprintf("%s (rule %d)", d.Name, id)
	}
	args := d.Args
	if len(args) > 60 {
		args = args[:60] + "..."
	}
	return shown(d.Name + " " + args)
}

func describe(chains [][]ruleset.Directive, max int) string {
	var parts []string
	for i, ch := range chains {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(chains)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%s:%d %s", path.Base(ch[0].File), ch[0].Line, summary(ch[0])))
	}
	return strings.Join(parts, "; ")
}
