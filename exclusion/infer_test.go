package exclusion

import (
	"context"
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
	rs, err := ruleset.LoadFS(fstest.MapFS{"c.conf": {Data: []byte(src)}}, "c.conf", "c.conf")
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
		{"a paranoia level raise", pl2, "nothing", "takes no rule or target away"},
		{"configure-time removals", candidate(t, "", "SecRuleRemoveById 942100 920270-920274\nSecRuleUpdateTargetById 932160 \"!ARGS:cmd\""),
			"caused only by rules 920270, 920271, 920272, 920273, 920274, 932160, 942100", ""},
		{"two exclusions on two paths", candidate(t,
			`SecRule REQUEST_URI "@beginsWith /wp-admin/" "id:10001,phase:1,pass,nolog,ctl:ruleRemoveById=942100"
SecRule REQUEST_FILENAME "@rx ^/api/notes(?:/|$)" "id:10002,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=attack-xss;ARGS:text"`, ""),
			"(path under /wp-admin, and caused only by rules 942100) or (path under /api/notes, and caused only by rules 941", ""},
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
