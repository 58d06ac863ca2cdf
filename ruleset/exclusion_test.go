package ruleset

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// TestExclusions reads every form of exclusion the difference classifier,
// scope inference and the guard read, each as Coraza v3.8 reads it; the
// rows that say so are compiled too, after rules for them to name.
func TestExclusions(t *testing.T) {
	const rules = `SecRule ARGS "@rx a" "id:942100,phase:2,pass,nolog,tag:attack-sqli,msg:'SQL Injection'"
SecRule ARGS "@rx b" "id:942190,phase:2,pass,nolog,tag:attack-sqli,msg:'SQL Injection'"
SecRule ARGS "@rx c" "id:941100,phase:2,pass,nolog,tag:attack-xss,msg:'XSS Attack'"
`
	const ctl = `SecRule REQUEST_FILENAME "@streq /x" "id:10001,phase:1,pass,nolog,%s"`
	// Each want is one exclusion: its line in the row's text, then what
	// show prints.
	tests := []struct {
		name string
		text string
		want []string
		// compiles is false where Coraza refuses the text: the reading
		// of a ruleset that never loads only has to be harmless.
		compiles bool
	}{
		{"ctl by ID", fmt.Sprintf(ctl, "ctl:ruleRemoveById=942100"),
			[]string{"1 ctl:ruleRemoveById ids=[942100] rule=10001 link=0 last when [0 path @streq /x]"}, true},
		{"ctl by range", fmt.Sprintf(ctl, "ctl:ruleRemoveById=942100-942199"),
			[]string{"1 ctl:ruleRemoveById ids=[942100-942199] rule=10001 link=0 last when [0 path @streq /x]"}, true},
		// Coraza takes quotes and white space off the whole value...
		{"ctl value quoted whole", fmt.Sprintf(ctl, "ctl:'ruleRemoveById=942100'"),
			[]string{"1 ctl:ruleRemoveById ids=[942100] rule=10001 link=0 last when [0 path @streq /x]"}, true},
		{"ctl value after a space", fmt.Sprintf(ctl, "ctl: ruleRemoveById=942100"),
			[]string{"1 ctl:ruleRemoveById ids=[942100] rule=10001 link=0 last when [0 path @streq /x]"}, true},
		// ...but not off the ID after '=', and a ctl names one ID or one
		// range: these compile and remove nothing (TestCtlQuotesAsCoraza).
		{"ctl ID quoted after =", fmt.Sprintf(ctl, "ctl:ruleRemoveById='942100'"),
			[]string{"1 ctl:ruleRemoveById ids=[] rule=10001 link=0 last when [0 path @streq /x]"}, true},
		{"ctl ID list", fmt.Sprintf(ctl, "ctl:ruleRemoveById=942100 942190"),
			[]string{"1 ctl:ruleRemoveById ids=[] rule=10001 link=0 last when [0 path @streq /x]"}, true},
		{"ctl by tag", fmt.Sprintf(ctl, "ctl:ruleRemoveByTag=attack-sqli"),
			[]string{"1 ctl:ruleRemoveByTag tag=attack-sqli rule=10001 link=0 last when [0 path @streq /x]"}, true},
		{"ctl by message", fmt.Sprintf(ctl, "ctl:ruleRemoveByMsg=XSS Attack"),
			[]string{`1 ctl:ruleRemoveByMsg msg="XSS Attack" rule=10001 link=0 last when [0 path @streq /x]`}, true},
		{"several ctl, targets with a key and a pattern", fmt.Sprintf(ctl, "ctl:ruleRemoveTargetById=942100;ARGS:foo,ctl:ruleRemoveTargetByTag=attack-xss;REQUEST_COOKIES:/^sess/,ctl:ruleRemoveTargetByMsg=XSS Attack;ARGS"),
			[]string{
				"1 ctl:ruleRemoveTargetById ids=[942100] targets=[ARGS:foo] rule=10001 link=0 last when [0 path @streq /x]",
				"1 ctl:ruleRemoveTargetByTag tag=attack-xss targets=[REQUEST_COOKIES:/^sess/] rule=10001 link=0 last when [0 path @streq /x]",
				`1 ctl:ruleRemoveTargetByMsg msg="XSS Attack" targets=[ARGS] rule=10001 link=0 last when [0 path @streq /x]`,
			}, true},
		{"ctl by a range of IDs on targets", fmt.Sprintf(ctl, "ctl:ruleRemoveTargetById=942100-942199;REQUEST_HEADERS:User-Agent"),
			[]string{"1 ctl:ruleRemoveTargetById ids=[942100-942199] targets=[REQUEST_HEADERS:User-Agent] rule=10001 link=0 last when [0 path @streq /x]"}, true},
		// The ctl is on the last link: every link's condition holds when it
		// runs. Continued lines, a comment inside them, as Coraza reads.
		{"a chain, continued over lines", `SecRule REQUEST_HEADERS:Host "@streq shop.example" "id:10002,phase:1,pass,nolog,chain"
    SecRule REQUEST_URI "@beginsWith /api/" \
# a comment inside a continuation is skipped
        "t:none,\
        ctl:ruleRemoveTargetById=942100;ARGS:q"`,
			[]string{"2 ctl:ruleRemoveTargetById ids=[942100] targets=[ARGS:q] rule=10002 link=1 last when [0 host @streq shop.example] [1 uri @beginswith /api/]"}, true},
		// On the first link it runs when that link matches, whatever the
		// others do: only that link's condition holds.
		{"ctl on a chain's first link", `SecRule REQUEST_FILENAME "@beginsWith /api" "id:10003,phase:1,pass,nolog,chain,ctl:ruleRemoveById=942100"
    SecRule REQUEST_HEADERS:host "@rx ^shop\.example$" "t:none"`,
			[]string{"1 ctl:ruleRemoveById ids=[942100] rule=10003 link=0 when [0 path @beginswith /api]"}, true},
		{"negated, implicit and other conditions", `SecRule REQUEST_METHOD|ARGS "!@streq GET" "id:10004,phase:1,pass,nolog,chain"
    SecRule REQUEST_BASENAME "^index" "chain"
    SecRule SERVER_NAME "@endsWith .example" "ctl:ruleRemoveByTag=attack-xss"`,
			[]string{"3 ctl:ruleRemoveByTag tag=attack-xss rule=10004 link=2 last when [0 other !@streq GET] [1 basename @rx ^index] [2 host @endswith .example]"}, true},
		{"a SecAction", `SecAction "id:10005,phase:1,pass,nolog,ctl:ruleRemoveById=941100"`,
			[]string{"1 ctl:ruleRemoveById ids=[941100] rule=10005 link=0 last when []"}, true},

		{"SecRuleRemoveById IDs and ranges", "SecRuleRemoveById 942100 941100-941199",
			[]string{"1 SecRuleRemoveById ids=[942100 941100-941199] rule=0 link=0 last when []"}, true},
		{"SecRuleRemoveById quoted whole", `SecRuleRemoveById "942100 942190"`,
			[]string{"1 SecRuleRemoveById ids=[942100 942190] rule=0 link=0 last when []"}, true},
		{"SecRuleRemoveById one ID quoted", `SecRuleRemoveById 942100 "942190"`,
			[]string{"1 SecRuleRemoveById ids=[942100] rule=0 link=0 last when []"}, false},
		{"directive names in any case", "secruleremovebyid 942100\nSECRULEREMOVEBYTAG attack-xss",
			[]string{"1 SecRuleRemoveById ids=[942100] rule=0 link=0 last when []", "2 SecRuleRemoveByTag tag=attack-xss rule=0 link=0 last when []"}, true},
		{"SecRuleRemoveByTag quoted", `SecRuleRemoveByTag "attack-sqli"`,
			[]string{"1 SecRuleRemoveByTag tag=attack-sqli rule=0 link=0 last when []"}, true},
		{"SecRuleRemoveByMsg", `SecRuleRemoveByMsg "XSS Attack"`,
			[]string{`1 SecRuleRemoveByMsg msg="XSS Attack" rule=0 link=0 last when []`}, true},
		{"SecRuleUpdateTargetById, targets taken away", `SecRuleUpdateTargetById 942100 "!ARGS:foo|!REQUEST_COOKIES:/^(sess|tok)/|!REQUEST_HEADERS:'/^x-a\/b/'"`,
			[]string{`1 SecRuleUpdateTargetById ids=[942100] targets=[!ARGS:foo !REQUEST_COOKIES:/^(sess|tok)/ !REQUEST_HEADERS:/^x-a\/b/] rule=0 link=0 last when []`}, true},
		// Every field before the targets is an ID or a range.
		{"SecRuleUpdateTargetById, IDs and a range", `SecRuleUpdateTargetById 942100-942199 941100 "!ARGS:foo"`,
			[]string{"1 SecRuleUpdateTargetById ids=[942100-942199 941100] targets=[!ARGS:foo] rule=0 link=0 last when []"}, true},
		// Coraza drops the quotes around the whole arguments, then splits:
		// 942190" is no ID, and only 942100 is changed.
		{"SecRuleUpdateTargetById, a quoted ID list", `SecRuleUpdateTargetById "942100 942190" "!ARGS:foo"`,
			[]string{"1 SecRuleUpdateTargetById ids=[942100] targets=[!ARGS:foo] rule=0 link=0 last when []"}, true},
		{"SecRuleUpdateTargetById adding a target", `SecRuleUpdateTargetById 942100 "ARGS_NAMES|&ARGS"`,
			[]string{"1 SecRuleUpdateTargetById ids=[942100] targets=[ARGS_NAMES &ARGS] rule=0 link=0 last when []"}, true},
		{"SecRuleUpdateTargetByTag", `SecRuleUpdateTargetByTag "attack-sqli" "!ARGS:foo"`,
			[]string{"1 SecRuleUpdateTargetByTag tag=attack-sqli targets=[!ARGS:foo] rule=0 link=0 last when []"}, true},
		{"SecRuleUpdateTargetByMsg", `SecRuleUpdateTargetByMsg "XSS Attack" "!ARGS:foo"`,
			[]string{`1 SecRuleUpdateTargetByMsg msg="XSS Attack" targets=[!ARGS:foo] rule=0 link=0 last when []`}, true},

		{"not exclusions", `SecRuleEngine On
SecRule ARGS "@rx x" "id:10006,phase:1,pass,nolog,ctl:ruleEngine=Off,setvar:tx.a=1"
SecRuleUpdateActionById 942100 "pass"`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := rules + tt.text + "\n"
			rs := &Ruleset{Files: []File{{Name: "t.conf", Content: []byte(text)}}}
			var got []string
			for _, e := range rs.Exclusions() {
				if e.File != "t.conf" {
					t.Errorf("file %q", e.File)
				}
				e.Line -= strings.Count(rules, "\n")
				got = append(got, show(e))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("read\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			compiled, err := LoadFS(fstest.MapFS{"t.conf": {Data: []byte(text)}}, "t.conf", "t.conf")
			if (err == nil) != tt.compiles {
				t.Errorf("compiles: %v, want %v", err, tt.compiles)
			}
			if err == nil {
				compiled.Retire()
			}
		})
	}
}

// show prints what a table row of TestExclusions compares.
func show(e Exclusion) string {
	s := fmt.Sprintf("%d %s", e.Line, e.Kind)
	switch e.Kind.By() {
	case ByID:
		s += fmt.Sprintf(" ids=%v", e.IDs)
	case ByTag:
		s += " tag=" + e.Tag
	case ByMsg:
		s += fmt.Sprintf(" msg=%q", e.Msg)
	}
	if e.Kind.Targets() {
		s += fmt.Sprintf(" targets=%v", e.Targets)
	}
	s += fmt.Sprintf(" rule=%d link=%d", e.Rule, e.Link)
	if e.Last {
		s += " last"
	}
	s += " when ["
	subjects := map[Subject]string{OnOther: "other", OnHost: "host", OnPath: "path", OnURI: "uri", OnBasename: "basename"}
	for i, c := range e.Conditions {
		if i > 0 {
			s += "] ["
		}
		neg := ""
		if c.Negated {
			neg = "!"
		}
		s += fmt.Sprintf("%d %s %s%s %s", c.Link, subjects[c.Subject], neg, c.Operator, c.Arg)
	}
	return s + "]"
}

// TestCtlQuotesAsCoraza shows the reading TestExclusions holds to: Coraza
// takes quotes and spaces off a ctl action's whole value, not off the ID
// after '=', and a ctl names one ID or range, not a list.
func TestCtlQuotesAsCoraza(t *testing.T) {
	for _, c := range []struct {
		ctl     string
		removes bool
	}{
		{"ctl:ruleRemoveById=1", true},
		{"ctl:'ruleRemoveById=1'", true},
		{"ctl: ruleRemoveById=1", true},
		{"ctl:ruleRemoveById=1-2", true},
		{"ctl:ruleRemoveById='1'", false},
		{"ctl:ruleRemoveById=1 2", false},
	} {
		src := "SecRuleEngine On\nSecAction \"id:9,phase:1,pass,nolog," + c.ctl + "\"\nSecRule ARGS \"@streq a\" \"id:1,phase:1,deny,status:403\"\n"
		rs, err := LoadFS(fstest.MapFS{"a.conf": {Data: []byte(src)}}, "a.conf", "a.conf")
		if err != nil {
			t.Fatalf("%s: %v", c.ctl, err)
		}
		tx := rs.WAF().NewTransaction()
		tx.ProcessURI("/?q=a", "GET", "HTTP/1.1")
		removed := tx.ProcessRequestHeaders() == nil
		tx.Close()
		rs.Retire()
		if removed != c.removes {
			t.Errorf("%s: rule 1 removed %v, want %v", c.ctl, removed, c.removes)
		}
		es := rs.Exclusions()
		if read := len(es) == 1 && slices.Equal(rs.RulesOf(es[0]), []int{1}); read != c.removes {
			t.Errorf("%s: read as removing rule 1: %v, Coraza: %v", c.ctl, read, c.removes)
		}
	}
}
