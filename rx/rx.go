// Package rx is Coraza's @rx operator with RE2 (github.com/wasilibs/go-re2,
// compiled to pure Go) doing the matching where that is faster and gives
// the same answer, and Go's regexp everywhere else.
//
// Go's regexp has no DFA: every match is an NFA or backtracking
// simulation, with capture groups tracked throughout, and CRS asks for
// captures on nearly every rule. RE2 answers "no match", the usual case on
// benign traffic, with a lazy DFA, and only runs its submatch engine on a
// match. Both implement the same syntax and leftmost-first semantics, so on
// valid UTF-8 they find the same match and the same groups.
//
// Outcomes do not change:
//   - patterns are wrapped in (?sm) exactly as Coraza v3's own operator does;
//   - patterns that match arbitrary bytes (\xNN escapes that are not UTF-8)
//     use rsc.io/binaryregexp without the wrapper, as Coraza does;
//   - values that are not valid UTF-8 are matched with Go's regexp, which
//     reads invalid bytes as U+FFFD where RE2 would stop;
//   - patterns RE2 does not compile use Go's regexp; patterns Go does not
//     compile are refused, as before;
//   - short values are matched with Go's regexp, whose backtracker beats
//     the cost of handing a string to RE2, unless the pattern is too big
//     for that backtracker;
//   - before either engine runs, a prefilter read off the pattern's syntax
//     tree (prefilter.go) rejects values that cannot match: too short, or
//     lacking every string a match must contain.
package rx

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	re2 "github.com/wasilibs/go-re2"
	"rsc.io/binaryregexp"
)

// MinRE2Len is the shortest value handed to RE2; shorter values are
// matched by Go's regexp, whose backtracker is faster on them. Patterns
// too big for that backtracker use RE2 at every length (see New).
const MinRE2Len = 24

// maxBacktrackInsts is the largest program Go's regexp runs with its
// backtracker (regexp's maxBacktrackProg); a bigger one takes its NFA
// simulation, slower than RE2's DFA at any length.
const maxBacktrackInsts = 500

var register sync.Once

// Register installs the operator as @rx for every WAF compiled after it,
// process-wide (Coraza's operator registry is global). Calling it again is
// harmless. WAFs compiled before keep the operator they were built with.
func Register() {
	register.Do(func() { plugins.RegisterOperator("rx", New) })
}

// Operator is the @rx operator. It is safe for concurrent use.
type Operator struct {
	std    *regexp.Regexp
	re2    *re2.Regexp // nil when RE2 cannot compile the pattern
	re2Min int         // shortest value handed to re2
	pre    *prefilter  // nil when the pattern gives no cheap condition
}

// New compiles an @rx operator; it has Coraza's OperatorFactory signature.
func New(options plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	if matchesArbitraryBytes(options.Arguments) {
		re, err := memoize(options.Memoizer, "wafcanary-rx-binary:"+options.Arguments, func() (any, error) {
			return binaryregexp.Compile(options.Arguments)
		})
		if err != nil {
			return nil, err
		}
		return binaryOperator{re.(*binaryregexp.Regexp)}, nil
	}
	expr := "(?sm)" + options.Arguments
	c, err := memoize(options.Memoizer, "wafcanary-rx:"+expr, func() (any, error) {
		std, err := regexp.Compile(expr)
		if err != nil {
			return nil, err
		}
		// Go's regexp compiled expr, so its parser accepts it too.
		tree, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			return nil, err
		}
		o := &Operator{std: std, pre: newPrefilter(tree)}
		if r, err := re2.Compile(expr); err == nil && r.NumSubexp() == std.NumSubexp() {
			o.re2, o.re2Min = r, MinRE2Len
			if progSize(tree) > maxBacktrackInsts {
				o.re2Min = 0
			}
		}
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	return c.(*Operator), nil
}

// Evaluate reports whether value matches, recording up to nine capture
// groups (group 0 is the whole match) when the rule captures.
func (o *Operator) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if o.pre != nil && !o.pre.mayMatch(value) {
		return false
	}
	useRE2 := o.re2 != nil && len(value) >= o.re2Min && utf8.ValidString(value)
	if !tx.Capturing() {
		if useRE2 {
			return o.re2.MatchString(value)
		}
		return o.std.MatchString(value)
	}
	var m []int
	if useRE2 {
		m = o.re2.FindStringSubmatchIndex(value)
	} else {
		m = o.std.FindStringSubmatchIndex(value)
	}
	if m == nil {
		return false
	}
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "") // the group did not take part in the match
		}
	}
	return true
}

// progSize is the number of instructions Go's regexp compiles tree to.
func progSize(tree *syntax.Regexp) int {
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil {
		return 0
	}
	return len(prog.Inst)
}

// binaryOperator matches bytes rather than UTF-8 text, for patterns such
// as [\x80-\xff] (Coraza does the same, without the (?sm) wrapper).
type binaryOperator struct{ re *binaryregexp.Regexp }

func (o binaryOperator) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if !tx.Capturing() {
		return o.re.MatchString(value)
	}
	m := o.re.FindStringSubmatch(value)
	if len(m) == 0 {
		return false
	}
	for i := 0; i < len(m) && i < 9; i++ {
		tx.CaptureField(i, m[i])
	}
	return true
}

func memoize(m plugintypes.Memoizer, key string, fn func() (any, error)) (any, error) {
	if m == nil {
		return fn()
	}
	return m.Do(key, fn)
}

// matchesArbitraryBytes reports whether expr's \xNN and \x{NN} escapes,
// decoded as bytes, make it invalid UTF-8: such a pattern is meant to
// match raw bytes. It decides exactly as Coraza v3.8.1's operator does.
func matchesArbitraryBytes(expr string) bool {
	decoded := make([]byte, 0, len(expr))
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '\\' {
			decoded = append(decoded, c)
			continue
		}
		if i+3 >= len(expr) {
			decoded = append(decoded, expr[i:]...)
			break
		}
		if expr[i+1] != 'x' {
			decoded = append(decoded, c)
			continue
		}
		esc, skip := expr[i:], 3 // \xNN
		if len(esc) >= 6 && esc[2] == '{' {
			if end := strings.IndexByte(esc, '}'); end >= 0 {
				esc, skip = `\x`+esc[3:end], end // \x{NN}
			}
		}
		v, multibyte, _, err := strconv.UnquoteChar(esc, 0)
		if err != nil || multibyte {
			decoded = append(decoded, c)
			continue
		}
		decoded = append(decoded, byte(v))
		i += skip
	}
	return !utf8.Valid(decoded)
}

var _ plugintypes.Operator = (*Operator)(nil)

// String names the engines in use, for tests and debugging.
func (o *Operator) String() string {
	return fmt.Sprintf("rx(%s, re2=%t)", o.std, o.re2 != nil)
}
