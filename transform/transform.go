// Package transform is a few of Coraza's transformations with a fast path
// for the values they leave alone.
//
// CRS runs transformation chains such as t:replaceComments or
// t:removeWhitespace over every argument, header and cookie, and on benign
// traffic most values hold nothing those transformations change. Coraza
// v3.8.1's versions copy such a value anyway (replaceComments twice,
// removeCommentsChar once) or decode it rune by rune through a closure
// (removeWhitespace). The versions here first look for a byte that could
// change; without one they return the value itself, with no allocation.
//
// Outcomes do not change: each function returns the same string, the same
// changed flag and the same (nil) error as Coraza's on every input,
// invalid UTF-8 included. The differential test runs both over the CRS
// regression suite's values and edge cases.
package transform

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// Transformations are the replacements Register installs, by Coraza's
// name for each. Read it; do not change it.
var Transformations = map[string]plugintypes.Transformation{
	"removeCommentsChar": RemoveCommentsChar,
	"removeWhitespace":   RemoveWhitespace,
	"replaceComments":    ReplaceComments,
}

var register sync.Once

// Register installs Transformations in place of Coraza's built-ins of the
// same names for every WAF compiled after it, process-wide (Coraza's
// transformation registry is global). Calling it again is harmless. WAFs
// compiled before keep the functions they were built with.
func Register() {
	register.Do(func() {
		for name, fn := range Transformations {
			plugins.RegisterTransformation(name, fn)
		}
	})
}

// asciiSpace holds the ASCII bytes unicode.IsSpace reports; its other
// spaces (U+0085, U+00A0 and up) are not ASCII.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// RemoveWhitespace is t:removeWhitespace: it drops every rune
// unicode.IsSpace reports. Like Coraza's (strings.Map), it writes a byte
// that is not UTF-8 as U+FFFD, without reporting a change for it.
func RemoveWhitespace(s string) (string, bool, error) {
	first := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return removeUnicodeWhitespace(s)
		}
		if first < 0 && asciiSpace[c] {
			first = i
		}
	}
	if first < 0 {
		return s, false, nil
	}
	// ASCII with at least one space: drop them byte by byte.
	b := make([]byte, first, len(s)-1)
	copy(b, s[:first])
	for i := first + 1; i < len(s); i++ {
		if !asciiSpace[s[i]] {
			b = append(b, s[i])
		}
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), true, nil
}

// removeUnicodeWhitespace is Coraza's removeWhitespace, for values that are
// not all ASCII.
func removeUnicodeWhitespace(s string) (string, bool, error) {
	changed := false
	out := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			changed = true
			return -1
		}
		return r
	}, s)
	return out, changed, nil
}

// ReplaceComments is t:replaceComments: each C comment, /* to */ or to the
// end of the value when unterminated, becomes one space.
func ReplaceComments(s string) (string, bool, error) {
	start := strings.Index(s, "/*")
	if start < 0 {
		return s, false, nil
	}
	b := make([]byte, start, len(s))
	copy(b, s[:start])
	for i := start; i < len(s); {
		if i+1 < len(s) && s[i] == '/' && s[i+1] == '*' {
			end := strings.Index(s[i+2:], "*/")
			b = append(b, ' ')
			if end < 0 {
				break
			}
			i += 2 + end + 2
			continue
		}
		b = append(b, s[i])
		i++
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), true, nil
}

// RemoveCommentsChar is t:removeCommentsChar: it drops the comment markers
// /*, */, <!--, -->, -- and #, and keeps what they enclose.
func RemoveCommentsChar(s string) (string, bool, error) {
	if !hasCommentChar(s) {
		return s, false, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		n := 0 // length of the marker at i
		switch s[i] {
		case '/':
			if i+1 < len(s) && s[i+1] == '*' {
				n = 2
			}
		case '*':
			if i+1 < len(s) && s[i+1] == '/' {
				n = 2
			}
		case '<':
			if strings.HasPrefix(s[i:], "<!--") {
				n = 4
			}
		case '-':
			if strings.HasPrefix(s[i:], "-->") {
				n = 3
			} else if i+1 < len(s) && s[i+1] == '-' {
				n = 2
			}
		case '#':
			n = 1
		}
		if n == 0 {
			b = append(b, s[i])
			n = 1
		}
		i += n
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), true, nil
}

// hasCommentChar reports whether s holds a marker RemoveCommentsChar
// drops: every one of them contains #, /*, */ or --.
func hasCommentChar(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '#':
			return true
		case '*':
			if i > 0 && s[i-1] == '/' || i+1 < len(s) && s[i+1] == '/' {
				return true
			}
		case '-':
			if i+1 < len(s) && s[i+1] == '-' {
				return true
			}
		}
	}
	return false
}
