package gates

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/ruleset/rulesettest"
	"github.com/wafcanary/wafcanary/suite"
)

// A CRS upgrade changes the CRS's rules, which the guard lets through;
// taking the blocking evaluation away or raising the threshold is still
// refused, whichever CRS either side reads.
func TestGuardOnACRSUpgrade(t *testing.T) {
	marker := "# wafcanary: crs " + rulesettest.CRSRules(t, rulesettest.CRSModule) + "\n"
	old := loadText(t, marker+before+crs)
	embedded := loadText(t, before+crs)
	tests := []struct {
		name       string
		base, cand string // ruleset texts; "old" for 4.22.0 from files, "" for the embedded CRS
		want       []string
	}{
		{"4.22.0 to the embedded 4.25.0", "old", "", nil},
		{"the embedded 4.25.0 back to 4.22.0", "", "old", nil},
		{"an upgrade that removes 949110", "old", before + crs + "SecRuleRemoveById 949110\n", []string{"removes 949110, the inbound anomaly evaluation"}},
		{"an upgrade that raises the threshold", "old", before + `SecAction "id:900110,phase:1,pass,nolog,setvar:tx.inbound_anomaly_score_threshold=50"` + "\n" + crs,
			[]string{"raises the inbound anomaly threshold to 50"}},
	}
	pick := func(t *testing.T, text string) *ruleset.Ruleset {
		switch text {
		case "old":
			return old
		case "":
			return embedded
		}
		return loadText(t, text)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Guard(pick(t, tt.base), pick(t, tt.cand), DefaultConfig)
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

// The suite runs the candidate's CRS's regression tests: those beside a
// CRS read from files, the embedded ones otherwise.
func TestSuiteTestsOfTheCandidatesCRS(t *testing.T) {
	rules := rulesettest.CRSRules(t, rulesettest.CRSModule)
	has := func(cases []suite.Case, rule int) bool {
		return slices.ContainsFunc(cases, func(c suite.Case) bool { return c.RuleID == rule })
	}
	cases, from, err := SuiteTests(loadText(t, "# wafcanary: crs "+rules+"\n"+before+crs))
	if err != nil {
		t.Fatal(err)
	}
	// Why: 4.22.0 has no 920640 (4.23 added it), nor its test.
	if !strings.HasPrefix(from, "CRS 4.22.0 from ") || !strings.HasSuffix(from, "v4@v4.22.0/tests") || len(cases) < 4000 || has(cases, 920640) || !has(cases, 920620) {
		t.Errorf("4.22.0 from files: %d cases from %q (920640: %v)", len(cases), from, has(cases, 920640))
	}
	cases, from, err = SuiteTests(loadText(t, before+crs))
	if err != nil {
		t.Fatal(err)
	}
	if from != "CRS 4.25.0 (embedded)" || !has(cases, 920640) {
		t.Errorf("embedded: %d cases from %q (920640: %v)", len(cases), from, has(cases, 920640))
	}
}

// Live probes judge attacks from the tests of the candidate's CRS, as the
// suite gate does: a candidate reading a CRS directory whose tests/ hold
// one attack case of 942100 gives that case alone, and the other way
// round the embedded CRS's cases are judged. (With the baseline's tests,
// CRS 4.22.0's case 933100-1, which 4.25.0 no longer blocks, rolled the
// upgrade back in node TestCRSUpgradeRolledBackThenTunedAndPromoted.)
func TestCRSProbesFromTheCandidatesCRS(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(rulesettest.CRSRules(t, rulesettest.CRSModule), filepath.Join(dir, "rules")); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"tests/REQUEST-911-METHOD-ENFORCEMENT/911100.yaml": "---\nrule_id: 911100\ntests: []\n",
		"tests/REQUEST-942-APPLICATION-ATTACK-SQLI/942100.yaml": `---
rule_id: 942100
tests:
  - test_id: 77
    stages:
      - input:
          dest_addr: 127.0.0.1
          method: GET
          port: 80
          uri: "/get?wafcanary=1%27%20OR%20%271%27%3D%271%27--"
          headers:
            User-Agent: "OWASP CRS test agent"
            Host: localhost
        output:
          log:
            expect_ids: [942100]
`,
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	marker := "# wafcanary: crs " + filepath.Join(dir, "rules") + "\n"
	crafted := loadText(t, marker+before+crs)
	embedded := shippedBaseline(t)
	probes := CRSProbes(embedded, crafted)
	if len(probes) != 1 || probes[0].ID != "942100-77" || probes[0].RuleID != 942100 {
		t.Fatalf("probes of the candidate's CRS: %+v", probes)
	}
	if n := len(CRSProbes(crafted, embedded)); n < 20 {
		t.Errorf("the crafted CRS's baseline probing the embedded CRS: %d probes, want the embedded CRS's cases", n)
	}
}
