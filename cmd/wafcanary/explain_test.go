package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
)

func TestPrintExplanation(t *testing.T) {
	e := admin.Explanation{ID: "r1", Time: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC), Arm: "baseline", Version: "7ac7",
		Method: "POST", Host: "shop.example", Path: "/support/tickets", ClientIP: "203.0.113.7", Status: 403, InterruptedBy: 949110, Score: 5,
		Rules: []admin.ExplainedRule{{ID: 930120, Message: "OS File Access Attempt", Targets: []string{"ARGS:message"},
			Tags: []string{"attack-lfi"}, Paranoia: 1, File: "@owasp_crs/REQUEST-930-APPLICATION-ATTACK-LFI.conf", Line: 97}}}
	var out bytes.Buffer
	if err := printExplanation(&out, e, "text"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"request r1: blocked (403) by rule 949110, inbound anomaly score 5", "POST shop.example/support/tickets from 203.0.113.7",
		"930120  OS File Access Attempt", "matched: ARGS:message", "REQUEST-930-APPLICATION-ATTACK-LFI.conf:97, paranoia level 1", "capture: none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
	// Variables the verdict did not keep (a binary body's names) are
	// counted, not shown.
	e.Rules = append(e.Rules, admin.ExplainedRule{ID: 9104, Message: "Body argument not valid UTF-8", Omitted: 212})
	out.Reset()
	printExplanation(&out, e, "text")
	if s := out.String(); !strings.Contains(s, "9104  Body argument not valid UTF-8\n        matched: 212 more not shown (too many, too long, or not printable)\n") {
		t.Errorf("omitted variables:\n%s", s)
	}
	e.Capture = &capture.Record{Method: "POST", URI: "/support/tickets", Proto: "HTTP/1.1",
		Header: http.Header{"Cookie": {"[redacted]"}, "Accept": {"text/html"}}, Body: "message=see+%2Fetc%2Fhosts"}
	out.Reset()
	printExplanation(&out, e, "text")
	if s := out.String(); !strings.Contains(s, "  Accept: text/html\n  Cookie: [redacted]\n  body: message=see+%2Fetc%2Fhosts") {
		t.Errorf("capture part:\n%s", s)
	}
}

// unsafeChars lists what in s a terminal, an editor or `git diff` would act
// on rather than show (issue 26, finding 11): bytes that are not UTF-8, C0
// controls but newline and tab, DEL, C1 controls, bidirectional overrides,
// isolates and marks, line and paragraph separators.
func unsafeChars(s string) []string {
	var out []string
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"),
			r < 0x20 && r != '\n' && r != '\t', r == 0x7f, r >= 0x80 && r <= 0x9f,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069,
			r == 0x200e, r == 0x200f, r == 0x061c, r == 0x2028, r == 0x2029:
			out = append(out, fmt.Sprintf("%q at %d", s[i:i+1], i))
		}
	}
	return out
}

// Everything explain prints from a request shows its control and bidi
// characters as escapes, in text and in JSON, and the JSON reads back the
// same (issue 26, finding 11).
func TestPrintExplanationEscapes(t *testing.T) {
	const (
		osc8 = "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
		rlo  = "\u202e"
	)
	e := admin.Explanation{ID: "r1", Time: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC), Arm: "baseline", Version: "7ac7",
		Method: "POST", Host: "shop.example" + rlo, Path: "/api/notes\x1b[2J", ClientIP: "203.0.113.7", Status: 403, InterruptedBy: 949110, Score: 10,
		Rules: []admin.ExplainedRule{{ID: 941100, Message: "XSS Attack Detected via libinjection: Matched Data: " + osc8 + " found within ARGS:json.t" + rlo + "xet",
			Targets: []string{"ARGS:json.t\x1b[8m", "ARGS:a\u2066b\u2069"}, Tags: []string{"attack-xss"}, Paranoia: 1, File: "x.conf", Line: 1}},
		Capture: &capture.Record{Method: "POST", URI: "/api/notes?q=\u009b31m", Proto: "HTTP/1.1",
			Header: http.Header{"X-\u2067Evil": {"a\x7fb\xff"}, "User-Agent": {"curl\r\nX-Forged: 1"}}, Body: "{\"text\":\"x\"}\n\x1b[1A\x1b[2K" + "\u2028tail"}}
	var out bytes.Buffer
	if err := printExplanation(&out, e, "text"); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if bad := unsafeChars(text); len(bad) > 0 {
		t.Errorf("text output carries %v:\n%q", bad, text)
	}
	for _, want := range []string{`POST shop.example\u202e/api/notes\x1b[2J from`, `Matched Data: \x1b]8;;https://evil.example\aclick\x1b]8;;\a found within ARGS:json.t\u202exet`,
		`matched: ARGS:json.t\x1b[8m, ARGS:a\u2066b\u2069`, `capture (redacted): POST /api/notes?q=\u009b31m HTTP/1.1`,
		`  User-Agent: curl\r\nX-Forged: 1` + "\n", `  X-\u2067Evil: a\x7fb\xff` + "\n", `  body: {"text":"x"}\n\x1b[1A\x1b[2K\u2028tail` + "\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %s:\n%s", want, text)
		}
	}

	out.Reset()
	if err := printExplanation(&out, e, "json"); err != nil {
		t.Fatal(err)
	}
	if bad := unsafeChars(out.String()); len(bad) > 0 {
		t.Errorf("JSON output carries %v:\n%s", bad, out.String())
	}
	var back admin.Explanation
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatalf("JSON output does not read back: %v\n%s", err, out.String())
	}
	e.Capture.Header["X-\u2067Evil"] = []string{"a\x7fb\uFFFD"} // encoding/json's reading of a byte that is not UTF-8
	if !reflect.DeepEqual(back.Rules, e.Rules) || back.Host != e.Host || back.Path != e.Path || !reflect.DeepEqual(back.Capture.Header, e.Capture.Header) ||
		back.Capture.Body != e.Capture.Body || back.Capture.URI != e.Capture.URI {
		t.Errorf("JSON read back as\n%+v\nwant\n%+v", back, e)
	}
}
