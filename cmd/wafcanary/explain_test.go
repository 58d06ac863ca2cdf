package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

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
	e.Capture = &capture.Record{Method: "POST", URI: "/support/tickets", Proto: "HTTP/1.1",
		Header: http.Header{"Cookie": {"[redacted]"}, "Accept": {"text/html"}}, Body: "message=see+%2Fetc%2Fhosts"}
	out.Reset()
	printExplanation(&out, e, "text")
	if s := out.String(); !strings.Contains(s, "  Accept: text/html\n  Cookie: [redacted]\n  body: message=see+%2Fetc%2Fhosts") {
		t.Errorf("capture part:\n%s", s)
	}
}
