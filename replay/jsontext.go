package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// headerPairs reads a JSON object of headers in order, keeping every
// repeated name: libmodsecurity v3 writes a repeated header as the same
// key twice, which decoding into a map would lose. A value may be a
// string or an array of strings (Coraza's).
func headerPairs(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("headers: not an object")
	}
	var out [][2]string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("headers: %w", err)
		}
		name, _ := t.(string)
		if t, err = dec.Token(); err != nil {
			return nil, fmt.Errorf("headers: %s: %w", name, err)
		}
		switch v := t.(type) {
		case string:
			out = append(out, [2]string{name, v})
		case json.Delim:
			if v != '[' {
				return nil, fmt.Errorf("headers: %s: an object where a value was expected", name)
			}
			for dec.More() {
				t, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("headers: %s: %w", name, err)
				}
				s, ok := t.(string)
				if !ok {
					return nil, fmt.Errorf("headers: %s: a value that is not a string", name)
				}
				out = append(out, [2]string{name, s})
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("headers: %s: %w", name, err)
			}
		default:
			out = append(out, [2]string{name, fmt.Sprint(v)})
		}
	}
	return out, nil
}

// rawString unquotes a JSON string keeping the bytes that are not UTF-8
// as they are: ModSecurity writes a binary body's bytes into the JSON
// string raw, and encoding/json would replace each with U+FFFD. null is
// nil.
func rawString(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, errors.New("not a string")
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return bytes.Clone(s), nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(s) {
			return nil, errors.New("string ends in a backslash")
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, err := unicodeEscape(s[i+1:])
			if err != nil {
				return nil, err
			}
			i += n
			if r < utf8.RuneSelf {
				out = append(out, byte(r))
			} else {
				out = utf8.AppendRune(out, r)
			}
		default:
			return nil, fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return out, nil
}

// unicodeEscape reads the XXXX of \uXXXX, and a low surrogate's escape
// after a high one; it returns the rune and the bytes read after the u.
func unicodeEscape(s []byte) (rune, int, error) {
	hex := func(b []byte) (rune, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[:4]), 16, 16)
		return rune(v), err == nil
	}
	r, ok := hex(s)
	if !ok {
		return 0, 0, errors.New("bad \\u escape")
	}
	if utf16.IsSurrogate(r) && len(s) >= 10 && s[4] == '\\' && s[5] == 'u' {
		if r2, ok := hex(s[6:]); ok {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d, 10, nil
			}
		}
	}
	return r, 4, nil
}
