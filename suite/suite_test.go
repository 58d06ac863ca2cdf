package suite_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/suite"
)

// start compiles path under the suite profile and serves it.
func start(t *testing.T, path string) *suite.Instance {
	t.Helper()
	rs, err := ruleset.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	prof, err := suite.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	in, err := suite.Start(prof, router.Standalone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := in.Close(); err != nil {
			t.Error(err)
		}
	})
	return in
}

func loadCases(t *testing.T, path string) []suite.Case {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := suite.Parse(path, b)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestRunnerAssertions runs hand-written cases with known outcomes through
// a real proxy: each assertion kind is seen to pass and to fail.
func TestRunnerAssertions(t *testing.T) {
	in := start(t, "testdata/rules.conf")
	cases := loadCases(t, "testdata/cases.yaml")
	// Case ID -> "" when it must pass, or a fragment of why it must fail.
	want := map[string]string{
		"1001-1":  "",
		"1001-2":  "rule 1001 did not fire",
		"1001-3":  "",
		"1001-4":  "rule 1001 fired, expected not to",
		"1001-5":  "",
		"1001-6":  `a log line matches "\\[id \"1001\"\\]"`,
		"1001-7":  "",
		"1001-8":  "status 200, expected [403 401]",
		"1001-9":  "",
		"1001-10": "expected an error, got status 200",
		"1001-11": "",
		"1001-12": "",
		"1001-13": "",
		"1001-14": "stage 2: rule 1001 did not fire",
		"1001-15": "",
	}
	if len(cases) != len(want) {
		t.Fatalf("parsed %d cases, want %d", len(cases), len(want))
	}
	reps, err := suite.Run(context.Background(), cases, []*suite.Instance{in}, suite.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	passed := 0
	for _, r := range reps[0].Results {
		w, ok := want[r.Case]
		switch {
		case !ok:
			t.Errorf("unexpected case %s", r.Case)
		case w == "" && !r.Pass:
			t.Errorf("%s failed: %s (fired %v)", r.Case, r.Why, r.Fired)
		case w != "" && r.Pass:
			t.Errorf("%s passed, want a failure with %q", r.Case, w)
		case w != "" && !strings.Contains(r.Why, w):
			t.Errorf("%s failed with %q, want %q", r.Case, r.Why, w)
		}
		if r.Pass {
			passed++
		}
	}
	if rep := reps[0]; rep.Passed != passed || rep.Failed != len(cases)-passed || rep.Total != len(cases) {
		t.Errorf("report counts %d/%d/%d, want %d/%d/%d", rep.Passed, rep.Failed, rep.Total, passed, len(cases)-passed, len(cases))
	}
	if reps[0].MedianWAFTime <= 0 {
		t.Error("no WAF time recorded")
	}
}

func TestRequestBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   suite.Input
		want string
	}{{
		name: "form data is typed, escaped, sized and closed",
		in: suite.Input{Method: "POST", URI: "/", Version: "HTTP/1.1", Autocomplete: true,
			Headers: []suite.Header{{"Host", "localhost"}}, Data: "a=b c&d=<e>&"},
		want: "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\nContent-Length: 15\r\n\r\na=b+c&d=%3Ce%3E",
	}, {
		name: "escaped data is left alone",
		in:   suite.Input{Method: "POST", URI: "/", Version: "HTTP/1.1", Autocomplete: true, Data: "a=%41"},
		want: "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\nContent-Length: 5\r\n\r\na=%41",
	}, {
		name: "headers already given win",
		in: suite.Input{Method: "GET", URI: "/x", Version: "HTTP/1.0", Autocomplete: true,
			Headers: []suite.Header{{"connection", "keep-alive"}, {"content-length", "3"}}, Data: "abc"},
		want: "GET /x HTTP/1.0\r\nconnection: keep-alive\r\ncontent-length: 3\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nabc",
	}, {
		name: "multipart gets CRLF line ends",
		in: suite.Input{Method: "POST", URI: "/", Version: "HTTP/1.1",
			Headers: []suite.Header{{"Content-Type", "multipart/form-data; boundary=x"}}, Data: "--x\nA\n--x--\n"},
		want: "POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x\r\n\r\n--x\r\nA\r\n--x--\r\n",
	}, {
		name: "without autocomplete nothing is added",
		in:   suite.Input{Method: "POST", URI: "/", Version: "HTTP/1.1", Data: "a b"},
		want: "POST / HTTP/1.1\r\n\r\na b",
	}, {
		name: "raw bytes are sent as they are",
		in:   suite.Input{Method: "GET", Raw: []byte("GARBAGE\n\n")},
		want: "GARBAGE\n\n",
	}} {
		if got := string(tc.in.Bytes()); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	cs, err := suite.Parse("t.yaml", []byte(`
rule_id: 7
tests:
  - test_id: 1
    stages:
      - input:
          data: '{{ "ab" | repeat 3 }}'
          headers: {B: "2", A: "1"}
        output: {status: 403}
`))
	if err != nil {
		t.Fatal(err)
	}
	in := cs[0].Stages[0].Input
	if cs[0].ID != "7-1" || in.Data != "ababab" || in.Method != "GET" || in.URI != "/" || in.Version != "HTTP/1.1" || !in.Autocomplete {
		t.Errorf("parsed %+v", cs[0])
	}
	if in.Headers[0].Name != "B" || in.Headers[1].Name != "A" {
		t.Errorf("headers out of file order: %v", in.Headers)
	}
	for name, doc := range map[string]string{
		"unknown assertion":    "rule_id: 7\ntests:\n  - test_id: 1\n    stages:\n      - output: {response_contains: x}\n",
		"bad regex":            "rule_id: 7\ntests:\n  - test_id: 1\n    stages:\n      - output: {log: {match_regex: '('}}\n",
		"unknown template":     "rule_id: 7\ntests:\n  - test_id: 1\n    stages:\n      - input: {data: '{{ now }}'}\n",
		"data and raw at once": "rule_id: 7\ntests:\n  - test_id: 1\n    stages:\n      - input: {data: x, encoded_request: eA==}\n",
		"no stages":            "rule_id: 7\ntests:\n  - test_id: 1\n",
	} {
		if _, err := suite.Parse("t.yaml", []byte(doc)); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}
