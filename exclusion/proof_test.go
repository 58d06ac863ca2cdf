package exclusion

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// withRule is the baseline with rule written before its CRS include, as
// an operator adds an exclusion by hand.
func withRule(t *testing.T, b ruleset.Bundle, rule string) *ruleset.Ruleset {
	t.Helper()
	main := string(b.Files[b.Main])
	i := strings.Index(main, "Include @owasp_crs")
	if i < 0 {
		t.Fatal("the baseline has no CRS include")
	}
	fsys := fstest.MapFS{}
	for n, c := range b.Files {
		fsys[n] = &fstest.MapFile{Data: c}
	}
	fsys[b.Main] = &fstest.MapFile{Data: []byte(main[:i] + rule + "\n\n" + main[i:])}
	rs, err := ruleset.LoadFS(fsys, b.Main, "operator.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Retire)
	return rs
}

func noteCase() gates.Case {
	fp := demo.NoteFalsePositive()
	return gates.Case{Name: "the note", Method: http.MethodPost, Path: fp.Path, Body: fp.Body,
		Headers: map[string]string{"Host": "shop.example", "Content-Type": form}}
}

// Issue 27, item 3: an operator takes four XSS rules away from the note's
// text. The three XSS probes tune used to send all stay blocked (other
// rules catch alert( and onerror=), so the old check passed it; the
// removed rules' own CRS payloads and the XSS that needs neither find the
// variable open, and the check refuses it, listing what got through.
func TestProveFourXSSRulesRemoved(t *testing.T) {
	base, b := baseline(t)
	rms := []Removal{{941100, "ARGS:text"}, {941110, "ARGS:text"}, {941160, "ARGS:text"}, {941390, "ARGS:text"}}
	var ctls []string
	for _, rm := range rms {
		ctls = append(ctls, "ctl:ruleRemoveTargetById="+rm.String())
	}
	cand := withRule(t, b, `SecRule REQUEST_FILENAME "@streq /api/notes" "id:10000,phase:1,pass,t:none,nolog,`+strings.Join(ctls, ",")+`"`)
	pass := []gates.Case{noteCase()}
	for _, old := range []string{"<script>alert(document.cookie)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)"} {
		c, _ := inject(pass[0], "ARGS:text", old)
		if !blocked(t, cand, c) || !blocked(t, base, c) {
			t.Errorf("%s: the old probe should stay blocked, so that it is this change that refuses", old)
		}
	}

	p, err := Prove(context.Background(), base, cand, pass, rms, "/api/notes")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range p.Summary() {
		t.Log(l)
	}
	if len(p.Rules) != len(rms) {
		t.Fatalf("checked %d rules, want %d: %+v", len(p.Rules), len(rms), p.Rules)
	}
	openedByCRS := 0
	for _, rc := range p.Rules {
		if rc.Checked == 0 && rc.Rule != 941390 {
			t.Errorf("rule %d: no CRS payload checked", rc.Rule)
		}
		if rc.Checked > maxPerRule || rc.Blocked+len(rc.Opened) != rc.Checked {
			t.Errorf("rule %d: %s", rc.Rule, rc)
		}
		openedByCRS += len(rc.Opened)
	}
	if openedByCRS == 0 {
		t.Error("none of the removed rules' own CRS payloads gets through; the four rules are what blocked them")
	}
	opened := p.Opened()
	for _, want := range []string{"<script src=//evil.example/x.js></script>", "<iframe src=//evil.example/frame.html></iframe>"} {
		if !slices.ContainsFunc(opened, func(o string) bool { return strings.HasSuffix(o, ": "+want) }) {
			t.Errorf("%s is not reported let through: %v", want, opened)
		}
	}
	err = p.Refusal(rms, false)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("refusal: %v", err)
	}
	t.Logf("refusal:\n%v", err)
	for _, want := range []string{"excluding rule 941100, 941110, 941160, 941390 from ARGS:text lets through what the baseline blocks",
		"<script src=//evil.example/x.js></script>", "own CRS test payloads", "give --accept-opened"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q", want)
		}
	}
	// --accept-opened writes it, since some XSS stays blocked in it.
	if err := p.Refusal(rms, true); err != nil {
		t.Errorf("with --accept-opened: %v", err)
	}
	// The cases a candidate would be given: a few per rule, all blocked by
	// the candidate, none of what it lets through.
	perRule := map[string]int{}
	for _, c := range p.MustBlock {
		if !blocked(t, cand, c) {
			t.Errorf("must_block %q is let through", c.Name)
		}
		if strings.HasPrefix(c.Name, "CRS test ") {
			perRule[c.Name[len("CRS test "):len("CRS test 941100")]]++
		}
	}
	for rule, n := range perRule {
		if n > maxCasesPerRule {
			t.Errorf("rule %s: %d cases, want at most %d", rule, n, maxCasesPerRule)
		}
	}
}

