package exception

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
)

// compiled compiles a retirement's or renewal's files.
func compiled(t *testing.T, files map[string][]byte, main string) *ruleset.Ruleset {
	t.Helper()
	rs, err := compileFiles(files, main, main)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Retire)
	return rs
}

// ids lists the IDs of rs's exceptions.
func ids(rs *ruleset.Ruleset) []string {
	var out []string
	for _, e := range List(rs, now) {
		out = append(out, e.ID)
	}
	return out
}

// TestRetire takes one exception away: the candidate compiles, lacks it
// alone, keeps every other rule at its file:line, and is recognised as
// the retirement of it (Retires); a directive's metadata comment goes with
// it rather than to the directive below.
func TestRetire(t *testing.T) {
	// A directive right below the one with metadata: it must not inherit
	// bob once the other is retired.
	const update = "SecRuleUpdateTargetById 942100 \"!ARGS:legacy_q\"\n"
	text := strings.Replace(threeExceptions(t, now.AddDate(0, 0, 30).Format(time.DateOnly)), update, update+"SecRuleRemoveById 942101\n", 1)
	base := load(t, text)
	list := List(base, now)
	directive := list[2]

	for _, id := range []string{"10001", directive.ID} {
		r, err := Retire(base, id, now)
		if err != nil {
			t.Fatalf("retire %s: %v", id, err)
		}
		cand := compiled(t, r.Files, r.Main)
		got := ids(cand)
		if slices.Contains(got, id) || len(got) != len(list)-1 {
			t.Errorf("retire %s: the candidate has exceptions %v", id, got)
		}
		for _, rule := range base.Rules {
			if rule.ID == 0 {
				continue // not one rule: markers and the like share it
			}
			if rule.ID == 10001 && id == "10001" {
				if _, ok := cand.Rule(rule.ID); ok {
					t.Errorf("retire %s: rule 10001 still loaded", id)
				}
				continue
			}
			c, ok := cand.Rule(rule.ID)
			if !ok || c.File != rule.File || c.Line != rule.Line {
				t.Errorf("retire %s: rule %d at %s:%d, was %s:%d", id, rule.ID, c.File, c.Line, rule.File, rule.Line)
				break
			}
		}
		if e, err := Retires(base, cand, id); err != nil || e.ID != id {
			t.Errorf("Retires(%s): %v", id, err)
		}
		if id == directive.ID {
			for _, e := range List(cand, now) {
				if e.Rules[0] == "942101" && e.Owner != "" {
					t.Errorf("the directive below the retired one inherited owner %q", e.Owner)
				}
			}
		}
	}

	if _, err := Retire(base, "42", now); !errors.Is(err, ErrNoSuchException) {
		t.Errorf("retire 42: %v, want ErrNoSuchException", err)
	}
}

// TestRetiresRefuses: start takes a candidate that drops an exclusion
// only when it is the served baseline without exactly the one named.
func TestRetiresRefuses(t *testing.T) {
	text := threeExceptions(t, now.AddDate(0, 0, 30).Format(time.DateOnly))
	base := load(t, text)
	r, err := Retire(base, "10000", now)
	if err != nil {
		t.Fatal(err)
	}
	both, err := Retire(compiled(t, r.Files, r.Main), "10001", now)
	if err != nil {
		t.Fatal(err)
	}
	main := string(r.Files[r.Main])
	for _, c := range []struct {
		name, id, text, want string
	}{
		{"two exceptions gone", "10000", string(both.Files[both.Main]), "takes away"},
		// Retiring 10000 and adding a rule: not a retirement.
		{"a rule added", "10000", main + "SecRule ARGS \"@rx x\" \"id:10009,phase:2,deny\"\n", "adds 1 rule"},
		{"another exception named", "10001", main, "not exception 10001"},
	} {
		cand := load(t, c.text)
		if _, err := Retires(base, cand, c.id); !errors.Is(err, ErrNotRetirement) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrNotRetirement saying %q", c.name, err, c.want)
		}
	}
}

