package ruleset

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// variant writes the shipped baseline with before inserted ahead of the
// CRS rules include and after appended, and loads it.
func variant(t *testing.T, before, after string) *Ruleset {
	t.Helper()
	const crs = "Include @owasp_crs/*.conf"
	s := strings.Replace(shippedBaseline(t), crs, before+"\n"+crs, 1) + "\n" + after + "\n"
	return loadText(t, map[string]string{"main.conf": s})
}

func TestCompareClassifies(t *testing.T) {
	base, err := Load("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Retire()
	shipped, err := Load("../configs/rulesets/candidate-exclusion.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer shipped.Retire()
	pl2, err := Load("../configs/rulesets/candidate-pl2.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer pl2.Retire()

	const ctl = `SecRule REQUEST_FILENAME "@streq /x" "id:10001,phase:1,pass,t:none,nolog,ctl:ruleRemoveTargetById=942100;ARGS:q"`
	tests := []struct {
		name       string
		cand       *Ruleset
		removal    bool
		static     bool
		affected   []int
		exclusions []int
		why        string // part of Why, when not removal-only
	}{
		{name: "the shipped exclusion", cand: shipped, removal: true, affected: []int{930120}, exclusions: []int{10000}},
		{name: "the same rules", cand: variant(t, "", ""), removal: true},
		{name: "a ctl target removal", cand: variant(t, ctl, ""), removal: true, affected: []int{942100}, exclusions: []int{10001}},
		{name: "ctl by tag and whole rule", removal: true, affected: []int{942100, 942190},
			cand:       variant(t, `SecRule REQUEST_FILENAME "@beginsWith /api" "id:10002,phase:1,pass,nolog,ctl:ruleRemoveById=942100,ctl:ruleRemoveTargetByTag=nothing-has-this;ARGS,ctl:ruleRemoveTargetById=942190;ARGS:x"`, ""),
			exclusions: []int{10002}},
		{name: "SecRuleRemoveById", cand: variant(t, "", "SecRuleRemoveById 942100"), removal: true, static: true, affected: []int{942100}},
		{name: "SecRuleUpdateTargetById with exceptions", cand: variant(t, "", `SecRuleUpdateTargetById 942100 "!ARGS:q|!REQUEST_COOKIES:x"`),
			removal: true, static: true, affected: []int{942100}},
		{name: "ctl on a chain's first link", removal: true, static: true, affected: []int{942100}, exclusions: []int{10003},
			cand: variant(t, `SecRule REQUEST_FILENAME "@streq /x" "id:10003,phase:1,pass,nolog,chain,ctl:ruleRemoveTargetById=942100;ARGS:q"
SecRule REQUEST_METHOD "@streq POST" "t:none"`, "")},

		{name: "paranoia level 2", cand: pl2, why: "action setvar"},
		{name: "a target added", cand: variant(t, "", `SecRuleUpdateTargetById 942100 "ARGS_NAMES"`), why: "does not only take targets away"},
		{name: "a blocking rule added", cand: variant(t, `SecRule ARGS "@contains evil" "id:10004,phase:1,deny,nolog"`, ""), why: "action deny"},
		{name: "an exclusion that logs", cand: variant(t, `SecRule REQUEST_FILENAME "@streq /x" "id:10005,phase:1,pass,ctl:ruleRemoveById=942100"`, ""), why: "without nolog"},
		{name: "another ctl", cand: variant(t, `SecRule REQUEST_FILENAME "@streq /x" "id:10006,phase:1,pass,nolog,ctl:ruleEngine=Off"`, ""), why: "ctl:ruleEngine"},
		// Every ctl that turns inspection down is more than a removal of
		// rules or targets: the shadow must evaluate it in full (issue 27,
		// item 6).
		{name: "body access off at run time", cand: variant(t, `SecRule REQUEST_FILENAME "@streq /x" "id:10008,phase:1,pass,nolog,ctl:requestBodyAccess=Off"`, ""), why: "ctl:requestBodyAccess"},
		{name: "another body parser", cand: variant(t, `SecRule REQUEST_FILENAME "@streq /x" "id:10009,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"`, ""), why: "ctl:requestBodyProcessor"},
		{name: "detection only at run time", cand: variant(t, `SecRule REQUEST_FILENAME "@streq /x" "id:10010,phase:1,pass,nolog,ctl:ruleEngine=DetectionOnly"`, ""), why: "ctl:ruleEngine"},
		{name: "rules removed by message", cand: variant(t, `SecRule REQUEST_FILENAME "@streq /x" "id:10011,phase:1,pass,nolog,ctl:ruleRemoveByMsg=SQL"`, ""), why: "ctl:ruleRemoveByMsg"},
		{name: "an operator with side effects", cand: variant(t, `SecRule REMOTE_ADDR "@geoLookup" "id:10007,phase:1,pass,nolog,ctl:ruleRemoveById=942100"`, ""), why: "@geolookup"},
		{name: "an engine setting", cand: variant(t, "SecResponseBodyLimit 1000", ""), why: "adds SecResponseBodyLimit"},
		{name: "a chain rule's target", cand: variant(t, "", `SecRuleUpdateTargetById 920180 "!REQUEST_HEADERS:x"`), why: "rule 920180 is a chain"},
		{name: "a rule a skip passes over", cand: variant(t, "", "SecRuleRemoveById 920540"), why: "skip"},
		{name: "a count's target", cand: variant(t, "", `SecRuleUpdateTargetById 920320 "!REQUEST_HEADERS:x"`), why: "reads a count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Compare(base, tt.cand)
			t.Log(d)
			if d.RemovalOnly != tt.removal {
				t.Fatalf("RemovalOnly = %v (%s), want %v", d.RemovalOnly, d.Why, tt.removal)
			}
			if !tt.removal {
				if !strings.Contains(d.Why, tt.why) {
					t.Errorf("Why = %q, want it to say %q", d.Why, tt.why)
				}
				return
			}
			if d.Static != tt.static || !slices.Equal(d.Affected, tt.affected) || !slices.Equal(d.Exclusions, tt.exclusions) {
				t.Errorf("Static %v, Affected %v, Exclusions %v; want %v, %v, %v", d.Static, d.Affected, d.Exclusions, tt.static, tt.affected, tt.exclusions)
			}
		})
	}
}

func TestCompareOrderAndData(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"a.conf":    "SecRuleEngine On\nSecAuditEngine Off\nSecRule ARGS \"@pmFromFile words.txt\" \"id:1,phase:1,deny,status:403\"\n",
		"b.conf":    "SecAuditEngine Off\nSecRuleEngine On\nSecRule ARGS \"@pmFromFile words.txt\" \"id:1,phase:1,deny,status:403\"\n",
		"words.txt": "evil\n",
	} {
		writeFile(t, filepath.Join(dir, name), content)
	}
	a, err := Load(filepath.Join(dir, "a.conf"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(filepath.Join(dir, "b.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if d := Compare(a, b); d.RemovalOnly || !strings.Contains(d.Why, "order") {
		t.Errorf("moved directives: %s", d)
	}
	if d := Compare(a, a); !d.RemovalOnly {
		t.Errorf("a ruleset against itself: %s", d)
	}
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "a.conf"), "SecRuleEngine On\nSecAuditEngine Off\nSecRule ARGS \"@pmFromFile words.txt\" \"id:1,phase:1,deny,status:403\"\n")
	writeFile(t, filepath.Join(other, "words.txt"), "evil\nworse\n")
	c, err := Load(filepath.Join(other, "a.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if d := Compare(a, c); d.RemovalOnly || !strings.Contains(d.Why, "data file") {
		t.Errorf("changed data file: %s", d)
	}
}

// TestCompareRefusesAChainsPartialMatch shows why a chain is not taken
// for removal-only: Coraza runs the first link's setvar when that link
// matches even though the chain fails, so the baseline blocks by another
// rule while its matched rules do not include the chain; the candidate,
// which narrows the chain, does not block. Reading the matched rules
// alone would have derived a wrong verdict.
func TestCompareRefusesAChainsPartialMatch(t *testing.T) {
	const rules = `SecRuleEngine On
SecRule ARGS "@streq a" "id:1,phase:1,pass,nolog,setvar:tx.x=+1,chain"
SecRule ARGS "@streq zzz" "t:none"
SecRule TX:x "@eq 1" "id:2,phase:1,deny,status:403"
`
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "base.conf"), rules)
	writeFile(t, filepath.Join(dir, "cand.conf"), `SecRule REQUEST_FILENAME "@streq /" "id:3,phase:1,pass,nolog,ctl:ruleRemoveTargetById=1;ARGS:q"
`+rules)
	base, err := Load(filepath.Join(dir, "base.conf"))
	if err != nil {
		t.Fatal(err)
	}
	cand, err := Load(filepath.Join(dir, "cand.conf"))
	if err != nil {
		t.Fatal(err)
	}
	judge := func(rs *Ruleset) (blocked bool, matched []int) {
		tx := rs.WAF().NewTransaction()
		defer tx.Close()
		tx.ProcessURI("/?q=a", "GET", "HTTP/1.1")
		blocked = tx.ProcessRequestHeaders() != nil
		for _, m := range tx.MatchedRules() {
			matched = append(matched, m.Rule().ID())
		}
		return blocked, matched
	}
	bb, bm := judge(base)
	cb, _ := judge(cand)
	if !bb || cb || slices.Contains(bm, 1) {
		t.Fatalf("baseline blocked %v (matched %v), candidate blocked %v: the case this guards against did not occur", bb, bm, cb)
	}
	if d := Compare(base, cand); d.RemovalOnly || !strings.Contains(d.Why, "rule 1 is a chain") {
		t.Errorf("Compare = %s, want the chain refused", d)
	}
}
