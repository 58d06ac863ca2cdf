package transform_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	_ "unsafe" // for go:linkname, below

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

	"github.com/wafcanary/wafcanary/suite"
	"github.com/wafcanary/wafcanary/transform"
)

// corazaTransformation is Coraza's own registry lookup
// (internal/transformations.GetTransformation). The differential tests
// need Coraza's functions themselves, with their changed flag and error,
// and Coraza exports no way to read a registered transformation; this
// links to the lookup instead of copying the code. Nothing in this test
// binary calls transform.Register, so the lookup returns the built-ins.
//
//go:linkname corazaTransformation github.com/corazawaf/coraza/v3/internal/transformations.GetTransformation
func corazaTransformation(name string) (plugintypes.Transformation, error)

func coraza(t testing.TB, name string) plugintypes.Transformation {
	t.Helper()
	fn, err := corazaTransformation(name)
	if err != nil {
		t.Fatal(err)
	}
	return fn
}

// edgeCases are inputs the CRS suite may not hold: each transformation's
// markers at the edges, unterminated, doubled and overlapping, invalid
// UTF-8, NULs and Unicode spaces.
var edgeCases = []string{
	"", " ", "\t\n\v\f\r ", "a", "abc", "a b", " a ", "a\x00b", "\x00",
	"\u0085", "\u00a0", "\u2000", "\u3000", "a\u00a0b", "a\u2028b", "é t",
	"\xa0", "\x85", "a\xa0b", "\xff", "\xc3", "a \xc3", "\xe2\x80", "a\xe2\x80 b", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	"/*", "*/", "/*/", "/**/", "a/*b*/c", "a/*b", "a/*b*/c/*d", "/*/*/**/", "*/*", "a*/b", "/", "*",
	"#", "##", "a#b", "--", "-", "---", "-->", "<!--", "<!-", "<!---->", "a--b", "a->b", "<!--a-->", "-- x", "1-2-3",
	"SELECT/*x*/1", "select/*!50000 1*/", "1 OR 1=1 -- x", "%2F*", "&#x2F;*", "a/\x00*b",
}

// inputs is every value the CRS regression suite sends (suite.Values),
// each also passed through the decoding transformations CRS chains before
// the ones replaced here, plus edgeCases and random strings over the
// bytes those transformations look at.
func inputs(t *testing.T) []string {
	t.Helper()
	cases, err := suite.Load(crstests.FS)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, v := range edgeCases {
		seen[v] = true
	}
	decoders := []plugintypes.Transformation{}
	for _, name := range []string{"urlDecodeUni", "htmlEntityDecode", "jsDecode", "cssDecode", "utf8toUnicode", "removeNulls"} {
		decoders = append(decoders, coraza(t, name))
	}
	for _, v := range suite.Values(cases) {
		seen[v] = true
		for _, d := range decoders {
			if out, _, err := d(v); err == nil {
				seen[out] = true
			}
		}
	}
	const alphabet = "/*-#<!> \t\n\v\f\raZ0\x00\x85\xa0\xc2\xe2\x80\xa8\xff"
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rnd.IntN(12) {
			b.WriteByte(alphabet[rnd.IntN(len(alphabet))])
		}
		seen[b.String()] = true
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	return out
}

// TestSameAsCoraza runs each replacement and Coraza's own function over
// the CRS suite's values and edge cases: the output, the changed flag and
// the error must be the same.
func TestSameAsCoraza(t *testing.T) {
	values := inputs(t)
	for name, fn := range transform.Transformations {
		t.Run(name, func(t *testing.T) {
			want := coraza(t, name)
			var changed int
			for _, v := range values {
				got, gotChanged, gotErr := fn(v)
				exp, expChanged, expErr := want(v)
				if got != exp || gotChanged != expChanged || (gotErr == nil) != (expErr == nil) {
					t.Errorf("%s(%q) = %q, %v, %v; Coraza's gives %q, %v, %v", name, v, got, gotChanged, gotErr, exp, expChanged, expErr)
				}
				if expChanged {
					changed++
				}
			}
			t.Logf("%d values, %d changed", len(values), changed)
		})
	}
}

// FuzzSameAsCoraza looks for an input on which a replacement and Coraza's
// function differ: go test -fuzz FuzzSameAsCoraza ./transform
func FuzzSameAsCoraza(f *testing.F) {
	for _, v := range edgeCases {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for name, fn := range transform.Transformations {
			got, gotChanged, gotErr := fn(v)
			exp, expChanged, expErr := coraza(t, name)(v)
			if got != exp || gotChanged != expChanged || (gotErr == nil) != (expErr == nil) {
				t.Errorf("%s(%q) = %q, %v, %v; Coraza's gives %q, %v, %v", name, v, got, gotChanged, gotErr, exp, expChanged, expErr)
			}
		}
	})
}

// The fast path is the point: a value without anything to change comes
// back without an allocation.
func TestUnchangedValuesDoNotAllocate(t *testing.T) {
	const v = "Mozilla/5.0-compatible;q=0.9,text/html*"
	for name, fn := range transform.Transformations {
		if n := testing.AllocsPerRun(100, func() { _, _, _ = fn(v) }); n != 0 {
			t.Errorf("%s: %v allocations on a value it leaves alone", name, n)
		}
	}
}

// BenchmarkTransformations compares each replacement with Coraza's on
// values CRS sees on benign traffic (nothing to change) and on attacks.
func BenchmarkTransformations(b *testing.B) {
	values := map[string]string{
		"benign": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"query":  "category=shoes&size=42&colour=dark-blue&sort=price_asc",
		"attack": "1' UNION/**/SELECT password -- x # /*!50000 */ <!-- -->",
	}
	for name, fn := range transform.Transformations {
		for kind, v := range values {
			b.Run(name+"/"+kind+"/coraza", func(b *testing.B) {
				c := coraza(b, name)
				b.ReportAllocs()
				for b.Loop() {
					_, _, _ = c(v)
				}
			})
			b.Run(name+"/"+kind+"/wafcanary", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_, _, _ = fn(v)
				}
			})
		}
	}
}
