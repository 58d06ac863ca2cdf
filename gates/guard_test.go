package gates

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/wafcanary/wafcanary/ruleset"
)

// header is the shipped baseline's set-up; cases add their edit before
// (ctl: rules) or after (configure-time edits) the CRS rules include.
const (
	before = "Include @coraza.conf-recommended\nSecRuleEngine On\nInclude @crs-setup.conf.example\n" // lines 1-3
	crs    = "Include @owasp_crs/*.conf\n"
)

// The shipped baseline, compiled once for the package's tests, which only
// read it (the gates retire only what they compile); TestMain retires it.
var (
	baseOnce sync.Once
	baseRS   *ruleset.Ruleset
	baseErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if baseRS != nil {
		baseRS.Retire()
	}
	os.Exit(code)
}

func shippedBaseline(t *testing.T) *ruleset.Ruleset {
	t.Helper()
	baseOnce.Do(func() { baseRS, baseErr = ruleset.Load("../configs/rulesets/baseline.conf") })
	if baseErr != nil {
		t.Fatal(baseErr)
	}
	if baseRS.Closed() {
		t.Fatal("a test closed the shared baseline")
	}
	return baseRS
}

func loadText(t *testing.T, text string) *ruleset.Ruleset {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "candidate.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Retire)
	return rs
}

