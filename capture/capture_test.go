package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wafcanary/wafcanary/verdict"
)

func block(id, contentType, uri, body string) verdict.Block {
	h := http.Header{"Cookie": {"session=s3cret-cookie"}, "Authorization": {"Bearer s3cret-bearer"},
		"X-Session-Id": {"s3cret-header"}, "User-Agent": {"Mozilla/5.0"}}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return verdict.Block{
		Request: verdict.Request{ID: id, Method: "POST", URI: uri, Proto: "HTTP/1.1", Host: "shop.example", Header: h, ClientIP: "203.0.113.7"},
		Body:    []byte(body), Version: "abc", Time: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC),
		Record: verdict.RequestRecord{ID: id, Arm: verdict.Candidate, Action: verdict.Blocked, Status: 403,
			Verdict: verdict.Verdict{Blocked: true, RuleID: 949110, InboundScore: 5,
				Rules: []verdict.RuleMatch{{ID: 942100, Targets: []string{"ARGS:text"}}, {ID: 949110}}}},
	}
}

// probe is a scanner's block: from client, on host and path, matching
// rules in target.
func probe(id, client, host, uri, target string, rules ...int) verdict.Block {
	b := block(id, "", uri, "")
	b.Request.Method, b.Request.Host, b.Request.ClientIP = "GET", host, client
	b.Request.Header = http.Header{"User-Agent": {"sqlmap/1.7"}}
	v := verdict.Verdict{Blocked: true, RuleID: 949110, InboundScore: 5 * len(rules)}
	for _, r := range rules {
		v.Rules = append(v.Rules, verdict.RuleMatch{ID: r, Targets: []string{target}})
	}
	v.Rules = append(v.Rules, verdict.RuleMatch{ID: 949110}, verdict.RuleMatch{ID: 980170})
	b.Record.Verdict, b.Record.Arm = v, verdict.Baseline
	return b
}

