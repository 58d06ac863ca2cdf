package verdict

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/wafcanary/wafcanary/ruleset"
)

// The fault this guards against: a rule message with %{MATCHED_VAR} put
// the matched cookie or token into the verdict, and so into logs.
func TestMatchedValuesNeverInMessages(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "leaky.conf"), []byte("SecRuleEngine On\n"+
		`SecRule REQUEST_COOKIES|REQUEST_HEADERS:Authorization "@rx s3cr3t" "id:7001,phase:1,deny,log,msg:'suspicious value %{MATCHED_VAR} in %{MATCHED_VAR_NAME}'"`+"\n"), 0o600)
	rs, err := ruleset.Load(filepath.Join(dir, "leaky.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []map[string]string{{"Cookie": "session=tok-s3cr3t-42"}, {"Authorization": "Bearer abc-s3cr3t-xyz"}} {
		req := httptest.NewRequest("GET", "/", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		v, err := JudgeHTTP(context.Background(), rs, "leak", req)
		if err != nil || !v.Blocked || len(v.Rules) == 0 {
			t.Fatalf("%v: %+v, %v", h, v, err)
		}
		for _, r := range v.Rules {
			if strings.Contains(r.Message, "s3cr3t") || !strings.Contains(r.Message, "[redacted]") {
				t.Errorf("message %q carries the matched value", r.Message)
			}
		}
	}
}

// The template's own words stay, even when they equal the matched value;
// a macro that is not request data (a score, a variable's name) stays.
func TestRedactMessageKeepsTheTemplate(t *testing.T) {
	for _, tc := range []struct {
		raw, msg string
		values   []string
		want     string
	}{
		{`SecRule ARGS:q "@contains attack" "id:1,deny,msg:'attack in q'"`, "attack in q", []string{"attack"}, "attack in q"},
		{`SecRule ARGS "@rx x" "id:2,deny,msg:'got %{MATCHED_VAR} in %{MATCHED_VAR_NAME}'"`, "got tok-x in ARGS:a", []string{"tok-x"}, "got [redacted] in ARGS:a"},
		{`SecRule TX:S "@ge 5" "id:3,deny,msg:'Inbound Anomaly Score Exceeded (Total Score: %{TX.BLOCKING_INBOUND_ANOMALY_SCORE})'"`, "Inbound Anomaly Score Exceeded (Total Score: 15)", []string{"15"}, "Inbound Anomaly Score Exceeded (Total Score: 15)"},
		{`SecRule ARGS "@rx (s\w+)" "id:4,capture,deny,msg:'capture %{tx.1} and %{REQUEST_HEADERS.Cookie}'"`, "capture sec and a=b", []string{"sec"}, "capture [redacted] and [redacted]"},
		{`SecRule ARGS "@rx x" "id:5,deny,msg:'it\'s %{MATCHED_VAR}',logdata:'msg: %{MATCHED_VAR}'"`, "it's xyz", []string{"xyz"}, "it's [redacted]"},
		// rule.logdata is expanded from macros itself; a TX variable can be set from ARGS.
		{`SecRule ARGS "@rx x" "id:8,deny,logdata:'%{MATCHED_VAR}',msg:'Blocked: %{rule.logdata} by %{rule.id}'"`, "Blocked: s3cret by 8", []string{"s3cret"}, "Blocked: [redacted] by 8"},
		{`SecRule ARGS "@rx x" "id:9,deny,setvar:tx.user=%{ARGS.user},msg:'user %{tx.user} score %{tx.anomaly_score}'"`, "user alice score 5", nil, "user [redacted] score 5"},
		// A msg: in the operator is not the action.
		{`SecRule ARGS "@contains msg:" "id:10,phase:2,deny,msg:'Got %{MATCHED_VAR}'"`, "Got s3cret-value", []string{"s3cret-value"}, "Got [redacted]"},
		// A template that is not this message: the matched values go.
		{`SecRule ARGS "@rx x" "id:11,deny,msg:'constant'"`, "constant plus s3cret-x", []string{"s3cret-x"}, "constant plus [redacted]"},
		// No msg in the raw text (a default action): the matched values go.
		{`SecRule ARGS "@rx x" "id:6,deny"`, "default says xyz", []string{"xyz"}, "default says [redacted]"},
		// The expansion does not fit the template: every macro goes.
		{`SecRule ARGS "@rx x" "id:7,deny,msg:'score %{TX.score}!'"`, "something else", nil, "score [redacted]!"},
	} {
		if got := redactMessage(tc.raw, tc.msg, tc.values); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.raw, got, tc.want)
		}
	}
}

// Against the real CRS, the blocking evaluation keeps its score and an
// injection's message its words; the attack string appears nowhere.
func TestCRSMessagesAfterRedaction(t *testing.T) {
	rs, err := ruleset.Load("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/search?q="+url.QueryEscape("1' UNION SELECT password FROM users--"), nil)
	v, err := JudgeHTTP(context.Background(), rs, "crs", req)
	if err != nil || !v.Blocked {
		t.Fatalf("%+v, %v", v, err)
	}
	var score bool
	for _, r := range v.Rules {
		if strings.Contains(r.Message, "UNION SELECT") {
			t.Errorf("rule %d: message %q carries the attack", r.ID, r.Message)
		}
		if r.ID == 949110 {
			score = strings.Contains(r.Message, fmt.Sprintf("(Total Score: %d)", v.InboundScore))
			if !score {
				t.Errorf("949110 message %q lost its score %d", r.Message, v.InboundScore)
			}
		}
	}
	if !score {
		t.Errorf("949110 did not log: %+v", v.Rules)
	}
}

