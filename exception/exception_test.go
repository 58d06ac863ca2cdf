package exception

import (
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/ruleset"
)

// now is the tests' clock: every date written into a ruleset is computed
// from it, so no test turns red on the day a date passes.
var now = time.Date(2026, time.May, 4, 15, 30, 0, 0, time.UTC)

// threeExceptions is the shipped baseline with three exceptions: the
// support-ticket one (930120 on ARGS:message), which the traffic needs,
// with owner, expiry (expires, YYYY-MM-DD) and ticket; one for a host no
// request names, owned, with a comment for metadata as a directive must;
// and one naming 942441, which CRS 4.22 deleted.
func threeExceptions(t *testing.T, expires string) string {
	t.Helper()
	shipped, err := fs.ReadFile(configs.Rulesets, "baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	const include = "Include @owasp_crs/*.conf"
	before := `SecRule REQUEST_FILENAME "@streq /support/tickets" \
    "id:10000,phase:1,pass,t:none,nolog,\
    tag:'wafcanary/owner=alice',tag:'wafcanary/expires=` + expires + `',tag:'wafcanary/ticket=OPS-12',\
    ctl:ruleRemoveTargetById=930120;ARGS:message"
SecRule REQUEST_HEADERS:Host "@streq legacy.example" "id:10001,phase:1,pass,t:none,nolog,chain"
    SecRule REQUEST_FILENAME "@beginsWith /old/" "ctl:ruleRemoveById=942441"
`
	after := `
# Legacy search form.
# wafcanary/owner=bob wafcanary/ticket=OPS-7
SecRuleUpdateTargetById 942100 "!ARGS:legacy_q"
`
	text := strings.Replace(string(shipped), include, before+include+after, 1)
	if text == string(shipped) {
		t.Fatal("no CRS include in the shipped baseline")
	}
	return text
}

func load(t *testing.T, text string) *ruleset.Ruleset {
	t.Helper()
	rs, err := ruleset.LoadFS(fstest.MapFS{"main.conf": {Data: []byte(text)}}, "main.conf", "main.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Retire)
	return rs
}

// lineOf is the line of text where needle first is, from 1.
func lineOf(text, needle string) int {
	i := strings.Index(text, needle)
	if i < 0 {
		return 0
	}
	return strings.Count(text[:i], "\n") + 1
}

// TestList reads the three exceptions of a baseline on the embedded CRS:
// where each is, what it removes and when, its metadata, and the one
// naming a rule the CRS does not have as dangling.
func TestList(t *testing.T) {
	expires := now.AddDate(0, 0, 30).Format(time.DateOnly)
	text := threeExceptions(t, expires)
	rs := load(t, text)
	got := List(rs, now)
	if len(got) != 3 {
		t.Fatalf("%d exceptions, want 3: %+v", len(got), got)
	}
	needed, dangling, update := got[0], got[1], got[2]

	if needed.ID != "10000" || needed.File != "main.conf" || needed.Line != lineOf(text, `SecRule REQUEST_FILENAME "@streq /support/tickets"`) {
		t.Errorf("needed: id %s at %s", needed.ID, needed.Where())
	}
	if !slices.Equal(needed.Kinds, []string{"ctl:ruleRemoveTargetById"}) || !slices.Equal(needed.Rules, []string{"930120"}) ||
		!slices.Equal(needed.Targets, []string{"ARGS:message"}) {
		t.Errorf("needed removes %v %v %v", needed.Kinds, needed.Rules, needed.Targets)
	}
	if len(needed.Conditions) != 1 || needed.Conditions[0] != (Condition{On: "path", Variable: "REQUEST_FILENAME", Operator: "@streq", Argument: "/support/tickets"}) {
		t.Errorf("needed conditions %+v", needed.Conditions)
	}
	if needed.Owner != "alice" || needed.Expires != expires || needed.Ticket != "OPS-12" || needed.Expired || needed.Status != Active || len(needed.Dangling) != 0 {
		t.Errorf("needed: %+v", needed)
	}

	// The chain's two links both hold when its ctl runs.
	if dangling.ID != "10001" || !slices.Equal(dangling.Rules, []string{"942441"}) || !slices.Equal(dangling.Dangling, []string{"942441"}) || dangling.Status != Dangling {
		t.Errorf("dangling: %+v", dangling)
	}
	if len(dangling.Conditions) != 2 || dangling.Conditions[0].On != "host" || dangling.Conditions[1].String() != "REQUEST_FILENAME @beginswith /old/" {
		t.Errorf("dangling conditions %+v", dangling.Conditions)
	}

	// A directive: a derived ID, no condition, metadata from the comment
	// above it, and no expiry.
	if !strings.HasPrefix(update.ID, "d") || len(update.ID) != 11 || update.Line != lineOf(text, "SecRuleUpdateTargetById") {
		t.Errorf("update: id %s at %s", update.ID, update.Where())
	}
	if !slices.Equal(update.Rules, []string{"942100"}) || !slices.Equal(update.Targets, []string{"!ARGS:legacy_q"}) || len(update.Conditions) != 0 {
		t.Errorf("update removes %v %v when %v", update.Rules, update.Targets, update.Conditions)
	}
	if update.Owner != "bob" || update.Ticket != "OPS-7" || update.Expires != "" || update.Status != Active {
		t.Errorf("update: %+v", update)
	}

	problems, notes := Audit(got)
	want := []string{
		"exception 10001 (main.conf:" + strconv.Itoa(dangling.Line) + ") names 942441, which the ruleset does not load",
		"exception 10001 (main.conf:" + strconv.Itoa(dangling.Line) + ") has no owner: add tag:'wafcanary/owner=NAME'",
		"exception 10001 (main.conf:" + strconv.Itoa(dangling.Line) + ") has no expiry date: add tag:'wafcanary/expires=YYYY-MM-DD'",
		"exception " + update.ID + " (main.conf:" + strconv.Itoa(update.Line) + ") has no expiry date: add a comment line right above it: # wafcanary/expires=YYYY-MM-DD",
	}
	if len(problems) != len(want) {
		t.Fatalf("problems:\n%s", strings.Join(problems, "\n"))
	}
	for i, p := range problems {
		if !strings.HasPrefix(p, want[i]) {
			t.Errorf("problem %d: %s\nwant it to start %s", i, p, want[i])
		}
	}
	if len(notes) != 0 {
		t.Errorf("notes: %q", notes)
	}
}

// TestExpiry: an exception is in force through its expiry date (UTC) and
// expired from the next day; a date that does not read is no expiry, and
// said so. Dates are the injected clock's, never the wall clock's.
func TestExpiry(t *testing.T) {
	day := now.AddDate(0, 0, 10)
	rs := load(t, threeExceptions(t, day.Format(time.DateOnly)))
	for _, c := range []struct {
		at   time.Time
		want Status
	}{
		{now, Active},
		{time.Date(day.Year(), day.Month(), day.Day(), 23, 59, 59, 0, time.UTC), Active},
		{time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, time.UTC), Expired},
		{day.AddDate(1, 0, 0), Expired},
		// No clock, no expiry judged (the gates do not read one).
		{time.Time{}, Active},
	} {
		e := List(rs, c.at)[0]
		if e.Status != c.want || e.Expired != (c.want == Expired) {
			t.Errorf("at %s: %s (expired %v), want %s", c.at, e.Status, e.Expired, c.want)
		}
	}
	_, notes := Audit(List(rs, day.AddDate(0, 0, 1)))
	if len(notes) != 1 || !strings.Contains(notes[0], "exception 10000") || !strings.Contains(notes[0], "expired") {
		t.Errorf("notes: %q", notes)
	}

	rs = load(t, threeExceptions(t, "next-spring"))
	e := List(rs, now)[0]
	if e.Expired || len(e.Notes) != 1 || !strings.Contains(e.Notes[0], `want YYYY-MM-DD, got "next-spring"`) {
		t.Errorf("a date that does not read: expired %v, notes %q", e.Expired, e.Notes)
	}
	if problems, _ := Audit([]Exception{e}); len(problems) != 1 || !strings.Contains(problems[0], "no expiry date") {
		t.Errorf("problems %q", problems)
	}
}
