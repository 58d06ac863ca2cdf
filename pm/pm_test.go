package pm_test

import (
	"io/fs"
	"maps"
	"strings"
	"testing"
	"testing/fstest"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/pm"
	"github.com/wafcanary/wafcanary/suite"
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

func TestPhrases(t *testing.T) {
	op, err := pm.New(plugintypes.OperatorOptions{Arguments: "<script> javascript: onerror="})
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{
		"a=<SCRIPT>alert(1)":   true,
		"x JavaScript:void(0)": true,
		"img onError=":         true,
		"benign value":         false,
		"onerror":              false,
		"":                     false,
	} {
		tx := &fakeTx{capturing: true}
		if got := op.Evaluate(tx, v); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		} else if got && tx.captured[0] == "" {
			t.Errorf("%q: nothing captured", v)
		}
	}
}

func TestFromFile(t *testing.T) {
	root := fstest.MapFS{"rules/words.data": {Data: []byte("# scanners\n\nNikto\n  sqlmap  \n")}}
	op, err := pm.NewFromFile(plugintypes.OperatorOptions{Arguments: "words.data", Path: []string{"other", "rules"}, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"Mozilla/5.0 NIKTO/2.5": true, "sqlmap/1.7": true, "# scanners": false, "curl/8": false} {
		if got := op.Evaluate(&fakeTx{}, v); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
	_, err = pm.NewFromFile(plugintypes.OperatorOptions{Arguments: "missing.data", Path: []string{"rules"}, Root: root})
	if err == nil || !strings.Contains(err.Error(), "missing.data not found in rules") {
		t.Errorf("missing file: %v", err)
	}
	_, err = pm.NewFromFile(plugintypes.OperatorOptions{Arguments: "words.data", Root: root})
	if err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Errorf("no rules directory: %v", err)
	}
}

// crsOperators compiles the shipped baseline (CRS 4.25) with the
// operators of this package and returns every one it built, by argument.
func crsOperators(t *testing.T) map[string]plugintypes.Operator {
	t.Helper()
	ops := map[string]plugintypes.Operator{}
	wrap := func(name string, f func(plugintypes.OperatorOptions) (plugintypes.Operator, error)) {
		plugins.RegisterOperator(name, func(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
			op, err := f(o)
			if err == nil {
				ops[name+" "+o.Arguments] = op
			}
			return op, err
		})
	}
	wrap("pm", pm.New)
	wrap("pmFromFile", pm.NewFromFile)
	wrap("pmf", pm.NewFromFile)
	base, err := fs.ReadFile(configs.Rulesets, "baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(string(base))); err != nil {
		t.Fatal(err)
	}
	if len(ops) < 20 {
		t.Fatalf("CRS built %d @pm operators, expected dozens", len(ops))
	}
	return ops
}

// TestSameAsAutomatonOnCRS evaluates every @pm and @pmFromFile operator
// of CRS on every value the CRS suite sends, capturing and not: the
// answer and the captures must be those of the automaton alone, which is
// built as Coraza builds it.
func TestSameAsAutomatonOnCRS(t *testing.T) {
	ops := crsOperators(t)
	cases, err := suite.Load(crstests.FS)
	if err != nil {
		t.Fatal(err)
	}
	values := suite.Values(cases)
	if testing.Short() {
		var sample []string
		for i := 0; i < len(values); i += 8 {
			sample = append(sample, values[i])
		}
		values = sample
	}
	var evaluated, matched int
	for name, op := range ops {
		ref := pm.Automaton(op)
		for _, v := range values {
			for _, capturing := range []bool{false, true} {
				got, want := &fakeTx{capturing: capturing}, &fakeTx{capturing: capturing}
				g, w := op.Evaluate(got, v), ref(want, v)
				if g != w || !maps.Equal(got.captured, want.captured) {
					t.Fatalf("%s on %q (capturing %v): %v %v, automaton %v %v", name, v, capturing, g, got.captured, w, want.captured)
				}
				if !capturing {
					evaluated++
					if w {
						matched++
					}
				}
			}
		}
	}
	t.Logf("%d CRS @pm operators, %d values: %d evaluations agree, %d of them matches", len(ops), len(values), evaluated, matched)
}

// TestDataFileEditedBetweenWAFs compiles two WAFs, both alive as the
// baseline and a reloaded candidate are, from rules files at the same
// paths whose data files differ: each must match its own phrases.
// Matchers are cached process-wide, so a cache keyed by the file's name
// rather than its phrases would hand the second WAF the first one's list.
func TestDataFileEditedBetweenWAFs(t *testing.T) {
	pm.Register()
	waf := func(phrases string) coraza.WAF {
		t.Helper()
		root := fstest.MapFS{
			"rules/main.conf":  {Data: []byte("SecRuleEngine On\nSecRule ARGS \"@pmFromFile words.data\" \"id:1,phase:1,deny,status:403\"\n")},
			"rules/words.data": {Data: []byte(phrases)},
		}
		w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(root).WithDirectives("Include rules/main.conf"))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	blocks := func(w coraza.WAF, arg string) bool {
		tx := w.NewTransaction()
		defer tx.Close()
		tx.ProcessURI("/?q="+arg, "GET", "HTTP/1.1")
		tx.AddRequestHeader("Host", "example.com")
		return tx.ProcessRequestHeaders() != nil
	}
	before, after := waf("nikto\n"), waf("sqlmap\n")
	for _, c := range []struct {
		name string
		w    coraza.WAF
		arg  string
		want bool
	}{
		{"before the edit", before, "nikto", true},
		{"before the edit", before, "sqlmap", false},
		{"after the edit", after, "sqlmap", true},
		{"after the edit", after, "nikto", false},
	} {
		if got := blocks(c.w, c.arg); got != c.want {
			t.Errorf("%s, %q: blocked %v, want %v", c.name, c.arg, got, c.want)
		}
	}
}

// The automaton is built when a value first passes the literal search,
// not at compile: an idle process holds none of CRS's automata. Built
// late, it answers as it would have early, for every goroutine at once.
func TestAutomatonBuiltOnFirstNeed(t *testing.T) {
	op, err := pm.New(plugintypes.OperatorOptions{Arguments: "lazy-phrase-one lazy-phrase-two"})
	if err != nil {
		t.Fatal(err)
	}
	if pm.Built(op) {
		t.Fatal("automaton built at compile")
	}
	if op.Evaluate(&fakeTx{}, "a benign value without the phrases") || pm.Built(op) {
		t.Fatal("a value the literal search rejects built the automaton")
	}
	results := make(chan bool, 8)
	for range 8 {
		go func() {
			tx := &fakeTx{capturing: true}
			results <- op.Evaluate(tx, "x=LAZY-PHRASE-TWO") && tx.captured[0] == "LAZY-PHRASE-TWO"
		}()
	}
	for range 8 {
		if !<-results {
			t.Error("a concurrent first evaluation did not match and capture")
		}
	}
	if !pm.Built(op) {
		t.Error("automaton not built after a match")
	}
}
