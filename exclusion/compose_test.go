package exclusion

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/ruleset"
)

// twoFixes tunes two false positives from the same baseline, as an
// operator does when the second is tuned while the first rolls out: both
// take the first free exclusion ID.
func twoFixes(t *testing.T) (base *ruleset.Ruleset, fix1, fix2 Result) {
	t.Helper()
	base, b := baseline(t)
	fp := demo.NoteFalsePositive()
	var err error
	if fix1, err = Tune(context.Background(), base, b, []capture.Record{record("n1", "shop.example", "/api/notes", form, fp.Body)}, Options{Output: "fix1.conf", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if fix2, err = Tune(context.Background(), base, b, []capture.Record{record("d1", "shop.example", "/api/drafts", form, fp.Body)}, Options{Output: "fix2.conf", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if fix1.RuleID != fix2.RuleID {
		t.Fatalf("exclusion IDs %d and %d: the test wants them to collide", fix1.RuleID, fix2.RuleID)
	}
	return base, fix1, fix2
}

func note(host, path string) gates.Case {
	fp := demo.NoteFalsePositive()
	return gates.Case{Name: host + path, Method: http.MethodPost, Path: path, Body: fp.Body, Headers: map[string]string{"Host": host, "Content-Type": form}}
}

// A candidate tuned from a baseline that a promotion has replaced is
// carried over to the new one: the promoted fix is kept (issue 27, item
// 2: the candidate was started as written and brought the first false
// positive back).
func TestRebase(t *testing.T) {
	base, fix1, fix2 := twoFixes(t)
	promoted, cand := compiled(t, fix1), compiled(t, fix2)
	if v, ok := RecordedBase(cand); !ok || v != base.Version {
		t.Fatalf("recorded base %q %v, want %s", v, ok, base.Version)
	}
	if got := Dropped(promoted, cand); len(got) != 1 || !strings.Contains(got[0], "rule 10000") {
		t.Errorf("Dropped = %q, want fix 1's rule 10000", got)
	}
	rb, err := Rebase(base, cand, promoted)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rb.Ruleset.Retire)
	if len(rb.Carried) != 1 || len(rb.Renumbered) != 1 || !strings.Contains(rb.Renumbered[0], "rule 10000 is now 10001") {
		t.Errorf("carried %q, renumbered %q", rb.Carried, rb.Renumbered)
	}
	for _, c := range []struct {
		req         gates.Case
		wantBlocked bool
	}{
		{note("shop.example", "/api/notes"), false},  // fix 1, promoted: kept
		{note("shop.example", "/api/drafts"), false}, // fix 2, carried over
		{note("shop.example", "/api/other"), true},
		{note("blog.example", "/api/drafts"), true},
	} {
		if got := blocked(t, rb.Ruleset, c.req); got != c.wantBlocked {
			t.Errorf("%s: blocked %v, want %v", c.req.Name, got, c.wantBlocked)
		}
	}
	if v, _ := RecordedBase(rb.Ruleset); v != promoted.Version {
		t.Errorf("the rebased candidate records base %s, want %s", v, promoted.Version)
	}
	if got := Dropped(promoted, rb.Ruleset); len(got) > 0 {
		t.Errorf("the rebased candidate drops %q", got)
	}
	if got := ScopeOf(promoted, rb.Ruleset).Scope.String(); got != "host shop.example, and path /api/drafts, and caused only by rules 941100, 941120" {
		t.Errorf("scope of the rebased candidate %q: fix 2's only", got)
	}
	// The comment tune wrote goes with the rule, renumbered with it.
	main := string(rb.Ruleset.Files[0].Content)
	if !strings.Contains(main, "# --- wafcanary tune: exclusion 10001,") || strings.Index(main, "id:10001") > strings.Index(main, "Include @owasp_crs/") {
		t.Errorf("the carried rule is not before the CRS include with its comment:\n%s", main)
	}

	// A candidate that also deletes something of its base is not a set
	// of additions: not rebased, and the error says what it deletes.
	edited := fix2
	edited.Files = map[string][]byte{}
	for n, c := range fix2.Files {
		edited.Files[n] = c
	}
	edited.Files["fix2.conf"] = []byte(strings.Replace(string(fix2.Files["fix2.conf"]), "SecAuditEngine Off\n", "", 1))
	if _, err := Rebase(base, compiled(t, edited), promoted); !errors.Is(err, ErrNotRebased) || !strings.Contains(err.Error(), "deletes or changes 1 directive") {
		t.Errorf("a candidate that deletes a directive: %v", err)
	}
	// One that adds nothing has nothing to carry.
	if _, err := Rebase(base, base, promoted); !errors.Is(err, ErrNotRebased) || !strings.Contains(err.Error(), "adds nothing") {
		t.Errorf("the base itself: %v", err)
	}
}

// A hand-written candidate has no recorded base; a marker counts only in
// the leading comments, and the first one wins (a candidate tuned from a
// candidate tune wrote holds both).
func TestRecordedBase(t *testing.T) {
	for _, c := range []struct {
		name, main string
		want       string
	}{
		{"none", "# my rules\nSecRuleEngine On\n", ""},
		{"tune's", "# head\n# wafcanary: base 0123456789abcdef (start carries ...)\n\nSecRuleEngine On\n", "0123456789abcdef"},
		{"the first of two", "# wafcanary: base 0123456789abcdef\n# wafcanary: base fedcba9876543210\n", "0123456789abcdef"},
		{"past the leading comments", "SecRuleEngine On\n# wafcanary: base 0123456789abcdef\n", ""},
		{"not a version", "# wafcanary: base 0123\n", ""},
	} {
		if got, ok := recordedBase(c.main); got != c.want || ok != (c.want != "") {
			t.Errorf("%s: %q %v, want %q", c.name, got, ok, c.want)
		}
	}
}

// start --exclusion applies a file of exclusions to the served baseline:
// ctl: rules before the CRS include, configure-time ones after it, a
// colliding ID renumbered; anything else is refused.
func TestApply(t *testing.T) {
	_, fix1, fix2 := twoFixes(t)
	promoted := compiled(t, fix1)
	text := fix2.SecLang + "\n# and a configure-time one\nSecRuleUpdateTargetById 942100 \"!ARGS:query\"\n"
	r, err := Apply(promoted, "fix2.exclusion.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Ruleset.Retire)
	if len(r.Carried) != 3 || len(r.Renumbered) != 1 { // the rule, its chain link, the update
		t.Errorf("carried %q, renumbered %q", r.Carried, r.Renumbered)
	}
	for _, c := range []struct {
		req         gates.Case
		wantBlocked bool
	}{
		{note("shop.example", "/api/notes"), false},
		{note("shop.example", "/api/drafts"), false},
		{note("shop.example", "/api/other"), true},
	} {
		if got := blocked(t, r.Ruleset, c.req); got != c.wantBlocked {
			t.Errorf("%s: blocked %v, want %v", c.req.Name, got, c.wantBlocked)
		}
	}
	main := string(r.Ruleset.Files[0].Content)
	include := strings.Index(main, "Include @owasp_crs/")
	if i := strings.Index(main, "id:10001"); i < 0 || i > include {
		t.Errorf("the ctl: rule is not before the CRS include")
	}
	if i := strings.Index(main, "SecRuleUpdateTargetById 942100"); i < include {
		t.Errorf("the configure-time update is not after the CRS include")
	}
	if v, _ := RecordedBase(r.Ruleset); v != promoted.Version {
		t.Errorf("recorded base %s, want %s", v, promoted.Version)
	}
	for _, bad := range []struct{ text, want string }{
		{"SecRuleEngine DetectionOnly\n", "is not an exclusion"},
		{"Include other.conf\n", "is not an exclusion"},
		{"# nothing\n", "no directive"},
		{`SecRule REQUEST_FILENAME "@streq /x" "id:10009,phase:1,pass,nolog,ctl:ruleRemoveById=942100`, "does not compile"},
	} {
		if _, err := Apply(promoted, "x.conf", []byte(bad.text)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.text, err, bad.want)
		}
	}
}

// False positives come in batches across paths and hosts: one candidate,
// one exclusion per host and path, each with its own conditions and
// cases (issue 27, item 7: tune took one path at a time).
func TestTuneBatch(t *testing.T) {
	base, b := baseline(t)
	fp := demo.NoteFalsePositive()
	recs := []capture.Record{
		record("a", "shop.example", "/api/notes", form, fp.Body),
		record("b", "blog.example", "/api/notes", form, fp.Body),
		record("c", "shop.example", "/api/drafts?id=7", form, fp.Body),
		record("d", "Shop.Example:443", "/api/notes", form, fp.Body), // the first one's host and path
	}
	res, err := Tune(context.Background(), base, b, recs, Options{Output: "c.conf", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	type where struct {
		id         int
		host, path string
		reqs       string
	}
	var got []where
	for _, e := range res.Exclusions {
		got = append(got, where{e.RuleID, e.Host, e.Path, strings.Join(e.Requests, ",")})
	}
	want := []where{{10000, "shop.example", "/api/notes", "a,d"}, {10001, "blog.example", "/api/notes", "b"}, {10002, "shop.example", "/api/drafts", "c"}}
	if len(got) != len(want) {
		t.Fatalf("exclusions %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("exclusion %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	cand := compiled(t, res)
	for _, c := range []struct {
		req         gates.Case
		wantBlocked bool
	}{
		{note("shop.example", "/api/notes"), false},
		{note("blog.example", "/api/notes"), false},
		{note("shop.example", "/api/drafts"), false},
		// Each exclusion holds on its own host and path only: not on the
		// other's host with this one's path.
		{note("blog.example", "/api/drafts"), true},
		{note("other.example", "/api/notes"), true},
	} {
		if got := blocked(t, cand, c.req); got != c.wantBlocked {
			t.Errorf("%s: blocked %v, want %v", c.req.Name, got, c.wantBlocked)
		}
	}
	if len(res.Cases.MustPass) != 4 {
		t.Errorf("%d must_pass, want the 4 requests", len(res.Cases.MustPass))
	}
	for _, other := range []string{"/api/notes-other", "/api/drafts-other", "(other.blog.example)"} {
		if !strings.Contains(names(res.Cases.MustBlock), other) {
			t.Errorf("no must_block case for %s:\n%s", other, names(res.Cases.MustBlock))
		}
	}
	if fails, err := gates.Check(context.Background(), cand, res.Cases); err != nil || len(fails) > 0 {
		t.Errorf("the candidate fails its own cases: %v %v", fails, err)
	}
	// What start infers from the candidate is what tune wrote: a clause
	// per exclusion.
	if inferred, declared := ScopeOf(base, cand).Scope, res.Scope(); inferred.String() != declared.String() {
		t.Errorf("inferred %q, tune declares %q", inferred, declared)
	}
}

func names(cs []gates.Case) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, "\n")
}

// The same JSON field sent in two shapes by two clients: each variable
// is excluded by its exact name, never by a pattern, and tune says so
// (issue 27, item 7).
func TestTuneJSONShapes(t *testing.T) {
	base, b := baseline(t)
	const js = "application/json"
	text := `Remember to set onclick=\"save()\" on the button`
	recs := []capture.Record{
		record("flat", "shop.example", "/api/notes", js, `{"title":"Save button","content":"`+text+`"}`),
		record("nested", "shop.example", "/api/notes", js, `{"title":"Save button","content":{"raw":"`+text+`"}}`),
	}
	res, err := Tune(context.Background(), base, b, recs, Options{Output: "c.conf", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, rm := range res.Removals {
		targets = append(targets, rm.Target)
	}
	if !slices.Contains(targets, "ARGS:json.content") || !slices.Contains(targets, "ARGS:json.content.raw") {
		t.Errorf("targets %q, want ARGS:json.content and ARGS:json.content.raw each", targets)
	}
	if len(res.Exclusions) != 1 || strings.ContainsAny(res.SecLang, "*") {
		t.Errorf("want one exclusion naming each target:\n%s", res.SecLang)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "excluded each by name") {
		t.Errorf("notes do not say the two shapes are excluded by name: %q", res.Notes)
	}
	cand := compiled(t, res)
	third := recs[0]
	third.Body = `{"title":"Save button","content":{"text":"` + text + `"}}`
	if c := replay(third, "a third shape", "shop.example"); !blocked(t, cand, c) {
		t.Error("a third shape of the field is let through: the exclusion is wider than the two it names")
	}
}
