// Package pm is Coraza's @pm and @pmFromFile operators with a one-pass
// literal search (package literal) in front of the Aho-Corasick automaton.
//
// Coraza matches @pm phrases with github.com/petar-dambovaliev/aho-corasick
// in leftmost-longest mode, which walks its automaton byte by byte through
// every value, and CRS evaluates @pm rules on every argument, header and
// cookie. On benign traffic the answer is nearly always "no phrase here";
// the literal search gives that answer from a byte table, and only values
// that hold a phrase reach the automaton, built exactly as Coraza builds
// it, so matches and captures are Coraza's own.
package pm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	ahocorasick "github.com/petar-dambovaliev/aho-corasick"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

	"github.com/wafcanary/wafcanary/literal"
)

var register sync.Once

// Register installs the operators as @pm, @pmFromFile and @pmf for every
// WAF compiled after it, process-wide (Coraza's operator registry is
// global). Calling it again is harmless.
func Register() {
	register.Do(func() {
		plugins.RegisterOperator("pm", New)
		plugins.RegisterOperator("pmFromFile", NewFromFile)
		plugins.RegisterOperator("pmf", NewFromFile)
	})
}

// Operator is @pm or @pmFromFile. It is safe for concurrent use.
type Operator struct {
	lits   *literal.Set
	minLen int
	// ac is Coraza's automaton, built when a value first passes the
	// literal search: CRS's automata hold some 10 MB, and a process that
	// has seen no request that needs one (most values never reach it)
	// should not hold them. Its answers are the same built late as early.
	ac    func() ahocorasick.AhoCorasick
	built atomic.Bool // the automaton exists; read by tests
}

// New compiles @pm: space-separated phrases, matched without case. It
// has Coraza's OperatorFactory signature.
func New(options plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	data := strings.ToLower(options.Arguments)
	return compile(options.Memoizer, "wafcanary-pm:"+data, strings.Split(data, " "), true)
}

// NewFromFile compiles @pmFromFile: one phrase per line of the named file,
// found as Coraza finds it (absolute in the root filesystem, otherwise
// relative to the including files' directories), blank lines and # comments
// skipped.
func NewFromFile(options plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	data, err := loadFromFile(options.Arguments, options.Path, options.Root)
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		lines = append(lines, strings.ToLower(l))
	}
	// Keyed by the phrases, not (as Coraza keys it) by the file's name:
	// matchers are cached process-wide, and a candidate reloaded after its
	// data file was edited must not get the list the live WAF compiled.
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return compile(options.Memoizer, "wafcanary-pmf:"+hex.EncodeToString(sum[:]), lines, false)
}

// compile builds the automaton with Coraza's own options (its @pm asks for
// the DFA, its @pmFromFile does not) and the literal set in front of it.
func compile(m plugintypes.Memoizer, key string, phrases []string, dfa bool) (plugintypes.Operator, error) {
	build := func() (any, error) {
		o := &Operator{lits: literal.New(phrases, true)}
		o.ac = sync.OnceValue(func() ahocorasick.AhoCorasick {
			b := ahocorasick.NewAhoCorasickBuilder(ahocorasick.Opts{
				AsciiCaseInsensitive: true,
				MatchOnlyWholeWords:  false,
				MatchKind:            ahocorasick.LeftMostLongestMatch,
				DFA:                  dfa,
			})
			defer o.built.Store(true)
			return b.Build(phrases)
		})
		if len(phrases) > 0 {
			o.minLen = len(slices.MinFunc(phrases, func(a, b string) int { return len(a) - len(b) }))
		}
		return o, nil
	}
	do := func(_ string, f func() (any, error)) (any, error) { return f() }
	if m != nil {
		do = m.Do
	}
	o, err := do(key, build)
	if err != nil {
		return nil, err
	}
	return o.(*Operator), nil
}

// Evaluate reports whether value holds a phrase, capturing up to ten
// matches (leftmost-longest, as Coraza does) when the rule captures.
func (o *Operator) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if len(value) < o.minLen || !o.lits.FoundIn(value) {
		return false
	}
	return o.automaton(tx, value)
}

// automaton is Coraza's own evaluation.
func (o *Operator) automaton(tx plugintypes.TransactionState, value string) bool {
	ac := o.ac()
	iter := ac.Iter(value)
	if !tx.Capturing() {
		return iter.Next() != nil
	}
	n := 0
	for m := iter.Next(); m != nil && n < 10; m = iter.Next() {
		tx.CaptureField(n, value[m.Start():m.End()])
		n++
	}
	return n > 0
}

// loadFromFile reads a data file the way Coraza's operators do.
func loadFromFile(name string, dirs []string, root fs.FS) ([]byte, error) {
	if path.IsAbs(name) {
		return fs.ReadFile(root, name)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%s: a relative data file needs the directory of a rules file; rules given inline must name it by absolute path", name)
	}
	var err error
	for _, d := range dirs {
		var content []byte
		if content, err = fs.ReadFile(root, path.Join(d, name)); err == nil {
			return content, nil
		}
		if !os.IsNotExist(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("data file %s not found in %s: %w", name, strings.Join(dirs, ", "), err)
}
