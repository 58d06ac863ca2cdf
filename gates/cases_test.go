package gates

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/ruleset"
)

func TestShippedCases(t *testing.T) {
	ctx := context.Background()
	base := shippedBaseline(t)
	for _, name := range []string{"candidate-exclusion", "candidate-pl2"} {
		cs, err := LoadCases("embedded:"+name+".cases.yaml", configs.Rulesets)
		if err != nil {
			t.Fatal(err)
		}
		cand, err := ruleset.Load("../configs/rulesets/" + name + ".conf")
		if err != nil {
			t.Fatal(err)
		}
		if f, err := Check(ctx, cand, cs); err != nil || len(f) != 0 {
			t.Errorf("%s fails its own cases: %v %v", name, f, err)
		}
		cand.Retire()
	}
	// The check can fail: the baseline blocks the false positive the
	// exclusion's must_pass case describes.
	cs, _ := LoadCases("embedded:candidate-exclusion.cases.yaml", configs.Rulesets)
	f, err := Check(ctx, base, cs)
	if err != nil || len(f) != 1 || f[0].Kind != "must_pass" || !strings.Contains(f[0].String(), "ticket mentioning /etc/hosts") {
		t.Errorf("baseline against the exclusion's cases: %v %v", f, err)
	}
}

func TestProbe(t *testing.T) {
	ctx := context.Background()
	base := shippedBaseline(t)
	good, _ := ruleset.Load("../configs/rulesets/candidate-exclusion.conf")
	defer good.Retire()
	cs, _ := LoadCases("embedded:candidate-exclusion.cases.yaml", configs.Rulesets)
	if got, err := Probe(ctx, base, good, cs.MustBlock); err != nil || got != "" {
		t.Errorf("exclusion candidate failed a probe: %q %v", got, err)
	}
	// A candidate that drops the SQL injection rules is caught by the
	// first SQL injection it is shown.
	noSQLi := loadText(t, before+crs+"SecRuleRemoveByTag attack-sqli\n")
	got, err := Probe(ctx, base, noSQLi, cs.MustBlock)
	if err != nil || !strings.Contains(got, `"SQL injection in the ticket's email"`) || !strings.Contains(got, "let through by the candidate") {
		t.Errorf("probe of a candidate without SQLi rules: %q %v", got, err)
	}
}

func TestLoadCasesRefusesBadFiles(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		// Why: the suggestion names the key a cases file has, not the file's.
		{"must_blok:\n  - {name: x, path: /}\n", "line 1: not a cases file (unknown key; did you mean must_block?)"},
		{"must_block:\n  - {name: x, path: /, header: {A: b}}\n", "line 2: not a cases file (unknown key; did you mean headers?)"},
		{"must_block:\n  - {path: /}\n", "must_block[0].name: required"},
		{"must_pass:\n  - {name: x, path: search}\n", "must_pass[0].path: must start with /"},
		{"{}\n", "no must_pass or must_block cases"},
		{"", "no must_pass or must_block cases"},
		// Why: these made no request only when the gates ran, at start.
		{"must_pass:\n  - {name: x, method: \"GE T\", path: /}\n", `must_pass[0]: case "x": net/http: invalid method "GE T"`},
		{"must_block:\n  - {name: x, path: \"/a\\x7f\"}\n", "must_block[0]: case \"x\": parse"},
		{"must_pass:\n  - {name: x, path: /, headers: [a]}\n", "line 2: not a cases file (a list where a mapping of header names to values belongs)"},
		{"must_pass: []\nmust_pass: []\n", "line 2: not a cases file (a key given twice)"},
		{"must_pass: [\n  {name: x\n", "line 1: not a cases file (YAML syntax error: did not find expected ',' or '}')"},
		// Why: only a chunked body is sent without a Content-Length.
		{"must_pass:\n  - {name: x, method: POST, path: /, body: a, headers: {Transfer-Encoding: gzip}}\n", `must_pass[0]: case "x": header Transfer-Encoding: only chunked is sent, got "gzip"`},
	} {
		path := t.TempDir() + "/c.yaml"
		writeFile(t, path, tt.text)
		if _, err := LoadCases(path, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.text, err, tt.want)
		}
	}
}

// The fault this guards against: a cases path from the admin API can name
// any file on the server, and YAML's errors quoted the line they failed
// on: /etc/shadow's entries came back whole in the API's answer. A file
// that is not a cases file is refused by line, with nothing of it.
func TestCasesErrorsNeverQuoteTheFile(t *testing.T) {
	const secret = "S3CR3T"
	for _, tt := range []struct{ text, want string }{
		{"root:$6$salt$" + secret + ":19000:0:99999:7:::\n", "line 1: not a cases file (unknown key; a cases file (a mapping) has must_pass, must_block)"},
		{"root:x:0:0:" + secret + ":/root:/bin/bash\n", "line 1: not a cases file (a string where a cases file (a mapping) belongs)"},
		{secret + "_TOKEN: abc\n", "line 1: not a cases file (unknown key; a cases file (a mapping) has must_pass, must_block)"},
		{"must_pass:\n  - name: x\n    path: /\n    " + secret + ": 1\n", "line 4: not a cases file (unknown key; a case (a mapping) has name, method, path, headers, body)"},
		{"- " + secret + "\n", "line 1: not a cases file (a list where a cases file (a mapping) belongs)"},
		{"must_pass: *" + secret + "\n", "not a cases file (not YAML text)"},
		{"a: 1\n" + secret + ": &x [\n", "not a cases file (YAML syntax error"},
		{"[" + secret + ", {a: b}: c]\n", "not a cases file"},
		{"\x00\x01" + secret, "not a cases file"},
	} {
		_, err := ParseCases("/etc/shadow", []byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "cases /etc/shadow: ") {
			t.Errorf("%q: error %v, want %q", tt.text, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "root")) {
			t.Errorf("%q: the error quotes the file: %v", tt.text, err)
		}
		if err != nil && !errors.Is(err, ErrNotCases) {
			t.Errorf("%q: %v is not ErrNotCases", tt.text, err)
		}
	}
}

// A case with "Transfer-Encoding: chunked" is judged as a chunked request
// off the wire: CRS 4.25's 920640 blocks its untyped body, and 920340,
// which needs a Content-Length, does not match; the same body with its
// length is blocked by 920340 (in phase 1, before 920640 runs).
func TestChunkedCase(t *testing.T) {
	rs := shippedBaseline(t)
	for _, tt := range []struct {
		headers map[string]string
		want    []int
	}{
		{map[string]string{"Transfer-Encoding": "chunked"}, []int{920640}},
		{nil, []int{920340}},
	} {
		v, err := Judge(context.Background(), rs, Case{Name: "untyped", Method: "POST", Path: "/api/notes", Body: "remember the milk", Headers: tt.headers})
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, id := range v.RuleIDs() {
			if id/1000 == 920 {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("headers %v: rules %v, want %v", tt.headers, got, tt.want)
		}
	}
}