func TestGuard(t *testing.T) {
	// A baseline of CRS alone: the rows below are about CRS's own rules
	// (the shipped baseline's limits have TestGuardKeepsTheLimits).
	base := loadText(t, before+crs)
	tests := []struct {
		name string
		text string
		want []string // "line: substring", one per expected violation; none for a clean candidate
	}{
		{"baseline itself", before + crs, nil},
		{"scoped exclusion is fine", before + `SecRule REQUEST_FILENAME "@streq /x" "id:10000,phase:1,pass,nolog,ctl:ruleRemoveTargetById=930120;ARGS:message"` + "\n" + crs, nil},
		{"threshold at the ceiling is fine", before + `SecAction "id:900110,phase:1,pass,nolog,setvar:tx.inbound_anomaly_score_threshold=10"` + "\n" + crs, nil},
		{"remove by id", before + crs + "SecRuleRemoveById 949110\n", []string{"5: removes 949110, the inbound anomaly evaluation"}},
		// Why: a range hides the ID; 949000-949999 also covers 949111.
		{"remove by range", before + crs + "SecRuleRemoveById 920100 949000-949999\n", []string{"5: removes 949110", "5: removes 949111"}},
		{"remove by tag", before + crs + `SecRuleRemoveByTag "anomaly-evaluation"` + "\n", []string{"5: removes 949110 (by tag)", "5: removes 949111 (by tag)", "5: removes 959100 (by tag)"}},
		{"update action", before + crs + `SecRuleUpdateActionById 949110 "pass"` + "\n", []string{"5: changes 949110"}},
		{"ctl remove at run time", before + `SecRule REQUEST_URI "@beginsWith /api/" "id:10001,phase:1,pass,nolog,ctl:ruleRemoveById=949110"` + "\n" + crs, []string{"4: removes 949110 at run time"}},
		// Why: Coraza takes quotes and spaces off a ctl's whole value; a
		// pattern over the text missed both, and let 949110 go.
		{"ctl takes the score from the evaluation", before + `SecRule REQUEST_URI "@beginsWith /api/" "id:10005,phase:1,pass,nolog,ctl:ruleRemoveTargetById=949110;TX:blocking_inbound_anomaly_score"` + "\n" + crs, []string{"4: takes a target from 949110 at run time"}},
		{"ctl narrows a limit by argument", before + `SecRule REQUEST_URI "@beginsWith /upload" "id:10006,phase:1,pass,nolog,ctl:ruleRemoveTargetById=9104;ARGS:avatar"` + "\n" + crs, nil},
		{"ctl remove, its value quoted", before + `SecRule REQUEST_URI "@beginsWith /api/" "id:10003,phase:1,pass,nolog,ctl:'ruleRemoveById=949110'"` + "\n" + crs, []string{"4: removes 949110 at run time"}},
		{"ctl remove after a space", before + `SecRule REQUEST_URI "@beginsWith /api/" "id:10004,phase:1,pass,nolog,ctl: ruleRemoveByTag=anomaly-evaluation"` + "\n" + crs,
			[]string{"4: removes 949110 at run time", "4: removes 949111 at run time", "4: removes 959100 at run time"}},
		{"ctl engine off", before + `SecRule REQUEST_URI "@beginsWith /api/" "id:10002,phase:1,pass,nolog,ctl:ruleEngine=Off"` + "\n" + crs, []string{"4: switches the rule engine to Off"}},
		{"engine detection-only", before + crs + "SecRuleEngine DetectionOnly\n", []string{"5: leaves the rule engine DetectionOnly"}},
		// Why: the recommended conf sets DetectionOnly; forgetting to turn it On is the classic mistake.
		{"engine never turned on", "Include @coraza.conf-recommended\nInclude @crs-setup.conf.example\n" + crs, []string{"1: leaves the rule engine DetectionOnly: the candidate would block nothing (set by the included file; add SecRuleEngine On after it)"}},
		{"threshold above the ceiling", before + `SecAction "id:900110,phase:1,pass,nolog,setvar:tx.inbound_anomaly_score_threshold=50"` + "\n" + crs, []string{"4: raises the inbound anomaly threshold to 50, above the ceiling of 10"}},
		{"blocking rules not loaded", before + "Include @owasp_crs/REQUEST-9[0-3]*.conf\n", []string{"0: does not load 949110", "0: does not load 949111", "0: does not load 959100", "0: does not load 980170"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Guard(base, loadText(t, tt.text), DefaultConfig)
			if len(got) != len(tt.want) {
				t.Fatalf("%d violations, want %d: %v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				line, sub, _ := strings.Cut(w, ": ")
				if s := got[i].String(); !strings.HasPrefix(s, "candidate.conf:"+line+":") || !strings.Contains(s, sub) {
					t.Errorf("violation %q, want line %s and %q", s, line, sub)
				}
			}
		})
	}
}

func TestShippedCandidatesPassTheGuard(t *testing.T) {
	base := shippedBaseline(t)
	for _, name := range []string{"candidate-exclusion.conf", "candidate-pl2.conf"} {
		cand, err := ruleset.Load("../configs/rulesets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if v := Guard(base, cand, DefaultConfig); len(v) != 0 {
			t.Errorf("%s: %v", name, v)
		}
		cand.Retire()
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The shipped baseline's limits, and the settings that switch inspection
// off or neuter scores without removing a rule, are refused in a
// candidate, whichever way they are taken away.
func TestGuardKeepsTheLimits(t *testing.T) {
	base := shippedBaseline(t)
	b, err := os.ReadFile("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	shipped := string(b)
	// edit puts text before the CRS rules include, and after it.
	edit := func(before, after string) string {
		return strings.Replace(shipped, crs, before+"\n"+crs, 1) + after + "\n"
	}
	tests := []struct {
		name, text string
		want       []string // substrings, one per violation
	}{
		{"the shipped baseline", shipped, nil},
		{"a scoped exclusion", edit(`SecRule REQUEST_FILENAME "@streq /x" "id:10000,phase:1,pass,nolog,ctl:ruleRemoveTargetById=930120;ARGS:message"`, ""), nil},
		{"a score incremented", edit(`SecRule ARGS:x "@streq y" "id:10001,phase:2,pass,nolog,setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'"`, ""), nil},
		{"a skip to a marker of its own", edit("SecRule REQUEST_FILENAME \"@streq /health\" \"id:10002,phase:1,pass,nolog,skipAfter:END-LOCAL\"\nSecMarker END-LOCAL", ""), nil},
		{"a skip past one CRS file", edit(`SecRule REQUEST_FILENAME "@streq /health" "id:10003,phase:2,pass,nolog,skipAfter:END-REQUEST-941-APPLICATION-ATTACK-XSS"`, ""), nil},
		{"the argument limit removed", edit("", "SecRuleRemoveById 9101-9102"), []string{"removes 9101, the query argument limit", "removes 9102, the body argument limit"}},
		{"the UTF-8 rules removed by a range", edit("", "SecRuleRemoveById 9100-9199"), []string{"removes 9100", "removes 9101", "removes 9102", "removes 9103", "removes 9104", "removes 9105", "removes 9106", "removes 9107"}},
		{"body parse errors let through", edit("", `SecRuleUpdateActionById 200002 "pass"`), []string{"changes 200002, the request body parse check"}},
		{"the limits left out", regexp.MustCompile(`(?s)SecRule ARGUMENTS_LIMIT_REACHED .*?"\n`).ReplaceAllString(shipped, ""), []string{"does not load 9101, 9102, which the baseline does: wafcanary's limits"}},
		{"body access off", edit("", "SecRequestBodyAccess Off"), []string{"turns request body access off: every body would reach the upstream unjudged"}},
		{"body access off at run time", edit(`SecRule REQUEST_FILENAME "@beginsWith /upload" "id:10005,phase:1,pass,nolog,ctl:requestBodyAccess=Off"`, ""), []string{"turns request body access off at run time"}},
		{"paranoia level 0", edit(`SecAction "id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=0"`, ""), []string{"sets tx.blocking_paranoia_level to 0: no CRS rule would block"}},
		{"the score reset", edit("", `SecRule REQUEST_FILENAME "@beginsWith /api" "id:10006,phase:2,pass,nolog,setvar:tx.blocking_inbound_anomaly_score=0"`), []string{"assigns tx.blocking_inbound_anomaly_score=0"}},
		{"a severity worth nothing", edit(`SecAction "id:10007,phase:1,pass,nolog,setvar:'tx.critical_anomaly_score=0'"`, ""), []string{"assigns tx.critical_anomaly_score=0"}},
		{"a skip past the blocking evaluation", edit(`SecRule REQUEST_FILENAME "@beginsWith /api" "id:10008,phase:2,pass,nolog,skipAfter:END-REQUEST-949-BLOCKING-EVALUATION"`, ""), []string{"skips to END-REQUEST-949-BLOCKING-EVALUATION, past the blocking evaluation"}},
		// Why: Coraza skips the rest of the phase when the marker is nowhere.
		{"a skip to no marker", edit(`SecRule REQUEST_FILENAME "@beginsWith /api" "id:10009,phase:2,pass,nolog,skipAfter:NOWHERE"`, ""), []string{"skips to NOWHERE"}},
		{"a skip to a marker after the CRS", edit(`SecRule REQUEST_FILENAME "@beginsWith /api" "id:10010,phase:2,pass,nolog,skipAfter:LATE"`, "SecMarker LATE"), []string{"skips to LATE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Guard(base, loadText(t, tt.text), DefaultConfig)
			if len(got) != len(tt.want) {
				t.Fatalf("%d violations, want %d: %v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].String(), w) {
					t.Errorf("violation %q, want %q", got[i], w)
				}
			}
		})
	}
}
