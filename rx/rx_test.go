package rx

import (
	"regexp"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// fakeTx records captures; only the methods the operator calls are real.
type fakeTx struct {
	plugintypes.TransactionState
	capturing bool
	captured  map[int]string
}

func (f *fakeTx) Capturing() bool { return f.capturing }
func (f *fakeTx) CaptureField(i int, v string) {
	if f.captured == nil {
		f.captured = map[int]string{}
	}
	f.captured[i] = v
}

var long = strings.Repeat("a quiet benign sentence about headphones; ", 8)

// Every row is checked against Go's regexp with Coraza's (?sm) wrapper,
// the engine the stock operator uses: match and captures must agree.
var cases = []struct {
	name, pattern, value string
}{
	{"short no match", `(?i)union\s+select`, "page=2"},
	{"short match", `(?i)union\s+select`, "1 UNION  SELECT x"},
	{"long no match (RE2)", `(?i)(?:union\s+select|<script[^>]*>)`, long},
	{"long match with groups (RE2)", `(<script)([^>]*)(>)`, long + "<script src=x>" + long},
	{"optional group absent", `(foo)?(bar)`, long + "bar"},
	{"more than nine groups", `(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)`, long + "abcdefghijk"},
	{"multiline ^ and $", `^admin$`, long + "\nadmin\n" + long},
	{"dot matches newline", `start.+end`, "start\n" + long + "\nend"},
	// Invalid UTF-8: Go reads \xff as U+FFFD and goes on; RE2 would stop.
	{"invalid UTF-8 before a match", `etc/passwd`, long + "\xff\xfe/etc/passwd"},
	{"invalid UTF-8 reads as U+FFFD", "\uFFFDx", long + "\xffx"},
	{"case folding", `(?i)select`, long + "SeLeCt"},
	{"leftmost-first alternation", `(a|ab)(c|bcd)(d*)`, long + "abcd"},
}

func TestSameAsGoRegexp(t *testing.T) {
	for _, tt := range cases {
		for _, capturing := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				op, err := New(plugintypes.OperatorOptions{Arguments: tt.pattern})
				if err != nil {
					t.Fatal(err)
				}
				std := regexp.MustCompile("(?sm)" + tt.pattern)
				tx := &fakeTx{capturing: capturing}
				got := op.Evaluate(tx, tt.value)
				if want := std.MatchString(tt.value); got != want {
					t.Fatalf("match = %v, Go regexp says %v", got, want)
				}
				if !capturing || !got {
					return
				}
				m := std.FindStringSubmatch(tt.value)
				for i := 0; i < len(m) && i < 9; i++ {
					if tx.captured[i] != m[i] {
						t.Errorf("group %d = %q, want %q", i, tx.captured[i], m[i])
					}
				}
				if _, ok := tx.captured[9]; ok {
					t.Errorf("captured group 9; Coraza keeps 0-8")
				}
			})
		}
	}
}

func TestEngines(t *testing.T) {
	tests := []struct {
		name, pattern string
		wantRE2       bool
		wantBinary    bool
	}{
		{"ordinary pattern uses RE2", `(?i)union\s+select`, true, false},
		{"POSIX class and quoting compile in both", `[[:word:]]+\Q.*\E`, true, false},
		// Coraza reads \x{FFFD} as the byte 0xff, so it is a byte pattern.
		{"braced escape read as a byte", `\x{FFFD}`, false, true},
		{"byte pattern matches bytes", `[\x80-\xff]{2}`, false, true},
		{"braced byte escape", `\x{ff}`, false, true},
		{"UTF-8 escape is text", `\xc3\xa9`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := New(plugintypes.OperatorOptions{Arguments: tt.pattern})
			if err != nil {
				t.Fatal(err)
			}
			switch o := op.(type) {
			case binaryOperator:
				if !tt.wantBinary {
					t.Errorf("binary operator for %q", tt.pattern)
				}
			case *Operator:
				if tt.wantBinary || (o.re2 != nil) != tt.wantRE2 {
					t.Errorf("got %s, want RE2 %v, binary %v", o, tt.wantRE2, tt.wantBinary)
				}
			}
		})
	}
}

func TestBinaryPatternMatchesRawBytes(t *testing.T) {
	op, err := New(plugintypes.OperatorOptions{Arguments: `[\x80-\xff]{2}`})
	if err != nil {
		t.Fatal(err)
	}
	tx := &fakeTx{capturing: true}
	if !op.Evaluate(tx, "ab\xc3\xa9cd") || tx.captured[0] != "\xc3\xa9" {
		t.Errorf("raw bytes: matched %v", tx.captured)
	}
	if op.Evaluate(&fakeTx{}, "plain ascii") {
		t.Error("matched ASCII")
	}
}

func TestInvalidPatternRefused(t *testing.T) {
	if _, err := New(plugintypes.OperatorOptions{Arguments: `(unclosed`}); err == nil {
		t.Error("want a compile error, as Coraza gives")
	}
}

// BenchmarkEvaluate compares the operator with Go's regexp, the engine of
// Coraza's own @rx, on a CRS-like SQL injection pattern and a benign
// value, capturing as CRS rules do.
func BenchmarkEvaluate(b *testing.B) {
	pattern := `(?i)(?:\b(?:s(?:elect\b.{1,100}?\b(?:(?:length|count|top)\b.{1,100}?\bfrom|from\b.{1,100}?\bwhere)|ys(?:\.database_name|aux)\b)|(?:union\b.{1,100}?\bselect|into\s+(?:out|dump)file)\b)|[\s'"(]sleep\s*\()`
	value := strings.Repeat("Great product, arrived quickly and works well. ", 8)
	std := regexp.MustCompile("(?sm)" + pattern)
	op, err := New(plugintypes.OperatorOptions{Arguments: pattern})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("go-regexp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if std.FindStringSubmatchIndex(value) != nil {
				b.Fatal("matched")
			}
		}
	})
	b.Run("rx", func(b *testing.B) {
		b.ReportAllocs()
		tx := &fakeTx{capturing: true}
		for b.Loop() {
			if op.Evaluate(tx, value) {
				b.Fatal("matched")
			}
		}
	})
}
