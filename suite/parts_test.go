package suite

import (
	"slices"
	"testing"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
)

// Parts finds a test's values where go-ftw sends them, decoded as the WAF
// decodes them: tune re-sends each in another variable and must send what
// the rule saw, not go-ftw's encoding of it.
func TestParts(t *testing.T) {
	ua := Header{"User-Agent", "OWASP CRS test agent"}
	for _, c := range []struct {
		name string
		in   Input
		want []Part
	}{
		{"query, argument names, headers, cookies",
			Input{Method: "GET", URI: "/get/x%2Fy?a=1&q=%3Cscript%3E&x=a+b&<script>&bad=%zz", Autocomplete: true,
				Headers: []Header{ua, {"Cookie", "s=1; t=%27or"}}},
			[]Part{{InPath, "", "/get/x/y"}, {InQuery, "a", "1"}, {InArgName, "a", "a"}, {InQuery, "q", "<script>"}, {InArgName, "q", "q"},
				{InQuery, "x", "a b"}, {InArgName, "x", "x"}, {InArgName, "<script>", "<script>"}, {InQuery, "bad", "%zz"}, {InArgName, "bad", "bad"},
				{InHeader, "User-Agent", "OWASP CRS test agent"},
				{InCookie, "s", "1"}, {InCookie, "t", "%27or"}}},
		{"a form go-ftw escapes",
			Input{Method: "POST", URI: "/", Data: "x=<script>alert(1)</script>&y=a b", Autocomplete: true},
			[]Part{{InForm, "x", "<script>alert(1)</script>"}, {InArgName, "x", "x"}, {InForm, "y", "a b"}, {InArgName, "y", "y"}}},
		{"a form already escaped",
			Input{Method: "POST", URI: "/", Data: "x=%3Cb%3E", Autocomplete: true, Headers: []Header{{"Content-Type", "application/x-www-form-urlencoded"}}},
			[]Part{{InHeader, "Content-Type", "application/x-www-form-urlencoded"}, {InForm, "x", "<b>"}, {InArgName, "x", "x"}}},
		{"JSON",
			Input{Method: "POST", URI: "/", Data: `{"a":{"b":"<x>"},"n":1,"l":["y"]}`, Headers: []Header{{"Content-Type", "application/json"}}},
			[]Part{{InHeader, "Content-Type", "application/json"}, {InJSON, "json.a.b", "<x>"}, {InJSON, "json.l.0", "y"}}},
		{"multipart",
			Input{Method: "POST", URI: "/", Data: "--B\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\n\n<?php ?>\n--B--\n",
				Headers: []Header{{"Content-Type", "multipart/form-data; boundary=B"}}},
			[]Part{{InHeader, "Content-Type", "multipart/form-data; boundary=B"}, {InFilename, "f", "a.php"}, {InMultipart, "f", "<?php ?>"}}},
		{"XML", Input{Method: "POST", URI: "/", Data: "<a>&lt;</a>", Headers: []Header{{"Content-Type", "text/xml"}}},
			[]Part{{InHeader, "Content-Type", "text/xml"}, {InBody, "", "<a>&lt;</a>"}}},
		{"raw", Input{Raw: []byte("GET /?x=<script> HTTP/1.1\r\n\r\n")}, nil},
	} {
		if got := c.in.Parts(); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestLoadRule(t *testing.T) {
	cs, err := LoadRule(crstests.FS, 941120)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) < 20 || !slices.IsSortedFunc(cs, func(a, b Case) int { return a.TestID - b.TestID }) {
		t.Fatalf("%d cases of 941120, in order: %v", len(cs), cs[0].ID)
	}
	for _, c := range cs {
		if c.RuleID != 941120 {
			t.Errorf("%s: rule %d", c.ID, c.RuleID)
		}
	}
	if cs, err := LoadRule(crstests.FS, 999999); err != nil || len(cs) != 0 {
		t.Errorf("a rule without tests: %d cases, %v", len(cs), err)
	}
}
