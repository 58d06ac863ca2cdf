package exclusion

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/gates"
)

// untypedRecord is a chunked POST without a Content-Type, as the capture
// keeps it: the Transfer-Encoding in its header, no Content-Length.
func untypedRecord(id, path string) capture.Record {
	return capture.Record{ID: id, Method: http.MethodPost, Host: "shop.example.com", URI: path, Proto: "HTTP/1.1",
		Header: http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"application/json"}, "Transfer-Encoding": {"chunked"}},
		Body:   "remember the milk"}
}

// CRS 4.23's 920640 blocks a body without a Content-Type. tune lets such
// a client through on its one path, and proves that attacks sent the
// same way stay blocked there: CRS parses the untyped body as a form, and
// the other rules read it.
func TestTuneBodyWithoutContentType(t *testing.T) {
	base, b := baseline(t)
	rec := untypedRecord("u1", "/api/notes")
	res, err := Tune(context.Background(), base, b, []capture.Record{rec}, Options{Output: "c.conf", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Removal{{bodyWithoutType, bodyLength}}; !slices.Equal(res.Removals, want) {
		t.Fatalf("removals %v, want %v", res.Removals, want)
	}
	cand := compiled(t, res)
	send := func(host, path, body string, chunked bool) gates.Case {
		c := gates.Case{Name: "x", Method: http.MethodPost, Path: path, Body: body, Headers: map[string]string{"Host": host}}
		if chunked {
			c.Headers["Transfer-Encoding"] = "chunked"
		}
		return c
	}
	for _, c := range []struct {
		name        string
		req         gates.Case
		wantBlocked bool
	}{
		{"the request", send("shop.example.com", "/api/notes", rec.Body, true), false},
		{"on another path", send("shop.example.com", "/api/other", rec.Body, true), true},
		{"on another host", send("blog.example.com", "/api/notes", rec.Body, true), true},
		{"SQL injection as the body", send("shop.example.com", "/api/notes", "q=1' UNION SELECT username, password FROM users--", true), true},
		{"XSS as the body", send("shop.example.com", "/api/notes", "<script src=//evil.example/x.js></script>", true), true},
	} {
		if got := blocked(t, cand, c.req); got != c.wantBlocked {
			t.Errorf("%s: blocked %v, want %v", c.name, got, c.wantBlocked)
		}
		if !blocked(t, base, c.req) {
			t.Errorf("%s: the baseline lets it through; not a test", c.name)
		}
	}
	// The replay is chunked as the request was: with a Content-Length,
	// 920340 (a body length without a type) would match, a rule the
	// request never tripped.
	if len(res.Cases.MustPass) != 1 || !strings.EqualFold(res.Cases.MustPass[0].Headers["Transfer-Encoding"], "chunked") {
		t.Fatalf("must_pass %+v: want the request, chunked", res.Cases.MustPass)
	}
	fails, err := gates.Check(context.Background(), cand, res.Cases)
	if err != nil || len(fails) > 0 {
		t.Fatalf("the candidate fails its own cases: %v %v", fails, err)
	}
	fams := 0
	for _, f := range res.Families {
		if f.Target == bodyLength && f.Blocked > 0 && len(f.Opened) == 0 {
			fams++
		}
	}
	if fams < 2 {
		t.Errorf("the families' attacks as the body: %+v", res.Families)
	}
	t.Logf("%s", res.SecLang)
	for _, c := range res.Checks {
		t.Logf("%s", c)
	}
	for _, c := range res.Families {
		t.Logf("%s", c)
	}
}