// TestRenew changes only metadata: a rule's tag in place, a missing one
// added after its id, a directive's comment; the result reads back, keeps
// every rule at its line (a rule), and is proven to judge as before.
func TestRenew(t *testing.T) {
	gone := now.AddDate(0, 0, -3).Format(time.DateOnly)
	later := now.AddDate(0, 6, 0).Format(time.DateOnly)
	text := threeExceptions(t, gone)
	base := load(t, text)
	update := List(base, now)[2]

	for _, c := range []struct {
		name, id string
		meta     Meta
		want     func(Exception) bool
		line     string // a line the renewed file must hold
	}{
		{"a rule's expiry, in place", "10000", Meta{Expires: later},
			func(e Exception) bool {
				return e.Expires == later && e.Owner == "alice" && e.Ticket == "OPS-12" && e.Status == Active
			},
			"tag:'wafcanary/expires=" + later + "'"},
		{"a rule without metadata", "10001", Meta{Expires: later, Owner: "carol"},
			func(e Exception) bool { return e.Expires == later && e.Owner == "carol" },
			`"id:10001,tag:'wafcanary/owner=carol',tag:'wafcanary/expires=` + later + `',phase:1`},
		{"a directive's comment", update.ID, Meta{Expires: later, Ticket: "OPS-8"},
			func(e Exception) bool { return e.Expires == later && e.Owner == "bob" && e.Ticket == "OPS-8" },
			"# wafcanary/owner=bob wafcanary/ticket=OPS-8 wafcanary/expires=" + later},
	} {
		r, err := Renew(base, c.id, c.meta, now)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Before.ID != c.id || r.After.ID != c.id || !c.want(r.After) {
			t.Errorf("%s: before %+v\nafter %+v", c.name, r.Before, r.After)
		}
		if !strings.Contains(string(r.Files[r.Main]), c.line) {
			t.Errorf("%s: the renewed file lacks %q", c.name, c.line)
		}
		if c.id == "10000" && (r.Before.Status != Expired || r.After.Line != r.Before.Line) {
			t.Errorf("%s: %s at line %d, then line %d", c.name, r.Before.Status, r.Before.Line, r.After.Line)
		}
		cand := compiled(t, r.Files, r.Main)
		if err := MetadataOnly(base, cand); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if got := Changed(r.Before, r.After); !strings.Contains(got, "expires ") || !strings.Contains(got, later) {
			t.Errorf("%s: Changed %q", c.name, got)
		}
	}

	// A directive with no comment above: a comment line is added.
	plain := load(t, strings.Replace(text, "# wafcanary/owner=bob wafcanary/ticket=OPS-7\n", "", 1))
	d := List(plain, now)[2]
	r, err := Renew(plain, d.ID, Meta{Owner: "dave", Expires: later}, now)
	if err != nil || r.After.Owner != "dave" || r.After.Expires != later || r.After.Line != d.Line+1 {
		t.Errorf("a directive without metadata: %v %+v", err, r.After)
	}

	for _, c := range []struct {
		meta Meta
		want string
	}{
		{Meta{}, "nothing to change"},
		{Meta{Expires: "31/12/2026"}, "want YYYY-MM-DD"},
		{Meta{Owner: "o'brien"}, "owner: want"},
		{Meta{Ticket: "a b"}, "ticket: want"},
	} {
		if _, err := Renew(base, "10000", c.meta, now); !errors.Is(err, ErrBadMeta) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want ErrBadMeta saying %q", c.meta, err, c.want)
		}
	}
}

// TestMetadataOnly refuses what could change a verdict: another operator,
// a rule more, an exclusion by a wafcanary/ tag.
func TestMetadataOnly(t *testing.T) {
	text := threeExceptions(t, "2099-01-01")
	base := load(t, text)
	for _, c := range []struct{ name, text, want string }{
		{"an operator changed", strings.Replace(text, "@streq /support/tickets", "@streq /support/ticket", 1), "beyond metadata"},
		{"a rule added", text + "SecRule ARGS \"@rx x\" \"id:10009,phase:2,deny\"\n", "rules and directives"},
		{"a tag changed, removed by tag", strings.Replace(text, "wafcanary/ticket=OPS-12", "wafcanary/ticket=OPS-13", 1) +
			"SecRuleRemoveByTag wafcanary/ticket=OPS-13\n", "removes rules by the tag"},
	} {
		if err := MetadataOnly(base, load(t, c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	tagged := strings.Replace(text, "SecRuleUpdateTargetById 942100", "SecRuleRemoveByTag wafcanary/ticket=OPS-12\nSecRuleUpdateTargetById 942100", 1)
	retagged := strings.Replace(tagged, "wafcanary/ticket=OPS-12'", "wafcanary/ticket=OPS-13'", 1)
	if err := MetadataOnly(load(t, tagged), load(t, retagged)); err == nil || !strings.Contains(err.Error(), "removes rules by the tag") {
		t.Errorf("an exclusion by a wafcanary/ tag: %v", err)
	}
}
