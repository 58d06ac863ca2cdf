// Package literal finds whether a value contains any of a set of strings,
// without allocating: small sets by skipping to each member's rarest byte,
// larger ones in one pass over the value. The @rx prefilter (package rx) and
// the @pm operators (package pm) use it to answer "no match" on benign
// values without running a regexp or an Aho-Corasick automaton.
package literal

import (
	"math/bits"
	"strings"
)

// Set is an immutable set of strings to look for. It is safe for
// concurrent use.
type Set struct {
	fold   bool
	always bool      // holds the empty string, which every value contains
	few    []rare    // at most fewMembers: searched one by one
	first  [256]bool // first bytes of members (both cases when folded)
	single [256]bool // one-byte members (both cases when folded)

	// pairs is a hashed bitmap of the first two bytes of every member of
	// two bytes or more: the cheap "no" for most positions in text.
	pairs [64]uint64

	// Members of two or three bytes, by their first two bytes. CRS lists
	// hold few of them, so a map behind the pairs bitmap will do.
	short map[uint16][]string

	// Members of four bytes or more, by their first four (lower-cased when
	// folded). CRS's error-page lists hold hundreds of members sharing a
	// first pair ("warning: ...", "<b>..."), so indexing by pairs left
	// long runs of string comparisons; four bytes nearly always leave one
	// candidate. quads is a bitmap of the four-byte keys' hashes, the
	// cheap "no" for most positions; table is an open-addressed index of
	// the keys into long. Both take the top bits of a key's multiplicative
	// hash: its low bits depend only on the key's low (first) bytes, which
	// CRS's members share, and would cluster the table into long probes.
	quads      []uint64
	quadShift  uint8
	table      []quadSlot
	tableShift uint8
	long       []string // grouped by key; table slots point at runs
}

type quadSlot struct {
	key    uint32
	lo, hi uint32 // long[lo:hi] share key; hi == 0: empty slot
}

// fewMembers is how many members are searched for one at a time, each
// by its rarest byte.
const fewMembers = 4

// rare is a member to search for by its rarest byte: CRS's web-shell
// rules look for "<title>..." and "<html>..." in HTML responses, where
// strings.Contains stops at every '<'. strings.IndexByte runs on the
// CPU's vector instructions, so skipping to a byte that seldom occurs
// leaves few places to compare the whole member.
//
// A folded member whose rarest byte is a letter is searched for twice,
// once by each case of that letter.
type rare struct {
	s    string
	fold bool
	off  int // index in s of its rarest byte
}

func newRare(s string, fold bool) rare {
	r := rare{s: s, fold: fold}
	for i := 1; i < len(s); i++ {
		if commonness(s[i]) < commonness(s[r.off]) {
			r.off = i
		}
	}
	return r
}

// in reports whether v contains r.s.
func (r rare) in(v string) bool {
	b := r.s[r.off]
	if r.fold && 'a' <= b && b <= 'z' {
		return r.by(v, b) || r.by(v, b-'a'+'A')
	}
	return r.by(v, b)
}

// by reports whether v contains r.s at a place where v holds b at the
// offset of r.s's rarest byte.
func (r rare) by(v string, b byte) bool {
	n := len(r.s)
	if len(v) < n {
		return false
	}
	// The rarest byte of a match at p sits at p+off, for p in [0, len(v)-n].
	for i, last := r.off, len(v)-n+r.off; i <= last; i++ {
		j := strings.IndexByte(v[i:last+1], b)
		if j < 0 {
			return false
		}
		i += j
		if at := v[i-r.off : i-r.off+n]; at == r.s || r.fold && equalFold(at, r.s) {
			return true
		}
	}
	return false
}

