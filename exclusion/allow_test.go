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
	"github.com/wafcanary/wafcanary/verdict"
)

// pngBody is the start of a PNG file: bytes no form or JSON parser reads.
const pngBody = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"

// upload is a raw-body upload as the proxy captured it: with the body
// when the capture keeps bodies of its type, else with the note saying
// why not, and the verdict and version of the baseline that blocked it.
func upload(id, uri, contentType, body, version string) capture.Record {
	r := record(id, "shop.example", uri, contentType, body)
	if body == "" {
		r.BodyNote = "a " + contentType + " body of 4096 bytes: only form and JSON bodies are kept (redacted)"
	}
	r.Version = version
	r.Verdict = verdict.Verdict{Blocked: true, Rules: []verdict.RuleMatch{{ID: 920420, Targets: []string{"TX:content_type"}}, {ID: 949111}}}
	return r
}

// Issue 27, item 5: a request blocked by CRS policy (a content type, a
// method, a file extension) gets what CRS documents, the policy list
// changed on its host and path, not a refusal naming protocol
// enforcement; validated: the request passes, another value on the same
// path and the same value on another path or host stay blocked.
func TestTuneAllowance(t *testing.T) {
	base, b := baseline(t)
	send := func(method, host, path, contentType, body string) gates.Case {
		c := gates.Case{Name: path, Method: method, Path: path, Body: body, Headers: map[string]string{"Host": host}}
		if contentType != "" {
			c.Headers["Content-Type"] = contentType
		}
		return c
	}
	put := record("m", "shop.example", "/api/items/7", form, "name=lamp&price=12")
	put.Method = http.MethodPut
	for _, c := range []struct {
		name      string
		rec       capture.Record
		policy    int
		value     string
		set       []string // in the list the candidate sets
		unset     []string // not in it
		pass      []gates.Case
		block     []gates.Case
		otherCase string // the must_block case for another value on the path
	}{
		{"an image/png upload whose body the capture did not keep", upload("u", "/api/avatar", "image/png", "", base.Version), 920420, "image/png",
			[]string{"|application/x-www-form-urlencoded|", "|application/json|", "|multipart/form-data|", "|image/png|"}, nil,
			[]gates.Case{send("POST", "shop.example", "/api/avatar", "image/png", pngBody), send("POST", "SHOP.example:443", "/api/avatar", "image/png", pngBody)},
			[]gates.Case{send("POST", "shop.example", "/api/avatar2", "image/png", pngBody), send("POST", "blog.example", "/api/avatar", "image/png", pngBody),
				send("POST", "shop.example", "/api/avatar", "image/gif", pngBody), send("POST", "shop.example", "/other/api/avatar", "image/png", pngBody),
				// Another type on the path keeps its body processor: JSON
				// is still parsed into arguments (the raw reading is the
				// PNG's only).
				send("POST", "shop.example", "/api/avatar", "application/json", `{"name":"<script>alert(1)</script>"}`)},
			"another content type on the same path (application/x-wafcanary-unlisted)"},
		{"an image/png upload with its body", upload("u", "/api/avatar", "image/png", pngBody, base.Version), 920420, "image/png",
			[]string{"|image/png|"}, nil, nil, nil, "another content type on the same path"},
		// A text body stays parsed as a form: the rules on ARGS still read
		// it (an XSS in it stays blocked), where RAW would leave only those
		// on REQUEST_BODY.
		{"a text/plain body", record("x", "shop.example", "/api/log", "text/plain", "build 1.2 finished"), 920420, "text/plain",
			[]string{"|text/plain|"}, nil,
			[]gates.Case{send("POST", "shop.example", "/api/log", "text/plain", "build 1.3 finished")},
			[]gates.Case{send("POST", "shop.example", "/api/log", "text/plain", "x=<script>alert(1)</script>")},
			"another content type on the same path"},
		{"a PUT", put, 911100, "PUT", []string{"GET HEAD POST OPTIONS PUT"}, nil,
			[]gates.Case{send("PUT", "shop.example", "/api/items/7", form, "name=lamp")},
			[]gates.Case{send("PUT", "shop.example", "/api/items/8", form, "name=lamp"), send("DELETE", "shop.example", "/api/items/7", "", "")},
			"another method on the same path (PROPFIND)"},
		{"a restricted extension", func() capture.Record {
			r := record("e", "shop.example", "/exports/report.bak", "", "")
			r.Method, r.Header = http.MethodGet, http.Header{"User-Agent": {"Mozilla/5.0"}}
			return r
		}(), 920440, ".bak", []string{".sql/", ".old/"}, []string{".bak/"},
			[]gates.Case{send("GET", "shop.example", "/exports/report.bak", "", "")},
			[]gates.Case{send("GET", "shop.example", "/exports/report2.bak", "", ""), send("GET", "shop.example", "/exports/report.sql", "", "")},
			""},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Tune(context.Background(), base, b, []capture.Record{c.rec}, Options{Output: "c.conf", Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", res.SecLang)
			if len(res.Removals) != 0 || len(res.Allowances) != 1 {
				t.Fatalf("removals %v, allowances %+v: want one allowance and no exclusion", res.Removals, res.Allowances)
			}
			a := res.Allowances[0]
			if a.Policy != c.policy || a.Value != c.value || a.RuleID != res.RuleID || a.RuleID != 10000 {
				t.Errorf("allowance %+v", a)
			}
			if raw := strings.Contains(res.SecLang, "ctl:requestBodyProcessor=RAW"); raw != a.RawBody || raw != (c.policy == 920420 && c.value == "image/png") {
				t.Errorf("RAW body processor: written %v, allowance says %v", raw, a.RawBody)
			}
			for _, s := range c.set {
				if !strings.Contains(a.Set, s) {
					t.Errorf("the list %q lacks %s", a.Set, s)
				}
			}
			for _, s := range c.unset {
				if strings.Contains(a.Set, s) {
					t.Errorf("the list %q holds %s", a.Set, s)
				}
			}
			if sc := res.Scope(); !slices.Equal(sc.RuleIDs, []int{c.policy}) || len(sc.ExactPaths) != 1 || sc.ExactPaths[0] != res.Path {
				t.Errorf("scope %+v", sc)
			}
			cand := compiled(t, res)
			// start infers what tune declares: the policy rule, exactly on
			// the path and host (issue 27, item 4), the raw body included.
			if inferred := ScopeOf(base, cand).Scope; inferred.String() != res.Scope().String() {
				t.Errorf("start infers %q, tune declares %q", inferred, res.Scope())
			}
			for _, p := range c.pass {
				if blocked(t, cand, p) || !blocked(t, base, p) {
					t.Errorf("%s %s on %s (%s): want blocked by the baseline only", p.Method, p.Path, p.Headers["Host"], p.Headers["Content-Type"])
				}
			}
			for _, p := range c.block {
				if !blocked(t, cand, p) {
					t.Errorf("%s %s on %s (%s): let through, want blocked", p.Method, p.Path, p.Headers["Host"], p.Headers["Content-Type"])
				}
			}
			fails, err := gates.Check(context.Background(), cand, res.Cases)
			if err != nil || len(fails) > 0 {
				t.Errorf("the candidate fails its own cases: %v %v", fails, err)
			}
			if fails, _ := gates.Check(context.Background(), base, res.Cases); len(fails) != len(res.Cases.MustPass) {
				t.Errorf("the baseline should fail exactly the must_pass cases, got %v", fails)
			}
			if c.otherCase != "" && !slices.ContainsFunc(res.Cases.MustBlock, func(k gates.Case) bool { return strings.HasPrefix(k.Name, c.otherCase) }) {
				t.Errorf("no must_block case %q", c.otherCase)
			}
			if !slices.ContainsFunc(res.Cases.MustBlock, func(k gates.Case) bool { return strings.HasPrefix(k.Name, "the same request on another path") }) {
				t.Error("no must_block case for another path")
			}
		})
	}
}