// The sample of a rule's CRS payloads is bounded, the same on every run,
// and only holds payloads the baseline blocks with the rule matching the
// variable they were sent in, whichever part of its test's request they
// came from.
func TestSampleCRS(t *testing.T) {
	base, _ := baseline(t)
	ctx := context.Background()
	for _, c := range []struct {
		rule   int
		target string
		carry  gates.Case
	}{
		{941120, "ARGS:text", noteCase()},
		{942100, "ARGS:text", noteCase()},
		{930120, "ARGS:message", ticketCase()},
		{941100, "ARGS:q", gates.Case{Name: "search", Method: http.MethodGet, Path: "/search?q=shoes&page=2", Headers: map[string]string{"Host": "shop.example"}}},
	} {
		first, tests, err := sampleCRS(ctx, base, c.carry, c.rule, c.target, "/p")
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := sampleCRS(ctx, base, c.carry, c.rule, c.target, "/p")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rule %d in %s: %d payloads from %d tests", c.rule, c.target, len(first), tests)
		if len(first) == 0 || len(first) > maxPerRule || tests == 0 {
			t.Errorf("rule %d: %d payloads of %d tests", c.rule, len(first), tests)
		}
		if !slices.EqualFunc(first, again, func(a, b probe) bool { return a.payload == b.payload && a.c.Name == b.c.Name }) {
			t.Errorf("rule %d: two samples differ", c.rule)
		}
		for _, p := range first {
			v, err := judge(ctx, base, p.c)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Blocked || !slices.ContainsFunc(v.Rules, func(m verdict.RuleMatch) bool { return m.ID == c.rule && hasTarget(m.Targets, c.target) }) {
				t.Errorf("rule %d: %q is not caught by it in %s: %v", c.rule, p.payload, c.target, v.RuleIDs())
			}
		}
	}
}

func ticketCase() gates.Case {
	fp := demo.FalsePositiveRequests()[0]
	return gates.Case{Name: fp.Name, Method: fp.Method, Path: fp.Path, Body: fp.Body,
		Headers: map[string]string{"Host": "shop.example", "Content-Type": form}}
}

// The shipped false positives still tune with the larger attack set: no
// attack the baseline blocks gets through, and every removed rule's CRS
// payloads were checked.
func TestTuneShippedFalsePositives(t *testing.T) {
	base, b := baseline(t)
	ticket := demo.FalsePositiveRequests()[0]
	for _, c := range []struct {
		name  string
		rec   capture.Record
		rules []int
	}{
		{"note", noteRecord("n"), []int{941100, 941120}},
		{"ticket", record("t", "shop.example", ticket.Path, form, ticket.Body), []int{930120}},
	} {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			res, err := Tune(context.Background(), base, b, []capture.Record{c.rec}, Options{Output: "c.conf", Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("tuned in %s", time.Since(began).Round(time.Millisecond))
			var got []int
			for _, rc := range res.Checks {
				got = append(got, rc.Rule)
				t.Log(rc)
				if rc.Checked == 0 || len(rc.Opened) > 0 {
					t.Errorf("%s", rc)
				}
			}
			if !slices.Equal(got, c.rules) || len(res.Opened) > 0 {
				t.Errorf("checked rules %v, want %v; opened %v", got, c.rules, res.Opened)
			}
			for _, rc := range res.Checks {
				if !strings.Contains(res.SecLang, "#   "+rc.String()) {
					t.Errorf("the candidate's comment lacks %q:\n%s", rc, res.SecLang)
				}
			}
			cand := compiled(t, res)
			if fails, err := gates.Check(context.Background(), cand, res.Cases); err != nil || len(fails) > 0 {
				t.Errorf("the candidate fails its own cases: %v %v", fails, err)
			}
		})
	}
}
