package rx

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wafcanary/wafcanary/literal"
)

// A prefilter answers "this value cannot match" without running the
// regular expression, from two necessary conditions read off the pattern's
// syntax tree when it is compiled:
//
//   - minLen: every match consumes at least this many bytes, so a shorter
//     value cannot match;
//   - lits: every match contains at least one of a set of strings, so a
//     value that contains none of them cannot match.
//
// On benign traffic nearly every CRS evaluation is a "no match", and most
// CRS patterns need a keyword (select, <script, /etc/, a web shell's
// <title>) that ordinary values lack; the prefilter answers those in one
// pass over the value, where a regexp engine would run its automaton.
//
// It can only say "no" when the regexp would say no. Where the analysis is
// unsure it keeps no condition. Strings taken from case-insensitive parts
// of a pattern are compared without ASCII case and only on ASCII values:
// case folding reaches outside ASCII ((?i)k matches U+212A KELVIN SIGN),
// so a value that is not ASCII runs the regexp. Coraza's stock operator
// has the same idea (SecRxPreFilter); it lives inside that operator, which
// this package replaces, hence this one.
type prefilter struct {
	minLen int
	lits   *literal.Set // nil: no literal condition
}

// mayMatch reports whether value can match; false is certain.
func (p *prefilter) mayMatch(value string) bool {
	if len(value) < p.minLen {
		return false
	}
	if p.lits == nil || p.lits.Folded() && !isASCII(value) {
		return true
	}
	return p.lits.FoundIn(value)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Limits that keep the analysis and the per-value check cheap. A bigger
// set is dropped (no condition), never truncated: a truncated set would
// reject values that contain only a dropped string.
const (
	maxExact = 64  // strings a node can match, when enumerated
	maxLits  = 256 // strings in a required set
)

// newPrefilter analyses the parsed pattern (as compiled, with its (?sm)
// wrapper). It returns nil when no condition is worth checking.
func newPrefilter(re *syntax.Regexp) *prefilter {
	p := &prefilter{minLen: minLen(re)}
	if set, ok := analyse(re).best(); ok {
		p.lits = literal.New(set.s, set.fold)
	}
	if p.minLen == 0 && p.lits == nil {
		return nil
	}
	return p
}

// minLen is the fewest bytes a match of re consumes. Every character
// consumes at least one byte (Go reads an invalid byte as one U+FFFD), so
// counting characters, not their UTF-8 length, stays a lower bound.
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n += minLen(s)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, s := range re.Sub {
			if m := minLen(s); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	default: // empty-width assertions, star, quest, no-match
		return 0
	}
}

// strs is a set of strings. Folded sets hold lower-case strings to be
// compared without ASCII case, on ASCII values only; the others are
// compared byte for byte, on any value.
type strs struct {
	s    []string
	fold bool
}

// folded is the set compared without case: a weaker condition than the
// exact one, so a set may always be folded, never unfolded.
func (a strs) folded() strs {
	if a.fold {
		return a
	}
	out := strs{fold: true}
	for _, s := range a.s {
		out.s = union(out.s, []string{strings.Map(lowerRune, s)})
	}
	return out
}

// align brings two sets to the same comparison.
func align(a, b strs) (strs, strs) {
	if a.fold != b.fold {
		return a.folded(), b.folded()
	}
	return a, b
}

// info is what a node tells about the text it matches: exact, when ok,
// holds every string the node can match; req, when ok, is a set one of
// whose members is in every match.
type info struct {
	exact, req     strs
	exactOK, reqOK bool
}

// best is the strongest required set: the exact set when there is one,
// unless the node can match the empty string, which satisfies any set.
func (in info) best() (strs, bool) {
	if in.exactOK {
		return in.exact, !slices.Contains(in.exact.s, "")
	}
	return in.req, in.reqOK
}

func exactly(fold bool, s ...string) info {
	return info{exact: strs{s, fold}, exactOK: true}
}

func requires(s strs, ok bool) info { return info{req: s, reqOK: ok} }

func analyse(re *syntax.Regexp) info {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return exactly(false, "")
	case syntax.OpLiteral:
		return literalInfo(re)
	case syntax.OpCharClass:
		return class(re.Rune)
	case syntax.OpCapture:
		return analyse(re.Sub[0])
	case syntax.OpPlus:
		return requires(analyse(re.Sub[0]).best())
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requires(analyse(re.Sub[0]).best())
		}
		return info{}
	case syntax.OpConcat:
		return concat(re.Sub)
	case syntax.OpAlternate:
		return alternate(re.Sub)
	default: // star, quest, any character, no-match
		return info{}
	}
}