// A rule match keeps a bounded list of printable variable names: a
// binary body once gave one rule hundreds of names, each a fragment of
// the body, in every log line, capture and explain.
func TestRuleMatchTargetsBounded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.conf"), []byte("SecRuleEngine On\nSecRequestBodyAccess On\n"+
		`SecRule ARGS_NAMES "@rx ." "id:1,phase:2,pass,log,t:none,msg:'every name'"`+"\n"), 0o600)
	rs, err := ruleset.Load(filepath.Join(dir, "r.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	form := url.Values{}
	for i := range 20 {
		form.Set(fmt.Sprint("field", i), "x")
	}
	form.Set("esc\x1b[2Jhidden", "x")              // a control character
	form.Set("bin\xff\xfe", "x")                   // not UTF-8
	form.Set("long"+strings.Repeat("n", 300), "x") // past MaxTargetBytes
	r, _ := http.NewRequest("POST", "http://shop.example/f", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	v, err := JudgeHTTP(context.Background(), rs, "bounded", r)
	if err != nil || len(v.Rules) != 1 {
		t.Fatalf("verdict %+v, %v", v, err)
	}
	m := v.Rules[0]
	if len(m.Targets) != MaxTargets || len(m.Targets)+m.Omitted != 23 {
		t.Errorf("%d targets kept, %d omitted; want %d kept of 23", len(m.Targets), m.Omitted, MaxTargets)
	}
	for _, tg := range m.Targets {
		if !strings.HasPrefix(tg, "ARGS_NAMES:field") {
			t.Errorf("target %q kept", tg)
		}
	}
}

// Replay stands in for io.MultiReader(buffered, rest) on the request
// path: the far side must get the same bytes and the same errors.
func TestReplayReadsAsMultiReader(t *testing.T) {
	broken := errors.New("client went away")
	tests := []struct {
		name           string
		buffered, rest func() io.Reader
	}{
		{"both", func() io.Reader { return strings.NewReader("name=Dana&") }, func() io.Reader { return strings.NewReader("comment=hi") }},
		{"nothing buffered", func() io.Reader { return strings.NewReader("") }, func() io.Reader { return strings.NewReader("rest") }},
		{"all buffered", func() io.Reader { return strings.NewReader("all") }, func() io.Reader { return strings.NewReader("") }},
		// A reader may return its last bytes with io.EOF.
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(strings.NewReader("abc")) }, func() io.Reader { return iotest.DataErrReader(strings.NewReader("def")) }},
		{"a byte at a time", func() io.Reader { return iotest.OneByteReader(strings.NewReader("abc")) }, func() io.Reader { return iotest.HalfReader(strings.NewReader("defgh")) }},
		{"rest breaks off", func() io.Reader { return strings.NewReader("abc") }, func() io.Reader { return io.MultiReader(strings.NewReader("de"), iotest.ErrReader(broken)) }},
		{"buffer fails", func() io.Reader { return iotest.ErrReader(broken) }, func() io.Reader { return strings.NewReader("never") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr := io.ReadAll(io.MultiReader(tt.buffered(), tt.rest()))
			got, err := io.ReadAll(&Replay{Buffered: tt.buffered(), Rest: tt.rest()})
			if string(got) != string(want) || err != wantErr {
				t.Errorf("read %q, %v; io.MultiReader reads %q, %v", got, err, want, wantErr)
			}
		})
	}
	if got, _ := io.ReadAll(&Replay{Rest: strings.NewReader("rest only")}); string(got) != "rest only" {
		t.Errorf("nil Buffered: read %q", got)
	}
}

// serverAddr reads a TCP address without formatting it; it must read
// every one as formatting and parsing it back did.
func TestServerAddr(t *testing.T) {
	parsed := func(la net.Addr) (string, int) {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			return ap.Addr().Unmap().String(), int(ap.Port())
		}
		return "", 0
	}
	for _, la := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8080}, // 16-byte form
		&net.TCPAddr{IP: net.IP{10, 0, 0, 1}, Port: 80},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 443, Zone: "eth0"},
		&net.TCPAddr{IP: net.IP{10, 0, 0, 1}, Port: 80, Zone: "eth0"},
		&net.TCPAddr{IP: nil, Port: 80},
		&net.TCPAddr{IP: net.IP{1, 2, 3}, Port: 80},
		&net.TCPAddr{IP: net.IP{10, 0, 0, 1}, Port: 70000},
		&net.TCPAddr{IP: net.IP{10, 0, 0, 1}, Port: -1},
		&net.UnixAddr{Name: "/run/wafcanary.sock", Net: "unix"},
		&net.UDPAddr{IP: net.IP{10, 0, 0, 2}, Port: 53},
	} {
		ip, port := serverAddr(la)
		wantIP, wantPort := parsed(la)
		if ip != wantIP || port != wantPort {
			t.Errorf("%T %v: %q, %d; formatted and parsed %q, %d", la, la, ip, port, wantIP, wantPort)
		}
	}
}
