// Package literal finds whether a value contains any of a set of strings,
// in one pass and without allocating. The @rx prefilter (package rx) and
// the @pm operators (package pm) use it to answer "no match" on benign
// values without running a regexp or an Aho-Corasick automaton.
package literal

import "strings"

// Set is an immutable set of strings to look for. It is safe for
// concurrent use.
type Set struct {
	fold   bool
	always bool      // holds the empty string, which every value contains
	few    []string  // case-sensitive and at most fewMembers: searched one by one
	first  [256]bool // first bytes of members (both cases when folded)
	single [256]bool // one-byte members (both cases when folded)
	pairs  [64]uint64
	byPair map[uint16][]string // members of two bytes or more, by their first two bytes
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
	l.byPair = map[uint16][]string{}
	mark := func(t *[256]bool, c byte) {
		t[c] = true
		if fold && 'a' <= c && c <= 'z' {
			t[c-'a'+'A'] = true
		}
	}
	for _, s := range members {
		mark(&l.first, s[0])
		if len(s) == 1 {
			mark(&l.single, s[0])
			continue
		}
		k := pairKey(s[0], s[1])
		h := pairHash(k)
		l.pairs[h>>6] |= 1 << (h & 63)
		l.byPair[k] = append(l.byPair[k], s)
	}
	return l
}

// Folded reports whether the set ignores ASCII case.
func (l *Set) Folded() bool { return l.fold }

// Members lists the set, for tests and diagnostics.
func (l *Set) Members() []string {
	if l.always {
		return []string{""}
	}
	out := append([]string(nil), l.few...)
	for _, set := range l.byPair {
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

// FoundIn reports whether value contains a member. Each byte costs a
// table lookup; only a byte that starts a member costs a hashed bitmap
// lookup of the pair it starts, and only a hit there compares members.
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
		d := value[i+1]
		if l.fold {
			c, d = lower(c), lower(d)
		}
		k := pairKey(c, d)
		if h := pairHash(k); l.pairs[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, s := range l.byPair[k] {
			if l.hasPrefix(value[i:], s) {
				return true
			}
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