// literalInfo: a case-sensitive literal is its UTF-8 bytes (unless it holds
// U+FFFD, which Go also matches against an invalid byte); a folded one is
// its lower-case ASCII, and if it holds a letter outside ASCII it matches
// no ASCII value, so it claims nothing.
func literalInfo(re *syntax.Regexp) info {
	fold := false
	if re.Flags&syntax.FoldCase != 0 {
		for _, r := range re.Rune {
			if unicode.SimpleFold(r) != r {
				fold = true
			}
		}
	}
	for _, r := range re.Rune {
		if r == utf8.RuneError || fold && r >= utf8.RuneSelf {
			return info{}
		}
	}
	s := string(re.Rune)
	if fold {
		s = strings.Map(lowerRune, s)
	}
	return exactly(fold, s)
}

// class: a small class of ASCII characters ([Ss], [/\\]) is its members.
// A class that also holds characters outside ASCII, as (?i)[k] holds
// U+212A, is reduced to its ASCII members compared without case: sound
// for ASCII values, the only ones a folded set is checked against.
func class(ranges []rune) info {
	var out []string
	fold := false
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i+1] >= utf8.RuneSelf {
			fold = true
		}
		for r := ranges[i]; r <= ranges[i+1] && r < utf8.RuneSelf; r++ {
			if out = union(out, []string{string(r)}); len(out) > 4 {
				return info{}
			}
		}
	}
	if len(out) == 0 {
		return info{} // no ASCII member: claim nothing rather than "never"
	}
	set := strs{s: out}
	if fold {
		set = set.folded()
	}
	return info{exact: set, exactOK: true}
}

// concat joins runs of enumerable neighbours by cross product (s, e, l,
// e, c, t becomes "select") and keeps the strongest required set of any
// run or child: each of them is necessary for the whole.
func concat(subs []*syntax.Regexp) info {
	var (
		best     strs
		found    bool
		run      = strs{s: []string{""}}
		allExact = true
	)
	consider := func(set strs, ok bool) {
		if ok && !slices.Contains(set.s, "") && (!found || stronger(set, best)) {
			best, found = set, true
		}
	}
	for _, s := range subs {
		in := analyse(s)
		if !in.exactOK {
			allExact = false
			consider(run, true)
			run = strs{s: []string{""}}
			consider(in.req, in.reqOK)
			continue
		}
		if next, ok := cross(run, in.exact); ok {
			run = next
			continue
		}
		allExact = false
		consider(run, true)
		run = in.exact
	}
	if allExact {
		return info{exact: run, exactOK: true}
	}
	consider(run, true)
	return requires(best, found)
}

// alternate: every match is a match of one branch, so the union of the
// branches' enumerations is an enumeration, and the union of their
// required sets is required, provided every branch has one.
func alternate(subs []*syntax.Regexp) info {
	var exact, req strs
	exactOK, reqOK := true, true
	for i, s := range subs {
		in := analyse(s)
		if exactOK = exactOK && in.exactOK; exactOK {
			if i == 0 {
				exact = in.exact
			} else {
				exact = unionSets(exact, in.exact)
			}
			exactOK = len(exact.s) <= maxExact
		}
		if reqOK {
			b, ok := in.best()
			if i == 0 {
				req = b
			} else {
				req = unionSets(req, b)
			}
			reqOK = ok && len(req.s) <= maxLits
		}
	}
	switch {
	case exactOK:
		return info{exact: exact, exactOK: true}
	case reqOK:
		return requires(req, true)
	}
	return info{}
}

// stronger reports whether set a makes a better check than b: its
// shortest member is longer (fewer chance hits), then it is compared
// byte for byte (on every value, and faster), then it is smaller.
func stronger(a, b strs) bool {
	sa, sb := shortest(a.s), shortest(b.s)
	if sa != sb {
		return sa > sb
	}
	if a.fold != b.fold {
		return !a.fold
	}
	return len(a.s) < len(b.s)
}

func shortest(set []string) int {
	n := -1
	for _, s := range set {
		if n < 0 || len(s) < n {
			n = len(s)
		}
	}
	return n
}

// cross is every a followed by every b, unless that is too many.
func cross(a, b strs) (strs, bool) {
	if len(a.s)*len(b.s) > maxExact {
		return strs{}, false
	}
	a, b = align(a, b)
	out := strs{fold: a.fold}
	for _, x := range a.s {
		for _, y := range b.s {
			out.s = union(out.s, []string{x + y})
		}
	}
	return out, true
}

func unionSets(a, b strs) strs {
	a, b = align(a, b)
	return strs{s: union(slices.Clip(a.s), b.s), fold: a.fold}
}

func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

func lowerRune(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}
