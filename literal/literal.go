// Package literal finds whether a value contains any of a set of strings,
// in one pass and without allocating. The @rx prefilter (package rx) and
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
	few    []string  // case-sensitive and at most fewMembers: searched one by one
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
	// the keys into long.
	quads     []uint64
	quadShift uint8
	table     []quadSlot
	long      []string // grouped by key; table slots point at runs
}

type quadSlot struct {
	key    uint32
	lo, hi uint32 // long[lo:hi] share key; hi == 0: empty slot
}

// fewMembers is how many case-sensitive members are searched for one at
// a time with strings.Contains, which uses the CPU's vector instructions.
const fewMembers = 4

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
	if !fold && len(members) <= fewMembers {
		l.few = members
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
	slotsLog := bits.Len(uint(len(keys)*2 - 1))
	l.table = make([]quadSlot, 1<<slotsLog)
	mask := uint32(len(l.table) - 1)
	for _, k := range keys {
		h := hash(k)
		b := h >> l.quadShift
		l.quads[b>>6] |= 1 << (b & 63)
		lo := uint32(len(l.long))
		l.long = append(l.long, byKey[k]...)
		i := h & mask
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
	out := append([]string(nil), l.few...)
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
		for _, s := range l.few {
			if strings.Contains(value, s) {
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
		c, d := value[i], value[i+1]
		if l.fold {
			c, d = lower(c), lower(d)
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
		for j := h & mask; l.table[j].hi != 0; j = (j + 1) & mask {
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
		if lower(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
