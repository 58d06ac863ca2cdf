package rx

import (
	"regexp/syntax"
	"slices"
)

// A prefilter answers "this value cannot match" without running the
// regular expression, from two necessary conditions read off the pattern's
// syntax tree when it is compiled:
//
//   - minLen: every match consumes at least this many bytes, so a shorter
//     value cannot match;
//   - lits: every match contains at least one of these strings (ASCII,
//     lower-cased), so an ASCII value that contains none of them, compared
//     without case, cannot match.
//
// On benign traffic nearly every CRS evaluation is a "no match", and most
// CRS patterns need a keyword (select, script, /etc/, ...) that ordinary
// values lack; the prefilter answers those in one pass over the value.
//
// It can only say "no" when the regexp would say no. Where the analysis is
// unsure it keeps no condition, and values that are not ASCII skip the
// literal check (case folding reaches outside ASCII: (?i)k matches U+212A
// KELVIN SIGN), so they always run the regexp. Coraza's stock operator has
// the same idea (SecRxPreFilter); it lives inside that operator, which this
// package replaces, hence this one.
type prefilter struct {
	minLen int
	lits   *litSet // nil: no literal condition
}

// mayMatch reports whether value can match; false is certain.
func (p *prefilter) mayMatch(value string) bool {
	if len(value) < p.minLen {
		return false
	}
	return p.lits == nil || p.lits.foundIn(value)
}

// Limits that keep the analysis and the per-value check cheap. A bigger
// set is dropped (no condition), never truncated: a truncated set would
// reject values that contain only a dropped literal.
const (
	maxExact = 64  // strings a node can match, when enumerated
	maxLits  = 256 // strings in a required set
)

// newPrefilter analyses expr (as compiled, with its (?sm) wrapper). It
// returns nil when no condition is worth checking.
func newPrefilter(expr string) *prefilter {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	p := &prefilter{minLen: minLen(re)}
	in := analyse(re)
	if set := in.best(); set != nil {
		p.lits = newLitSet(set)
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

// info is what a node tells about the ASCII text it matches, lower-cased:
// exact, when not nil, holds every string the node can match; req, when
// not nil, is a set one of whose members is in every match.
type info struct {
	exact []string
	req   []string
}

// best is the strongest required set: the exact set when there is one,
// unless the node can match the empty string, which satisfies any set.
func (in info) best() []string {
	if in.exact != nil {
		if slices.Contains(in.exact, "") {
			return nil
		}
		return in.exact
	}
	return in.req
}

func analyse(re *syntax.Regexp) info {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return info{exact: []string{""}}
	case syntax.OpLiteral:
		b := make([]byte, len(re.Rune))
		for i, r := range re.Rune {
			if r >= 0x80 {
				return info{} // matches no ASCII text; claim nothing
			}
			b[i] = lower(byte(r))
		}
		return info{exact: []string{string(b)}}
	case syntax.OpCharClass:
		return info{exact: classChars(re.Rune)}
	case syntax.OpCapture:
		return analyse(re.Sub[0])
	case syntax.OpPlus:
		return info{req: analyse(re.Sub[0]).best()}
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return info{req: analyse(re.Sub[0]).best()}
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

// classChars is the ASCII members of a character class, lower-cased, when
// there are few of them ([Ss] is one). Members outside ASCII match no ASCII
// text, so leaving them out keeps the set necessary for ASCII values.
func classChars(ranges []rune) []string {
	var seen [128]bool
	var out []string
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1] && r < 0x80; r++ {
			c := lower(byte(r))
			if !seen[c] {
				seen[c] = true
				if out = append(out, string(c)); len(out) > 4 {
					return nil
				}
			}
		}
	}
	if len(out) == 0 {
		return nil // no ASCII member: claim nothing rather than "never"
	}
	return out
}

// concat joins runs of enumerable neighbours by cross product (s, e, l,
// e, c, t becomes "select") and keeps the strongest required set of any
// run or child: each of them is necessary for the whole.
func concat(subs []*syntax.Regexp) info {
	var (
		best     []string
		run      = []string{""}
		allExact = true
	)
	consider := func(set []string) {
		if set != nil && !slices.Contains(set, "") && stronger(set, best) {
			best = set
		}
	}
	for _, s := range subs {
		in := analyse(s)
		if in.exact == nil {
			allExact = false
			consider(run)
			run = []string{""}
			consider(in.req)
			continue
		}
		if next := cross(run, in.exact); next != nil {
			run = next
			continue
		}
		allExact = false
		consider(run)
		run = in.exact
	}
	if allExact {
		return info{exact: run}
	}
	consider(run)
	return info{req: best}
}

// alternate: every match is a match of one branch, so the union of the
// branches' enumerations is an enumeration, and the union of their
// required sets is required, provided every branch has one.
func alternate(subs []*syntax.Regexp) info {
	var exact, req []string
	exactOK, reqOK := true, true
	for _, s := range subs {
		in := analyse(s)
		if exactOK {
			exact = union(exact, in.exact)
			exactOK = in.exact != nil && len(exact) <= maxExact
		}
		if reqOK {
			b := in.best()
			req = union(req, b)
			reqOK = b != nil && len(req) <= maxLits
		}
	}
	switch {
	case exactOK:
		return info{exact: exact}
	case reqOK:
		return info{req: req}
	}
	return info{}
}

// stronger reports whether set a makes a better check than b: its
// shortest member is longer (fewer chance hits), then it is smaller.
func stronger(a, b []string) bool {
	if b == nil {
		return true
	}
	sa, sb := shortest(a), shortest(b)
	return sa > sb || sa == sb && len(a) < len(b)
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

// cross is every a followed by every b, or nil when that is too many.
func cross(a, b []string) []string {
	if len(a)*len(b) > maxExact {
		return nil
	}
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			if s := x + y; !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// litSet finds whether an ASCII value contains, without case, any of a set
// of lower-case ASCII strings, in one pass: one-byte members are a bitmap
// of bytes; longer ones are found through a hashed bitmap of their first
// two bytes, so most positions cost two lookups.
type litSet struct {
	single [2]uint64  // one-byte members
	pairs  [64]uint64 // 4,096-bit hash of the first two bytes of longer members
	long   map[uint16][]string
}

func newLitSet(set []string) *litSet {
	l := &litSet{long: map[uint16][]string{}}
	for _, s := range set {
		if len(s) == 1 {
			l.single[s[0]>>6] |= 1 << (s[0] & 63)
			continue
		}
		k := uint16(s[0])<<8 | uint16(s[1])
		h := pairHash(k)
		l.pairs[h>>6] |= 1 << (h & 63)
		l.long[k] = append(l.long[k], s)
	}
	return l
}

func pairHash(k uint16) uint32 { return uint32(k) * 2654435761 >> 20 }

// foundIn reports whether value may contain a member: true when it does,
// or when it is not ASCII and so cannot be compared without case folding.
func (l *litSet) foundIn(value string) bool {
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c >= 0x80 {
			return true
		}
		c = lower(c)
		if l.single[c>>6]&(1<<(c&63)) != 0 {
			return true
		}
		if i+1 == len(value) {
			break
		}
		k := uint16(c)<<8 | uint16(lower(value[i+1]))
		if h := pairHash(k); l.pairs[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, s := range l.long[k] {
			if hasPrefixFold(value[i:], s) {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with the lower-case ASCII prefix,
// comparing without ASCII case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}