// No cookie, credential or sensitive value is kept, whatever the body;
// what is not sensitive is kept as sent.
func TestRecordRedacts(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, uri, body string
		keep                   []string
		note                   string
	}{
		{"form", "application/x-www-form-urlencoded", "/login?next=%2Fhome&api_key=s3cret-q", "user=alice&password=s3cret-form&text=1%27+OR+1%3D1", []string{"user=alice", "text=1%27+OR+1%3D1", "next=%2Fhome"}, ""},
		{"json", "application/json; charset=utf-8", "/api/notes", `{"text":"x' OR 1=1","card":{"card_number":"s3cret-card"},"items":[{"otp":"s3cret-otp"}]}`, []string{`"text":"x' OR 1=1"`}, ""},
		// Nothing in a text body has a name: it is kept as sent, so its
		// replay is the request that was blocked.
		{"text", "text/plain", "/upload?token=s3cret-token", "plain words", []string{"plain words"}, ""},
		// A form or JSON under another type (sendBeacon sends text/plain)
		// is redacted all the same.
		{"beacon", "text/plain;charset=UTF-8", "/collect", `{"event":"view","session_token":"s3cret-beacon"}`, []string{`"event":"view"`}, "a text/plain body that reads as a form or JSON"},
		{"untyped form", "", "/login", "user=alice&password=s3cret-untyped", []string{"user=alice"}, "a body with no Content-Type that reads"},
		{"bad json", "application/json", "/api", `{"password":"s3cret-broken`, nil, "does not parse"},
		{"xml", "text/xml", "/soap", `<?xml version="1.0"?><soap:Envelope xmlns:soap="urn:x"><soap:Body><Login user="alice" apiKey="s3cret-attr"><Password>s3cret-xml</Password><note>x' OR 1=1</note></Login></soap:Body></soap:Envelope>`,
			[]string{`user="alice"`, "<note>x&#39; OR 1=1</note>", "<soap:Body>"}, ""},
		{"bad xml", "application/xml", "/soap", `<Login><Password>s3cret-cut`, nil, "XML body that does not parse"},
		// Not form pairs: a JSON document with a form type (jQuery's
		// default), a bare token, a ;-joined pair.
		{"json as form", "application/x-www-form-urlencoded", "/verify?s3cret-bare-token&a=1&b=2;pin=s3cret-semi", `{"user":"a","password":"s3cret-json-form"}`, []string{"a=1"}, ""},
		{"encoded names", "application/x-www-form-urlencoded", "/x?token%3Ds3cret-enc=1&API-Key=s3cret-dash", "Api_Key=s3cret-under&ok=1", []string{"ok=1"}, ""},
		{"csrf", "application/x-www-form-urlencoded", "/wp-admin/post.php", "_wpnonce=s3cret-nonce&csrfmiddlewaretoken=s3cret-django&__RequestVerificationToken=s3cret-aspnet&moderation_keys=spam&ping_status=open&post_author=1",
			[]string{"moderation_keys=spam", "ping_status=open", "post_author=1"}, ""},
	} {
		b := block("r-"+tc.name, tc.ctype, tc.uri, tc.body)
		b.Request.Header.Set("api-key", "s3cret-api-key-header")
		b.Request.Header.Set("X-Goog-Api-Key", "s3cret-goog")
		b.Request.Header.Set("Referer", "https://shop.example/reset?token=s3cret-referer&step=2")
		rec := Of(b, DefaultConfig)
		out, _ := json.Marshal(rec)
		if strings.Contains(string(out), "s3cret") || strings.Contains(rec.Body, "s3cret") {
			t.Errorf("%s: a secret was kept: %s", tc.name, out)
		}
		for _, k := range append(tc.keep, `"User-Agent":["Mozilla/5.0"]`, `"host":"shop.example"`, `"targets":["ARGS:text"]`, "step=2") {
			if !strings.Contains(string(out), k) && !strings.Contains(rec.Body+rec.URI, k) {
				t.Errorf("%s: %s lost from %s", tc.name, k, out)
			}
		}
		if !strings.Contains(rec.BodyNote, tc.note) {
			t.Errorf("%s: note %q, want %q", tc.name, rec.BodyNote, tc.note)
		}
	}
	// Blocked in phase 1: the body was never read, and the capture says so.
	early := block("r-early", "image/png", "/upload", "")
	early.Request.Header.Set("Content-Length", "5120")
	if rec := Of(early, DefaultConfig); rec.Body != "" || !strings.Contains(rec.BodyNote, "blocked before its body phase") {
		t.Errorf("a body never read: %q, note %q", rec.Body, rec.BodyNote)
	}
	long := Of(block("r-long", "application/x-www-form-urlencoded", "/", "text="+strings.Repeat("a", 100)), Config{MaxBodyBytes: 20, Redact: DefaultConfig.Redact})
	if len(long.Body) != 20 || !strings.Contains(long.BodyNote, "max_body_bytes") {
		t.Errorf("long body: %d bytes, note %q", len(long.Body), long.BodyNote)
	}
}

