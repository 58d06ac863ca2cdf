package exclusion

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/ruleset"
)

// candidate compiles the baseline with extra inserted before the CRS
// rules include and after.
func candidate(t *testing.T, before, after string) *ruleset.Ruleset {
	t.Helper()
	_, b := baseline(t)
	main := string(b.Files[b.Main])
	i := strings.Index(main, "Include @owasp_crs/*.conf")
	src := main[:i] + before + "\n" + main[i:] + "\n" + after + "\n"
	fsys := fstest.MapFS{"c.conf": {Data: []byte(src)}}
	for name, data := range b.Files { // the baseline's own includes, if any
		if name != b.Main {
			fsys[name] = &fstest.MapFile{Data: data}
		}
	}
	rs, err := ruleset.LoadFS(fsys, "c.conf", "c.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Retire)
	return rs
}

func TestScopeOf(t *testing.T) {
	base, b := baseline(t)
	tuned, err := Tune(context.Background(), base, b, []capture.Record{noteRecord("r1")}, Options{Output: "c.conf", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	widened, err := Tune(context.Background(), base, b, []capture.Record{noteRecord("r1")}, Options{Output: "c.conf", Path: "/api", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := ruleset.Load("../configs/rulesets/candidate-exclusion.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(shipped.Retire)
	pl2, err := ruleset.Load("../configs/rulesets/candidate-pl2.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pl2.Retire)
	rule := func(id int, cond, actions string) string {
		return fmt.Sprintf(`SecRule %s "id:%d,phase:1,pass,nolog,%s"`, cond, id, actions)
	}
	for _, c := range []struct {
		name string
		cand *ruleset.Ruleset
		want string
		note string // in the notes or Why()
	}{
		// @streq is one path, exactly (issue 27, item 4: it was read as
		// "path under", excusing the rules' lost blocks below it too).
		{"what tune writes", compiled(t, tuned), "host shop.example, and path /api/notes, and caused only by rules 941100, 941120", ""},
		{"what tune --path writes", compiled(t, widened), "host shop.example, and path under /api, and caused only by rules 941100, 941120", ""},
		{"the shipped exclusion", shipped, "path /support/tickets, and caused only by rules 930120", ""},
		// An exclusion on / is on that one path, not on the whole host
		// (issue 27, item 4: it gave a clause without a path).
		{"an exclusion on /", candidate(t, rule(10001, `REQUEST_FILENAME "@streq /"`, "ctl:ruleRemoveById=942100"), ""), "path /, and caused only by rules 942100", ""},
		{"an anchored exact @rx", candidate(t, rule(10001, `REQUEST_FILENAME "@rx ^/api/notes$"`, "ctl:ruleRemoveById=942100"), ""), "path /api/notes, and caused only by rules 942100", ""},
		{"an exact path on REQUEST_URI", candidate(t, rule(10001, `REQUEST_URI "@streq /api/notes"`, "ctl:ruleRemoveById=942100"), ""),
			"path /api/notes, and caused only by rules 942100", "only without a query string"},
		{"every path of one host", candidate(t, rule(10001, `REQUEST_HEADERS:Host "@streq shop.example"`, "ctl:ruleRemoveById=942100"), ""),
			"host shop.example, and caused only by rules 942100", ""},
		// Two conditions on the path hold together: the narrower is the
		// exclusion's.
		{"a prefix and an exact path in one chain", candidate(t, `SecRule REQUEST_URI "@beginsWith /api/" "id:10001,phase:1,pass,nolog,chain"
    SecRule REQUEST_FILENAME "@streq /api/notes" "ctl:ruleRemoveById=942100"`, ""), "path /api/notes, and caused only by rules 942100", ""},
		{"conditions that never hold together", candidate(t, `SecRule REQUEST_FILENAME "@streq /a" "id:10001,phase:1,pass,nolog,chain"
    SecRule REQUEST_FILENAME "@streq /b" "ctl:ruleRemoveById=942100"`, ""), "nothing", "never applies"},
		{"a paranoia level raise", pl2, "nothing", "adds no exclusion"},
		// Removals on every path and host would excuse every lost block
		// they cause: declared, never inferred (review finding).
		{"configure-time removals", candidate(t, "", "SecRuleRemoveById 942100 920270-920274\nSecRuleUpdateTargetById 932160 \"!ARGS:cmd\""),
			"nothing", "takes 6 rule(s) away on every host and path: not inferred"},
		{"a tag's worth of rules on one path", candidate(t, rule(10002, `REQUEST_FILENAME "@streq /api/notes"`, "ctl:ruleRemoveTargetByTag=attack-xss;ARGS:text"), ""),
			"nothing", "takes 33 rules away on path /api/notes: not inferred (at most 25)"},
		// Every ctl that turns inspection down takes something away, from
		// any rule (issue 27, item 6: ctl:requestBodyAccess=Off was read
		// as taking nothing away).
		{"body access off on one path", candidate(t, rule(10001, `REQUEST_FILENAME "@streq /upload"`, "ctl:requestBodyAccess=Off"), ""),
			"nothing", "ctl:requestBodyAccess=off stops inspecting the body on path /upload: not inferred"},
		{"detection only on one host", candidate(t, rule(10001, `REQUEST_HEADERS:Host "@streq shop.example"`, "ctl:ruleEngine=DetectionOnly"), ""),
			"nothing", "ctl:ruleEngine=detectiononly stops blocking on host shop.example: not inferred"},
		{"another body parser", candidate(t, rule(10001, `REQUEST_FILENAME "@streq /api"`, "ctl:requestBodyProcessor=URLENCODED"), ""),
			"nothing", "changes how the body is read"},
		{"rules removed by message", candidate(t, rule(10001, `REQUEST_FILENAME "@streq /api"`, "ctl:ruleRemoveByMsg=SQL Injection"), ""),
			"nothing", "by their message"},
		{"allow on a path", candidate(t, `SecRule REQUEST_FILENAME "@streq /health" "id:10001,phase:1,allow,nolog"`, ""),
			"nothing", "allow stops inspection on path /health"},
		// A narrow exclusion next to one that is not: the narrow one is
		// the scope, the other is said to count.
		{"a narrow exclusion and body access off", candidate(t, rule(10001, `REQUEST_FILENAME "@streq /api/notes"`, "ctl:ruleRemoveTargetById=941100;ARGS:text")+"\n"+
			rule(10002, `REQUEST_FILENAME "@streq /upload"`, "ctl:requestBodyAccess=Off"), ""),
			"path /api/notes, and caused only by rules 941100", "stops inspecting the body on path /upload"},
		{"two exclusions on two paths", candidate(t,
			`SecRule REQUEST_URI "@beginsWith /wp-admin/" "id:10001,phase:1,pass,nolog,ctl:ruleRemoveById=942100"
SecRule REQUEST_FILENAME "@rx \A/api/notes(?:/|\z)" "id:10002,phase:1,pass,nolog,ctl:ruleRemoveTargetById=941100;ARGS:text"`, ""),
			"(path under /wp-admin, and caused only by rules 942100) or (path under /api/notes, and caused only by rules 941100)", ""},
		{"a host condition not read", candidate(t,
			`SecRule SERVER_NAME "@rx (www\.)?shop\.example" "id:10001,phase:1,pass,nolog,chain"
    SecRule REQUEST_FILENAME "@streq /cart" "ctl:ruleRemoveById=942100"`, ""),
			"path /cart, and caused only by rules 942100", "SERVER_NAME @rx (www\\.)?shop\\.example not read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := ScopeOf(base, c.cand)
			sc := in.Scope
			if sc.String() != c.want {
				t.Errorf("scope %q, want %q (notes %q)", sc, c.want, in.Notes)
			}
			if said := strings.Join(append(in.Notes, in.Why()), "\n"); c.note != "" && !strings.Contains(said, c.note) {
				t.Errorf("notes %q and why %q lack %q", in.Notes, in.Why(), c.note)
			}
			if sc.Empty() && in.Why() == "" {
				t.Error("no scope, and no reason why")
			}
			if !sc.Empty() && (!sc.Inferred || sc.Validate() != nil || in.Why() != "") {
				t.Errorf("scope %+v: inferred %v, %v, why %q", sc, sc.Inferred, sc.Validate(), in.Why())
			}
		})
	}
}

// A chain is diffed whole: a link the baseline also has is not taken
// from the candidate's chain, and the next rule is not read as its link
// (review finding).
func TestScopeOfChains(t *testing.T) {
	chain := func(id int, path string) string {
		return fmt.Sprintf("SecRule REQUEST_FILENAME \"@streq %s\" \"id:%d,phase:1,pass,nolog,chain\"\n    SecRule REQUEST_METHOD \"@streq POST\" \"t:none,ctl:ruleRemoveById=920100\"\n", path, id)
	}
	base := candidate(t, chain(10001, "/a"), "")
	cand := candidate(t, chain(10002, "/b")+chain(10001, "/a")+`SecRule REQUEST_FILENAME "@streq /c" "id:10003,phase:1,pass,nolog,ctl:ruleRemoveById=942100"`, "")
	in := ScopeOf(base, cand)
	if got := in.Scope.String(); got != "(path /b, and caused only by rules 920100) or (path /c, and caused only by rules 942100)" {
		t.Errorf("scope %q (notes %q)", got, in.Notes)
	}
	if ids := base.RulesOf(ruleset.ExclusionsOf([]ruleset.Directive{{Name: "SecRuleRemoveById", Args: `"942100 942190"`}})[0]); len(ids) != 2 {
		t.Errorf("a quoted ID list reads as %v", ids)
	}
}