// What blocked the captured upload was its content type: the replay,
// without the body the capture did not keep, also trips 920180 (a POST
// without Content-Length), and tune says that rule matched the replay
// only instead of refusing in its name (issue 27, item 5).
func TestTuneNamesWhatMattered(t *testing.T) {
	base, b := baseline(t)
	res, err := Tune(context.Background(), base, b, []capture.Record{upload("u", "/api/avatar", "image/png", "", base.Version)}, Options{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.Notes, func(n string) bool {
		return strings.Contains(n, "rule 920180 matched the replayed request only") && strings.Contains(n, "did not keep the body")
	}) {
		t.Errorf("notes do not say 920180 matched the replay only: %v", res.Notes)
	}
	// A body over SecRequestBodyNoFilesLimit is refused whatever its
	// type: no allowance would let it through.
	big := upload("b", "/api/avatar", "image/png", "", base.Version)
	big.Header.Set("Content-Length", "5000000")
	if _, err := Tune(context.Background(), base, b, []capture.Record{big}, Options{Now: time.Now()}); err == nil || !strings.Contains(err.Error(), "over the baseline's SecRequestBodyNoFilesLimit (131072)") {
		t.Errorf("a 5 MB upload: %v", err)
	}
	// A protocol-enforcement refusal names the variable that matched.
	rec := record("p", "shop.example", "/api/notes", form, "title=a%00b")
	_, err = Tune(context.Background(), base, b, []capture.Record{rec}, Options{Now: time.Now()})
	if err == nil || !strings.Contains(err.Error(), "rule 920270 matched ARGS:title: it is protocol enforcement") {
		t.Errorf("refusal: %v", err)
	}
}
