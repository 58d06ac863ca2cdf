// Package form is Coraza's URL-encoded body processor with one fix: every
// value of every argument is kept.
//
// Coraza v3.8.1's processor stores each argument name's values with
// Map.Set, and ARGS_POST folds names to lower case: in a body such as
// q=<script>...&Q= the values of q and Q land under one key, and whichever
// name comes later in Go's (random) map order replaces the other. About
// half of such requests reach the application, which reads q, with CRS
// having judged only Q's empty value. wafcanary's differential test found
// it (router.FuzzWAFJudgesWhatUpstreamReceives). This processor parses the
// body the same way, in order, and adds each value, as Coraza already does
// for the query string (ExtractGetArguments). The fix is meant upstream;
// until then it replaces the built-in processor process-wide.
package form

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

var register sync.Once

// Register installs the processor as Coraza's "urlencoded" for every
// transaction from now on, process-wide: Coraza's registry is global, and
// unlocked, so it must run before any transaction parses a body. Package
// ruleset calls it before compiling its first ruleset, which comes before
// any request. Calling it again is harmless.
func Register() {
	register.Do(func() {
		plugins.RegisterBodyProcessor("urlencoded", func() plugintypes.BodyProcessor { return processor{} })
	})
}

type processor struct{}

// setter is what Coraza's single-value collections implement beyond the
// public collection.Single.
type setter interface{ Set(string) }

// ProcessRequest parses a URL-encoded body into ARGS_POST, every value
// kept, and sets REQUEST_BODY and REQUEST_BODY_LENGTH, as Coraza's own
// processor does.
func (processor) ProcessRequest(r io.Reader, v plugintypes.TransactionVariables, o plugintypes.BodyProcessorOptions) error {
	var b strings.Builder
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	body := b.String()
	truncated := Parse(body, o.ArgumentLimit, v.ArgsPost().Add)
	if truncated {
		if err := set(v.ArgumentsLimitReached(), "1"); err != nil {
			return err
		}
	}
	if err := set(v.RequestBody(), body); err != nil {
		return err
	}
	return set(v.RequestBodyLength(), strconv.Itoa(len(body)))
}

// set sets one of Coraza's single-value collections.
func set(c any, value string) error {
	s, ok := c.(setter)
	if !ok {
		return fmt.Errorf("form: Coraza's collection %T cannot be set", c)
	}
	s.Set(value)
	return nil
}

// ProcessResponse does nothing: Coraza's processor does not parse
// responses either.
func (processor) ProcessResponse(io.Reader, plugintypes.TransactionVariables, plugintypes.BodyProcessorOptions) error {
	return nil
}

// Parse splits a URL-encoded body on '&' and each pair on its first '=',
// decodes both as Coraza does (leniently: an invalid escape is kept as
// written), and calls add for each pair in order, skipping empty pairs. It
// stops after limit pairs (0: no limit) and reports whether it did.
func Parse(body string, limit int, add func(name, value string)) (truncated bool) {
	n := 0
	for body != "" {
		pair := body
		if i := strings.IndexByte(pair, '&'); i >= 0 {
			pair, body = pair[:i], pair[i+1:]
		} else {
			body = ""
		}
		if pair == "" {
			continue
		}
		if limit > 0 && n >= limit {
			return true
		}
		name, value, _ := strings.Cut(pair, "=")
		add(unescape(name), unescape(value))
		n++
	}
	return false
}

// unescape is Coraza's lenient query unescaping: '+' is a space, %XX a
// byte, and anything else, a malformed escape included, itself.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
