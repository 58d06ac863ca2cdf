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
	for _, c := range []struct {
		name string
		cand *ruleset.Ruleset
		want string
		note string
	}{
		{"what tune writes", compiled(t, tuned), "host shop.example, and path under /api/notes, and caused only by rules 941100, 941120", ""},
		{"the shipped exclusion", shipped, "path under /support/tickets, and caused only by rules 930120", ""},
		{"a paranoia level raise", pl2, "nothing", "no narrow exclusion inferred"},
		// Removals on every path and host would excuse every lost block
		// they cause: declared, never inferred (review finding).
		{"configure-time removals", candidate(t, "", "SecRuleRemoveById 942100 920270-920274\nSecRuleUpdateTargetById 932160 \"!ARGS:cmd\""),
			"nothing", "takes 6 rule(s) away on every host and path: not inferred"},
		{"a tag's worth of rules on one path", candidate(t, `SecRule REQUEST_FILENAME "@streq /api/notes" "id:10002,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=attack-xss;ARGS:text"`, ""),
			"nothing", "takes 33 rules away: not inferred (at most 25)"},
		{"two exclusions on two paths", candidate(t,
			`SecRule REQUEST_URI "@beginsWith /wp-admin/" "id:10001,phase:1,pass,nolog,ctl:ruleRemoveById=942100"
SecRule REQUEST_FILENAME "@rx ^/api/notes(?:/|$)" "id:10002,phase:1,pass,nolog,ctl:ruleRemoveTargetById=941100;ARGS:text"`, ""),
			"(path under /wp-admin, and caused only by rules 942100) or (path under /api/notes, and caused only by rules 941100)", ""},
		{"a host condition not read", candidate(t,
			`SecRule SERVER_NAME "@rx (www\.)?shop\.example" "id:10001,phase:1,pass,nolog,chain"
    SecRule REQUEST_FILENAME "@streq /cart" "ctl:ruleRemoveById=942100"`, ""),
			"path under /cart, and caused only by rules 942100", "SERVER_NAME @rx (www\\.)?shop\\.example not read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc, notes := ScopeOf(base, c.cand)
			if !strings.HasPrefix(sc.String(), c.want) {
				t.Errorf("scope %q, want %q (notes %q)", sc, c.want, notes)
			}
			if c.note != "" && !strings.Contains(strings.Join(notes, "\n"), c.note) {
				t.Errorf("notes %q lack %q", notes, c.note)
			}
			if !sc.Empty() && (!sc.Inferred || sc.Validate() != nil) {
				t.Errorf("scope %+v: inferred %v, %v", sc, sc.Inferred, sc.Validate())
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
	sc, notes := ScopeOf(base, cand)
	if got := sc.String(); got != "(path under /b, and caused only by rules 920100) or (path under /c, and caused only by rules 942100)" {
		t.Errorf("scope %q (notes %q)", got, notes)
	}
	if ids := base.IDs(strings.Fields(ruleset.Unquote(`"942100 942190"`))...); len(ids) != 2 {
		t.Errorf("a quoted ID list reads as %v", ids)
	}
}