// Names are redacted by whole words (issue 27): a listed word hidden in
// an ordinary word no longer redacts the field that blocked, so tune can
// exclude it; run-together credentials stay redacted.
func TestRedactedNames(t *testing.T) {
	r := newRedactor(DefaultConfig)
	for _, tc := range []struct {
		name      string
		sensitive bool
		why       string
	}{
		{"moderation_keys", false, "WordPress's comment moderation words: key is a short word and keys is another word"},
		{"ping_status", false, "pin is short: only the whole word pin"},
		{"post_author", false, "auth is short: author is another word"},
		{"keyword", false, "key inside a longer word"},
		{"shipping", false, "pin inside a longer word"},
		{"design", false, "sig inside a longer word"},
		{"classname", false, "ssn inside a longer word"},
		{"comment", false, "nothing listed"},
		{"text", false, "nothing listed"},
		{"auth_token", true, "auth and token, both whole words"},
		{"authorization", true, "listed whole"},
		{"password", true, "listed"},
		{"newpassword", true, "password is long: it matches inside a run-together name"},
		{"NEW_PASSWORD", true, "case does not matter"},
		{"api_key", true, "key as a whole word"},
		{"apikey", true, "api_key folds to apikey, long enough to match anywhere"},
		{"X-Api-Key", true, "a header name: api, key"},
		{"APIKey", true, "camelCase after an acronym splits API|Key"},
		{"keyId", true, "camelCase: key, id"},
		{"pin", true, "the whole word"},
		{"pinCode", true, "camelCase: pin, code"},
		{"user_pass", true, "pass as a whole word"},
		{"passenger", false, "pass inside a longer word"},
		{"PHPSESSID", true, "sessid is listed: PHP's session cookie name as a field"},
		{"accesstoken", true, "token is long"},
		{"data[password]", true, "a bracketed form name: data, password"},
		{"card_number", true, "card as a whole word"},
		{"discard", false, "card inside a longer word"},
		{"_wpnonce", true, "a CSRF nonce (redact_names, and nonce is long)"},
		{"csrfmiddlewaretoken", true, "Django's CSRF field (redact_names)"},
		{"__RequestVerificationToken", true, "ASP.NET's CSRF field (redact_names)"},
		{"authenticity_token", true, "Rails's CSRF field"},
		{"_token", true, "Laravel's CSRF field"},
		{"form_key", true, "Magento's CSRF field"},
		{"X-Amz-Signature", true, "a presigned URL's signature"},
		{"email_signature", false, "a forum signature is the user's text, a common false positive: sig is short, signature not listed"},
	} {
		if got := r.sensitive(tc.name); got != tc.sensitive {
			t.Errorf("%s: sensitive %v, want %v (%s)", tc.name, got, tc.sensitive, tc.why)
		}
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"moderation_keys", []string{"moderation", "keys"}},
		{"APIKey", []string{"api", "key"}},
		{"newPassword2", []string{"new", "password", "2"}},
		{"data[user.pin]", []string{"data", "user", "pin"}},
		{"__RequestVerificationToken", []string{"request", "verification", "token"}},
	} {
		if got := words(tc.name); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("words(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A body of any type is kept, so tune replays what was blocked (issue
// 27: an image upload replayed without its body was refused for a rule
// that never blocked it). Binary bytes survive the file and the API as
// base64; a multipart form keeps its files and redacts its secrets.
func TestRecordKeepsBodies(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe<?php system($_GET['c']); ?>\x00\x01")
	rec := Of(block("img", "image/png", "/upload", string(png)), DefaultConfig)
	if rec.Body != string(png) || rec.BodyNote != "" || !rec.BinaryBody() {
		t.Fatalf("png body: %q (note %q), want the bytes as sent", rec.Body, rec.BodyNote)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"body_base64":"iVBORw0K`) || strings.Contains(string(b), `"body":`) {
		t.Errorf("the png body is not written as base64: %s", b)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil || back.Body != string(png) {
		t.Fatalf("read back: %q, %v", back.Body, err)
	}
	text := Of(block("txt", "text/plain", "/note", "héllo"), DefaultConfig)
	if b, _ := json.Marshal(text); !strings.Contains(string(b), `"body":"héllo"`) || text.BinaryBody() {
		t.Errorf("a UTF-8 body is not written as text: %s", b)
	}

	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	w.WriteField("moderation_keys", "spam words")
	w.WriteField("user_password", "s3cret-multipart")
	fw, _ := w.CreateFormFile("avatar", "me.png")
	fw.Write(png)
	w.Close()
	rec = Of(block("mp", w.FormDataContentType(), "/profile", mp.String()), DefaultConfig)
	if strings.Contains(rec.Body, "s3cret") || !strings.Contains(rec.Body, "spam words") || !strings.Contains(rec.Body, string(png)) || rec.BodyNote != "" {
		t.Fatalf("multipart body: %q (note %q)", rec.Body, rec.BodyNote)
	}
	r := multipart.NewReader(strings.NewReader(rec.Body), w.Boundary())
	form, err := r.ReadForm(1 << 20)
	if err != nil || form.Value["user_password"][0] != Placeholder || len(form.File["avatar"]) != 1 {
		t.Fatalf("the kept multipart body does not parse as the form sent: %v, %v", form, err)
	}
	// Cut by the proxy inside the file: the fields before it are kept.
	cut := mp.Bytes()[:mp.Len()-20]
	b2 := block("mp-cut", w.FormDataContentType(), "/profile", string(cut))
	b2.BodyTruncated = true
	rec = Of(b2, DefaultConfig)
	if !strings.Contains(rec.Body, "spam words") || !strings.Contains(rec.BodyNote, "ends inside part 3") || strings.Contains(rec.Body, "s3cret") {
		t.Errorf("cut multipart body: %q, note %q", rec.Body, rec.BodyNote)
	}
}

// Blocks alike share a signature whatever else differs; blocks of
// another host, path, rule or variable do not.
func TestShapeOf(t *testing.T) {
	v := func(rules ...verdict.RuleMatch) verdict.Verdict {
		return verdict.Verdict{Blocked: true, RuleID: 949110, Rules: append(rules, verdict.RuleMatch{ID: 949110}, verdict.RuleMatch{ID: 980170})}
	}
	base := ShapeOf("shop.example", "/api/notes?a=1", v(verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:text"}}, verdict.RuleMatch{ID: 941120, Targets: []string{"ARGS:text"}}))
	if base.Host != "shop.example" || base.Path != "/api/notes" || fmt.Sprint(base.Rules) != "[941100 941120]" || fmt.Sprint(base.Targets) != "[ARGS:text]" {
		t.Fatalf("shape %+v", base)
	}
	if sig := base.Signature(); len(sig) != len("sig:")+16 || !strings.HasPrefix(sig, "sig:") {
		t.Fatalf("signature %q", sig)
	}
	for _, tc := range []struct {
		name string
		s    Shape
		same bool
	}{
		{"another query", ShapeOf("shop.example", "/api/notes?b=2", v(verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:text"}}, verdict.RuleMatch{ID: 941120, Targets: []string{"ARGS:text"}})), true},
		{"the Host's case and port", ShapeOf("Shop.Example:8443", "/api/notes", v(verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:text"}}, verdict.RuleMatch{ID: 941120, Targets: []string{"ARGS:text"}})), true},
		{"the rules in another order", ShapeOf("shop.example", "/api/notes", v(verdict.RuleMatch{ID: 941120, Targets: []string{"ARGS:text"}}, verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:text"}})), true},
		// The score evaluation and the report sit behind every block.
		{"without the evaluation rules", ShapeOf("shop.example", "/api/notes", verdict.Verdict{Rules: []verdict.RuleMatch{{ID: 941100, Targets: []string{"ARGS:text"}}, {ID: 941120, Targets: []string{"ARGS:text"}}}}), true},
		{"an absolute URI", ShapeOf("shop.example", "http://shop.example/api/notes?x", v(verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:text"}}, verdict.RuleMatch{ID: 941120, Targets: []string{"ARGS:text"}})), true},
		{"another path", ShapeOf("shop.example", "/api/notes/2", v(verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:text"}}, verdict.RuleMatch{ID: 941120, Targets: []string{"ARGS:text"}})), false},
		{"another host", ShapeOf("blog.example", "/api/notes", v(verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:text"}}, verdict.RuleMatch{ID: 941120, Targets: []string{"ARGS:text"}})), false},
		{"one rule fewer", ShapeOf("shop.example", "/api/notes", v(verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:text"}})), false},
		{"another variable", ShapeOf("shop.example", "/api/notes", v(verdict.RuleMatch{ID: 941100, Targets: []string{"ARGS:title"}}, verdict.RuleMatch{ID: 941120, Targets: []string{"ARGS:title"}})), false},
	} {
		if got := tc.s.Signature() == base.Signature(); got != tc.same {
			t.Errorf("%s: same signature %v, want %v (%+v)", tc.name, got, tc.same, tc.s)
		}
	}
}

var clock = func() time.Time { return time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC) } // block's time + 1h

func open(t *testing.T, dir string, cfg Config, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(dir, cfg, slog.New(slog.DiscardHandler), now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func take(t *testing.T, s *Store, b verdict.Block) {
	t.Helper()
	if err := s.take(b); err != nil {
		t.Fatalf("%s: %v", b.Request.ID, err)
	}
}

// Issue 27: thousands of a scanner's blocks on a few signatures never
// push out a rare one. Each signature keeps its first captures and counts
// the rest; past max_signatures the least recently seen goes, unless
// pinned; evictions are counted.
func TestStoreKeepsARareSignature(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	cfg := DefaultConfig
	cfg.MaxSignatures, cfg.MaxRequests, cfg.MaxPinned = 6, 100, 1
	s := open(t, dir, cfg, clock)
	scanners := []struct{ path, target string }{{"/", "ARGS:id"}, {"/wp-login.php", "ARGS:log"}, {"/.env", "REQUEST_FILENAME"}, {"/cgi-bin/x", "ARGS:cmd"}, {"/search", "ARGS:q"}}
	scan := func(from, n int) {
		for i := from; i < from+n; i++ {
			sc := scanners[i%len(scanners)]
			take(t, s, probe(fmt.Sprint("scan-", i), "198.51.100.9", "shop.example", sc.path+"?x=1", sc.target, 913100, 942100))
		}
	}
	scan(0, 5000)
	fp := block("note-blocked-1", "application/x-www-form-urlencoded", "/api/notes", "title=Save&text=onclick%3D%22save()%22")
	fp.Record.Verdict.Rules = []verdict.RuleMatch{{ID: 941100, Targets: []string{"ARGS:text"}}, {ID: 941120, Targets: []string{"ARGS:text"}}, {ID: 949110}}
	take(t, s, fp)
	scan(5000, 5000)

	if _, err := s.Get("note-blocked-1"); err != nil {
		t.Fatalf("the false positive's capture is gone after 10,000 scanner blocks: %v", err)
	}
	list := s.List(0)
	if len(list) != 6 || s.Len() != 5*cfg.CapturesPerSignature+1 {
		t.Fatalf("%d signatures, %d captures; want 6 and %d", len(list), s.Len(), 5*cfg.CapturesPerSignature+1)
	}
	var fpSum *Summary
	for i := range list {
		if list[i].Path == "/api/notes" {
			fpSum = &list[i]
			continue
		}
		k := 0
		for k < len(scanners) && scanners[k].path != list[i].Path {
			k++
		}
		// The first three of its blocks, whatever came after.
		var ids []string
		for _, c := range list[i].Captures {
			ids = append(ids, c.ID)
		}
		if want := fmt.Sprintf("scan-%d scan-%d scan-%d", k, k+5, k+10); list[i].Count != 2000 || strings.Join(ids, " ") != want {
			t.Errorf("scanner signature %s: %d blocks, captures %v; want 2000 and %s", list[i].Path, list[i].Count, ids, want)
		}
	}
	if fpSum == nil || fpSum.Count != 1 || len(fpSum.Captures) != 1 || fpSum.Captures[0].ID != "note-blocked-1" || fmt.Sprint(fpSum.Rules) != "[941100 941120]" {
		t.Fatalf("the false positive's signature: %+v", fpSum)
	}
	leans := func(sum Summary) string {
		var names []string
		for _, sg := range sum.Signals {
			names = append(names, sg.Name+"="+sg.Leans)
		}
		return strings.Join(names, " ")
	}
	if got := leans(*fpSum); got != "credentials=false_positive score=false_positive one_family=false_positive" {
		t.Errorf("the false positive's signals: %s (%+v)", got, fpSum.Signals)
	}
	if got := leans(list[0]); got != "families=attack scanner=attack one_client=attack sweep=attack" {
		t.Errorf("a scanner signature's signals: %s (%+v)", got, list[0].Signals)
	}
	if s.Repeats.Load() != 10000-15 {
		t.Errorf("%d blocks counted but not kept, want %d", s.Repeats.Load(), 10000-15)
	}

	// Past max_signatures the least recently seen goes: the false
	// positive now, unless pinned.
	sig := fpSum.Sig
	if _, err := s.Pin(sig, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pin(list[0].Sig, true); !errors.Is(err, ErrPinLimit) {
		t.Errorf("a pin past max_pinned: %v, want ErrPinLimit", err)
	}
	take(t, s, probe("new-1", "198.51.100.10", "shop.example", "/admin", "ARGS:a", 932100))
	take(t, s, probe("new-2", "198.51.100.10", "shop.example", "/admin2", "ARGS:a", 932100))
	if _, err := s.Get("note-blocked-1"); err != nil {
		t.Errorf("the pinned false positive was evicted: %v", err)
	}
	if n := len(s.List(0)); n != 6 {
		t.Errorf("%d signatures, want max_signatures (6)", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	for series, want := range map[string]float64{
		`wafcanary_captures_signatures_evicted_total{reason="max_signatures"}`: 2,
		`wafcanary_captures_evicted_total{reason="max_signatures"}`:            6,
		`wafcanary_captures_evicted_total{reason="age"}`:                       0,
		`wafcanary_captures_not_written_total{reason="signature_full"}`:        10000 - 15,
		`wafcanary_captures_signatures`:                                        6,
	} {
		if got := gathered(t, reg, series); got != want {
			t.Errorf("%s = %g, want %g", series, got, want)
		}
	}

	// Explain and tune name a signature by its first 8 hex digits.
	if got, err := s.Signature(strings.ToUpper(sig[4:])); err != nil || got.Sig != sig {
		t.Errorf("signature by its hex digits: %+v, %v", got, err)
	}
	if _, err := s.Signature("sig:0000"); !errors.Is(err, ErrNoSignature) {
		t.Errorf("a short signature: %v", err)
	}
	if got, ok := s.SignatureOfRequest("scan-9999"); !ok || got.Path != scanners[9999%5].path {
		t.Errorf("the signature of a recent block not kept: %+v, %v", got, ok)
	}
	_, recs, err := s.Records(sig)
	if err != nil || len(recs) != 1 || recs[0].ID != "note-blocked-1" || recs[0].Signature != "sig:"+fpSum.Shape.key() {
		t.Errorf("records of %s: %+v, %v", sig, recs, err)
	}
}

// gathered is the value of one series (name{labels} as the text format
// writes it) in reg.
func gathered(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			name := mf.GetName()
			if len(m.Label) > 0 {
				var ls []string
				for _, l := range m.Label {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				name += "{" + strings.Join(ls, ",") + "}"
			}
			if name != series {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// Signatures, counts and pins outlive a restart, through the index; a
// capture written after the index was saved (a crash) is filed under its
// signature, and so is one from before signatures existed. Files are
// 0600; a torn write is removed; past max_age only pinned signatures
// stay.
func TestStoreRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	// A fixed date far from the real one either way: the store must
	// date captures by this clock alone, never by the files' real times.
	now := time.Date(2020, 12, 2, 3, 0, 0, 0, time.UTC)
	s := open(t, dir, DefaultConfig, func() time.Time { return now })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for i := range 5 {
		s.ObserveBlock(block(fmt.Sprint("req-", i), "application/x-www-form-urlencoded", "/", "a=1"))
	}
	s.ObserveBlock(probe("scan-1", "198.51.100.9", "shop.example", "/.env", "REQUEST_FILENAME", 930130))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(s.List(0)) < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done // saves the index
	if s.Len() != 4 {
		t.Fatalf("%d captures, want 3 of one signature and 1 of another", s.Len())
	}
	sig := s.List(0)[1].Sig
	if _, err := s.Pin(sig, true); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		if info, _ := os.Stat(f); info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, info.Mode().Perm())
		}
	}
	// A capture the index does not know of: written after its last save.
	late := block("req-late", "application/x-www-form-urlencoded", "/late", "a=1")
	rec := Of(late, DefaultConfig)
	if _, err := s.write(fileOf(rec.ID), rec, now); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600)

	again := open(t, dir, DefaultConfig, func() time.Time { return now.Add(time.Hour) })
	list := again.List(0)
	if len(list) != 3 || again.Len() != 5 {
		t.Fatalf("after a restart: %d signatures, %d captures; want 3 and 5: %+v", len(list), again.Len(), list)
	}
	byPath := map[string]Summary{}
	for _, sum := range list {
		byPath[sum.Path] = sum
	}
	if got := byPath["/"]; got.Count != 5 || len(got.Captures) != 3 || !got.Pinned || got.Sig != sig {
		t.Errorf("the signature saved in the index: %+v", got)
	}
	if got := byPath["/late"]; got.Count != 1 || len(got.Captures) != 1 || got.Captures[0].ID != "req-late" {
		t.Errorf("the capture written after the index: %+v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); err == nil {
		t.Error("a torn write was left behind")
	}
	// Age: a week later every signature not pinned is past max_age.
	again.now = func() time.Time { return now.Add(8 * 24 * time.Hour) }
	again.mu.Lock()
	again.pruneAgeLocked()
	again.mu.Unlock()
	if list := again.List(0); len(list) != 1 || list[0].Sig != sig || again.Len() != 3 {
		t.Errorf("past max_age: %d captures of %+v; want the pinned signature's 3", again.Len(), list)
	}
	if _, err := again.Get("req-0"); err != nil {
		t.Errorf("a pinned capture past max_age: %v", err)
	}
	if again.evictedSigs[byAge].Load() != 2 || again.evictedCaptures[byAge].Load() != 2 {
		t.Errorf("evicted by age: %d signatures, %d captures; want 2 and 2", again.evictedSigs[byAge].Load(), again.evictedCaptures[byAge].Load())
	}
}

// An ID names one capture, the first: a later block with the same ID
// (a client that knows the ID a user quotes to support) must not decide
// what tune excludes.
func TestStoreKeepsTheFirstCaptureOfAnID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	s := open(t, dir, DefaultConfig, clock)
	take(t, s, block("ticket-42", "application/x-www-form-urlencoded", "/api/notes", "text=hello"))
	later := block("ticket-42", "application/x-www-form-urlencoded", "/admin/evil", "text=other")
	if err := s.take(later); !errors.Is(err, ErrExists) {
		t.Fatalf("second capture of the same ID: %v, want ErrExists", err)
	}
	rec, err := s.Get("ticket-42")
	if err != nil || !strings.HasPrefix(rec.URI, "/api/notes") || s.Len() != 1 {
		t.Fatalf("capture of ticket-42: %q, %v, %d captures; want the first", rec.URI, err, s.Len())
	}
	// After a restart too.
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	again := open(t, dir, DefaultConfig, clock)
	if err := again.take(later); !errors.Is(err, ErrExists) {
		t.Fatalf("after a restart: %v, want ErrExists", err)
	}
}

// Captures share state_dir's volume with the journal: they stop short of
// capture.min_free_bytes, so blocked requests cannot fill the volume and
// leave a rollout unable to record itself.
func TestStoreKeepsFreeSpace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captures")
	cfg := DefaultConfig
	cfg.MinFreeBytes = 1 << 20
	s := open(t, dir, cfg, clock)
	free := int64(2 << 20)
	s.free = func(string) (int64, bool) { return free, true }
	take(t, s, block("roomy", "", "/a", ""))
	free = 1<<20 + 100 // the capture would eat into the reserve
	if err := s.take(block("tight", "", "/b", "")); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("with the reserve nearly reached: %v, want ErrNoSpace", err)
	}
	if s.NoSpace.Load() != 1 || s.Len() != 1 {
		t.Errorf("%d refused, %d kept; want 1 and 1", s.NoSpace.Load(), s.Len())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	want := `
# HELP wafcanary_captures_not_written_total Blocked requests not captured, by reason: queue_full (the writer fell behind), no_space (capture.min_free_bytes would not stay free) or signature_full (counted under a signature that has its capture.captures_per_signature already).
# TYPE wafcanary_captures_not_written_total counter
wafcanary_captures_not_written_total{reason="no_space"} 1
wafcanary_captures_not_written_total{reason="queue_full"} 0
wafcanary_captures_not_written_total{reason="signature_full"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wafcanary_captures_not_written_total"); err != nil {
		t.Error(err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Errorf("%d files in the store, want 1", len(files))
	}
	// The real volume answers too (unix): far more than 0 bytes free.
	if got, ok := freeBytes(dir); ok && got <= 0 {
		t.Errorf("freeBytes(%s) = %d", dir, got)
	}
}

// Every eviction series exists from start-up, at zero.
func TestStoreMetricsStartAtZero(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "captures"), DefaultConfig, clock)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	for _, r := range reasons {
		for _, name := range []string{"wafcanary_captures_evicted_total", "wafcanary_captures_signatures_evicted_total"} {
			if got := gathered(t, reg, name+`{reason="`+r+`"}`); got != 0 {
				t.Errorf("%s{%s} = %g", name, r, got)
			}
		}
	}
}

// A candidate's new block seen in shadow is kept apart from the blocks
// that happened: its own signature, which blocks that happened keep as
// before (a signature is stable across releases), marked shadow in the
// record, in the list and after a restart (a capture the index did not
// save is read back as shadow too). A chunked body keeps its
// Transfer-Encoding, which net/http takes out of the header map: CRS
// judges the framings apart, and tune replays it.
func TestStoreKeepsShadowBlocksApart(t *testing.T) {
	enforced := block("enforced-1", "", "/api/notes", "remember the milk")
	shadow := block("shadow-1", "", "/api/notes", "remember the milk")
	shadow.Shadow = true
	shadow.Request.TransferEncoding = []string{"chunked"}
	if a, b := ShapeOf(enforced.Request.Host, enforced.Request.URI, enforced.Record.Verdict).Signature(), Of(enforced, DefaultConfig).Signature; a != b {
		t.Errorf("a block that happened changed signature: %s, was %s", b, a)
	}
	rec := Of(shadow, DefaultConfig)
	if !rec.Shadow || rec.Signature == Of(enforced, DefaultConfig).Signature || rec.Header.Get("Transfer-Encoding") != "chunked" {
		t.Fatalf("the shadow record: %+v", rec)
	}
	dir := filepath.Join(t.TempDir(), "captures")
	now := time.Date(2020, 12, 2, 3, 0, 0, 0, time.UTC)
	s := open(t, dir, DefaultConfig, func() time.Time { return now })
	take(t, s, enforced)
	take(t, s, shadow)
	late := block("shadow-late", "", "/api/notes", "remember the milk")
	late.Shadow = true
	shadowOf := func(list []Summary) map[bool]int64 {
		out := map[bool]int64{}
		for _, sum := range list {
			out[sum.Shadow] += sum.Count
		}
		return out
	}
	if got := shadowOf(s.List(0)); got[true] != 1 || got[false] != 1 || len(s.List(0)) != 2 {
		t.Fatalf("signatures: %+v", s.List(0))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	lr := Of(late, DefaultConfig)
	if _, err := s.write(fileOf(lr.ID), lr, now); err != nil {
		t.Fatal(err)
	}
	again := open(t, dir, DefaultConfig, func() time.Time { return now.Add(time.Hour) })
	if got := shadowOf(again.List(0)); got[true] != 2 || got[false] != 1 || len(again.List(0)) != 2 {
		t.Fatalf("after a restart: %+v", again.List(0))
	}
	if r, err := again.Get("shadow-1"); err != nil || !r.Shadow || r.Header.Get("Transfer-Encoding") != "chunked" {
		t.Errorf("shadow-1 read back: %+v %v", r, err)
	}
}