// equalFold reports whether s, lower-cased in ASCII, equals lower.
func equalFold(s, lower string) bool {
	for i := 0; i < len(lower); i++ {
		if lowerByte(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

// commonness ranks how often a byte occurs in web traffic (HTML, JSON,
// form posts, English): higher is commoner. It only steers which byte a
// search skips to; any ranking gives the same answers.
func commonness(c byte) int {
	const lowers = "etaoinsrhldcumfpgwybvkxjqz"
	const uppers = "ETAOINSRHLDCUMFPGWYBVKXJQZ"
	const punct = "<>/\"=.,-:;_'()&?#!%+[]{}@*|~$^`\\"
	switch {
	case c == ' ':
		return 255
	case 'a' <= c && c <= 'z':
		return 250 - strings.IndexByte(lowers, c)
	case c == '\n' || c == '\t' || c == '\r':
		return 200
	case strings.IndexByte(punct, c) >= 0:
		return 190 - strings.IndexByte(punct, c)
	case '0' <= c && c <= '9':
		return 140
	case 'A' <= c && c <= 'Z':
		return 130 - strings.IndexByte(uppers, c)
	case c >= 0x80:
		return 60
	default:
		return 0
	}
}

// New returns the set of members. With fold, members must be lower-case
// and are matched ignoring ASCII case (bytes outside ASCII compare as
// they are), the way Aho-Corasick's AsciiCaseInsensitive option does.
func New(members []string, fold bool) *Set {
	l := &Set{fold: fold}
	for _, s := range members {
		if s == "" {
			l.always = true
			return l
		}
	}
	if len(members) <= fewMembers {
		for _, m := range members {
			l.few = append(l.few, newRare(m, fold))
		}
		return l
	}
	mark := func(t *[256]bool, c byte) {
		t[c] = true
		if fold && 'a' <= c && c <= 'z' {
			t[c-'a'+'A'] = true
		}
	}
	byQuad := map[uint32][]string{}
	var quadOrder []uint32
	for _, s := range members {
		mark(&l.first, s[0])
		if len(s) == 1 {
			mark(&l.single, s[0])
			continue
		}
		k := pairKey(s[0], s[1])
		h := pairHash(k)
		l.pairs[h>>6] |= 1 << (h & 63)
		switch {
		case len(s) < 4:
			if l.short == nil {
				l.short = map[uint16][]string{}
			}
			l.short[k] = append(l.short[k], s)
		default:
			k := quad(s)
			if _, ok := byQuad[k]; !ok {
				quadOrder = append(quadOrder, k)
			}
			byQuad[k] = append(byQuad[k], s)
		}
	}
	if len(quadOrder) > 0 {
		l.index(quadOrder, byQuad)
	}
	return l
}

// index builds the bitmap and the open-addressed table of four-byte keys.
// The bitmap has about 16 bits per key, so a position whose four bytes
// start no member passes it one time in sixteen or less.
func (l *Set) index(keys []uint32, byKey map[uint32][]string) {
	bitsLog := max(9, bits.Len(uint(len(keys)*16-1)))
	l.quads = make([]uint64, 1<<bitsLog/64)
	l.quadShift = uint8(32 - bitsLog)
	slotsLog := max(1, bits.Len(uint(len(keys)*2-1)))
	l.table = make([]quadSlot, 1<<slotsLog)
	l.tableShift = uint8(32 - slotsLog)
	mask := uint32(len(l.table) - 1)
	for _, k := range keys {
		h := hash(k)
		b := h >> l.quadShift
		l.quads[b>>6] |= 1 << (b & 63)
		lo := uint32(len(l.long))
		l.long = append(l.long, byKey[k]...)
		i := h >> l.tableShift
		for l.table[i].hi != 0 {
			i = (i + 1) & mask
		}
		l.table[i] = quadSlot{key: k, lo: lo, hi: uint32(len(l.long))}
	}
}

// Folded reports whether the set ignores ASCII case.
func (l *Set) Folded() bool { return l.fold }

// Members lists the set, for tests and diagnostics.
func (l *Set) Members() []string {
	if l.always {
		return []string{""}
	}
	var out []string
	for _, r := range l.few {
		out = append(out, r.s)
	}
	out = append(out, l.long...)
	for _, set := range l.short {
		out = append(out, set...)
	}
	for c := range 256 {
		if l.single[c] && !(l.fold && 'A' <= c && c <= 'Z') {
			out = append(out, string(rune(c)))
		}
	}
	return out
}

func pairKey(c, d byte) uint16 { return uint16(c)<<8 | uint16(d) }

func pairHash(k uint16) uint32 { return uint32(k) * 2654435761 >> 20 }

func hash(k uint32) uint32 { return k * 2654435761 }

// quad is the first four bytes of s, little-endian; s has at least four.
func quad(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// lower4 lower-cases the ASCII letters among four packed bytes at once:
// a byte gets 0x20 added when it lies in 'A'..'Z', and bytes with the
// high bit set (outside ASCII) are left as they are.
func lower4(x uint32) uint32 {
	h := x & 0x7f7f7f7f
	ge := h + 0x3f3f3f3f // high bit set where the byte is >= 'A'
	gt := h + 0x25252525 // high bit set where the byte is > 'Z'
	m := ge &^ gt &^ x & 0x80808080
	return x | m>>2
}

// FoundIn reports whether value contains a member. Each byte costs a
// table lookup; only a byte that starts a member goes on to the bitmap
// of the members' first four bytes, and only a hit there to comparing
// the few members that start with those four bytes.
func (l *Set) FoundIn(value string) bool {
	if l.always {
		return true
	}
	if l.few != nil {
		for _, r := range l.few {
			if r.in(value) {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !l.first[c] {
			continue
		}
		if l.single[c] {
			return true
		}
		if i+1 == len(value) {
			break
		}
		d := value[i+1]
		if l.fold {
			c, d = lowerByte(c), lowerByte(d)
		}
		pk := pairKey(c, d)
		if h := pairHash(pk); l.pairs[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		rest := value[i:]
		if l.short != nil && l.shortAt(pk, rest) {
			return true
		}
		if l.table == nil || len(rest) < 4 {
			continue
		}
		k := quad(rest)
		if l.fold {
			k = lower4(k)
		}
		h := hash(k)
		if b := h >> l.quadShift; l.quads[b>>6]&(1<<(b&63)) == 0 {
			continue
		}
		mask := uint32(len(l.table) - 1)
		for j := h >> l.tableShift; l.table[j].hi != 0; j = (j + 1) & mask {
			if s := l.table[j]; s.key == k {
				for _, m := range l.long[s.lo:s.hi] {
					if l.hasPrefix(rest[4:], m[4:]) {
						return true
					}
				}
				break
			}
		}
	}
	return false
}

// shortAt reports whether s, whose first two bytes (lower-cased when
// folded) are k, starts with a member of two or three bytes.
func (l *Set) shortAt(k uint16, s string) bool {
	for _, m := range l.short[k] {
		if l.hasPrefix(s[2:], m[2:]) {
			return true
		}
	}
	return false
}

func (l *Set) hasPrefix(s, prefix string) bool {
	if !l.fold {
		return strings.HasPrefix(s, prefix)
	}
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerByte(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
