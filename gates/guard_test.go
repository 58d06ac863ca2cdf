package gates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/ruleset"
)

// header is the shipped baseline's set-up; cases add their edit before
// (ctl: rules) or after (configure-time edits) the CRS rules include.
const (
	before = "Include @coraza.conf-recommended\nSecRuleEngine On\nInclude @crs-setup.conf.example\n" // lines 1-3
	crs    = "Include @owasp_crs/*.conf\n"
)

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
	base, err := ruleset.Load("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Retire()
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
	base, _ := ruleset.Load("../configs/rulesets/baseline.conf")
	defer base.Retire()
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
