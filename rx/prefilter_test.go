package rx_test

import (
	"io/fs"
	"regexp"
	"slices"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/rx"
	"github.com/wafcanary/wafcanary/suite"
)

func TestPrefilterConditions(t *testing.T) {
	tests := []struct {
		pattern string
		minLen  int
		lits    []string // sorted; nil: no literal condition
	}{
		{`(?i)union\s+select`, 12, []string{"select"}},
		{`(?i)\b(?:s(?:elect|leep)|benchmark)\s*\(`, 6, []string{"benchmark", "select", "sleep"}},
		{`[Ss][Cc]ript`, 6, []string{"script"}},
		{`(?:<script|javascript:)`, 7, []string{"<script", "javascript:"}},
		{`/etc/(?:passwd|shadow)`, 11, []string{"/etc/passwd", "/etc/shadow"}},
		{`a.*b`, 2, []string{"a"}},
		{`(?:foo|x*)bar`, 3, []string{"bar"}},
		{`(?:foo)?`, 0, nil},
		{`x{3,}y`, 4, []string{"x"}},
		{`\x{212A}elvin`, 6, []string{"\u212Aelvin"}},
		{`(?i)\x{212A}elvin`, 6, []string{"kelvin"}}, // the parser folds K to k
		{`<title>r57 shell</title>`, 24, []string{"<title>r57 shell</title>"}},
	}
	for _, tt := range tests {
		_, minLen, lits := rx.Prefilter(tt.pattern)
		slices.Sort(lits)
		if minLen != tt.minLen || !slices.Equal(lits, tt.lits) {
			t.Errorf("%s: min length %d, literals %q; want %d, %q", tt.pattern, minLen, lits, tt.minLen, tt.lits)
		}
	}
}

// Values where a careless prefilter would say "cannot match" and the
// regexp does match: case folding outside ASCII, invalid UTF-8, empty
// matches, multi-line anchors.
func TestPrefilterTraps(t *testing.T) {
	tests := []struct{ pattern, value string }{
		{`(?i)kelvin`, "\u212Aelvin"},          // K folds to KELVIN SIGN
		{`(?i)select`, "\u017Felect"},          // s folds to LATIN SMALL LETTER LONG S
		{`(?i)SELECT`, "sElEcT"},               // case
		{"a\uFFFDb", "a\xffb"},                 // Go reads an invalid byte as U+FFFD
		{`a.b`, "a\xffb"},                      // one invalid byte is one character
		{`^$`, ""},                             // empty match
		{`^admin$`, "x\nadmin\ny"},             // (?m) from the wrapper
		{`(?:|foo)bar`, "bar"},                 // empty branch
		{`[a-z]{2}\d`, "ab1"},                  // big classes claim nothing
		{`\bselect\b`, "(select)"},             // assertions are empty
		{`(?i)[\x{212A}]elvin`, "\u212Aelvin"}, // class outside ASCII
		{`(?i)select`, "\u00e9SELECT"},         // not ASCII, folded set
		{`caf\x{e9}`, "un caf\u00e9"},          // case-sensitive, not ASCII
	}
	for _, tt := range tests {
		std := regexp.MustCompile("(?sm)" + tt.pattern)
		if !std.MatchString(tt.value) {
			t.Fatalf("bad test: %q does not match %q", tt.pattern, tt.value)
		}
		if may, _, _ := rx.Prefilter(tt.pattern); may != nil && !may(tt.value) {
			t.Errorf("%q: prefilter rejects %q, which matches", tt.pattern, tt.value)
		}
	}
}

// crsPatterns is every @rx argument of the shipped baseline: CRS 4.25 as
// wafcanary loads it, recorded as Coraza compiles it.
func crsPatterns(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	plugins.RegisterOperator("rx", func(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
		seen[o.Arguments] = true
		return rx.New(o)
	})
	base, err := fs.ReadFile(configs.Rulesets, "baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(string(base))); err != nil {
		t.Fatal(err)
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	if len(out) < 200 {
		t.Fatalf("recorded %d @rx patterns from CRS, expected hundreds", len(out))
	}
	return out
}

func crsValues(t *testing.T) []string {
	t.Helper()
	cases, err := suite.Load(crstests.FS)
	if err != nil {
		t.Fatal(err)
	}
	return suite.Values(cases)
}

// TestPrefilterNeverRejectsAMatchOnCRS checks every CRS pattern against
// every value the CRS suite sends: whenever the prefilter says "cannot
// match", Go's regexp (the engine of Coraza's own @rx) must agree. It also
// reports how much regexp work the prefilter saves on these values, which
// are mostly attacks; on benign traffic the share is higher.
func TestPrefilterNeverRejectsAMatchOnCRS(t *testing.T) {
	patterns, values := crsPatterns(t), crsValues(t)
	// Every third value keeps the test near 8 s; -short (the race pass)
	// takes every 24th.
	stride := 3
	if testing.Short() {
		stride = 24
	}
	var sample []string
	for i := 0; i < len(values); i += stride {
		sample = append(sample, values[i])
	}
	values = sample
	var pairs, rejected, withFilter int
	for _, p := range patterns {
		may, _, _ := rx.Prefilter(p)
		if may == nil {
			continue
		}
		withFilter++
		std := regexp.MustCompile("(?sm)" + p)
		for _, v := range values {
			pairs++
			if may(v) {
				continue
			}
			rejected++
			if std.MatchString(v) {
				t.Errorf("prefilter of %q rejects %q, which matches", p, v)
			}
		}
	}
	t.Logf("%d of %d CRS patterns have a prefilter; it rejected %d of %d (pattern, value) pairs (%.0f%%) over %d values",
		withFilter, len(patterns), rejected, pairs, 100*float64(rejected)/float64(max(pairs, 1)), len(values))
	if withFilter < len(patterns)/2 || rejected < pairs/2 {
		t.Errorf("the prefilter covers too little to be worth its place")
	}
}

// A case-sensitive pattern's set is compared byte for byte: other cases
// are rejected, on any value.
func TestPrefilterCaseSensitive(t *testing.T) {
	may, _, _ := rx.Prefilter(`<title>Mini Shell</title>`)
	for v, want := range map[string]bool{
		"<html><title>Mini Shell</title>":           true,
		"<html><title>mini shell</title>":           false,
		"<html>\u00e9<title>MINI SHELL</title>":     false,
		"<p>caf\u00e9</p><title>Mini Shell</title>": true,
	} {
		if got := may(v); got != want {
			t.Errorf("mayMatch(%q) = %v, want %v", v, got, want)
		}
	}
}
