package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/node"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/ruleset/rulesettest"
)

// crs422Baseline is the shipped baseline on CRS 4.22.0's files, with one
// exclusion of a rule 4.23 changed.
func crs422Baseline(t *testing.T) string {
	t.Helper()
	return rulesettest.Baseline(t, rulesettest.CRSRules(t, rulesettest.CRSModule), "\nSecRuleUpdateTargetById 941120 \"!ARGS:comment\"\n")
}

// crs diff and validate show what an upgrade from CRS 4.22.0 (files) to
// the embedded 4.25.0 changes; the facts are checked against both
// versions' rule files (ruleset.TestDiffCRSUpgrade).
func TestCRSDiffCmd(t *testing.T) {
	base := crs422Baseline(t)
	tests := []commandCase{
		{"an upgrade", []string{"crs", "diff", base, "embedded:baseline.conf"}, exitOK, []string{
			`^baseline   \S+baseline-crs\.conf  CRS 4\.22\.0 from \S+v4@v4\.22\.0/rules$`,
			`^candidate  embedded:baseline\.conf  CRS 4\.25\.0 \(embedded\)$`,
			`^summary    CRS 4\.22\.0 -> 4\.25\.0: 11 rules added, 0 removed, \d+ changed \(\d+ paranoia level, .*\); 1 exclusion affected$`,
			`^added \(11\)$`,
			`^  920640 +PL1 +phase 2 +block +@owasp_crs/REQUEST-920-PROTOCOL-ENFORCEMENT\.conf:\d+$`,
			`^  920650 +PL\d +phase \d +\w+ +@owasp_crs/REQUEST-920-PROTOCOL-ENFORCEMENT\.conf:\d+$`,
			`^  941120 +@owasp_crs/REQUEST-941-APPLICATION-ATTACK-XSS\.conf:\d+ +paranoia_level 2 -> 1, `,
			`^exclusions of the baseline affected \(1\)$`,
			`^  baseline-crs\.conf:\d+ SecRuleUpdateTargetById covers changed 941120$`,
		}, ""},
		// Why: the same ruleset on both sides changes nothing.
		{"no change", []string{"crs", "diff", "embedded:baseline.conf", "embedded:baseline.conf"}, exitOK, []string{
			`^summary    CRS 4\.25\.0 on both: 0 rules added, 0 removed, 0 changed$`,
		}, ""},
		{"validate shows it", []string{"validate", "--crs-suite=false", "--baseline", base, "--candidate", "embedded:baseline.conf"}, exitOK, []string{
			`^baseline   \S+  version [0-9a-f]{16}, \d+ rules, CRS 4\.22\.0 from \S+$`,
			`^candidate  embedded:baseline\.conf  version [0-9a-f]{16}, \d+ rules, CRS 4\.25\.0 \(embedded\)$`,
			`^rules      CRS 4\.22\.0 -> 4\.25\.0: 11 rules added, `,
			`^  920640 +PL1 +phase 2 +block `,
			`^result     PASS$`,
		}, ""},
		{"one argument", []string{"crs", "diff", base}, exitUsage, nil, "want BASE and CAND, got 1 arguments"},
		{"no such file", []string{"crs", "diff", base, "nope.conf"}, exitUsage, nil, "nope.conf: no such file"},
		{"does not compile", []string{"crs", "diff", base, "testdata/rulesets/broken.conf"}, exitInvalidRuleset, nil, "testdata/rulesets/broken.conf:3:"},
		{"bad output", []string{"crs", "diff", "-o", "yaml", base, base}, exitUsage, nil, "want text or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCommand(t, tt.args, tt.exit, tt.lines, tt.err)
		})
	}
}

func TestCRSDiffJSON(t *testing.T) {
	base := crs422Baseline(t)
	out, _, err := runRoot(t, context.Background(), "crs", "diff", "-o", "json", base, "embedded:baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Baseline, Candidate, Summary string
		ruleset.RuleDiff
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if got.RuleDiff.Baseline.Version != "4.22.0" || got.RuleDiff.Candidate.Version != "4.25.0" || got.Candidate != "embedded:baseline.conf" {
		t.Errorf("versions %+v -> %+v, candidate %q", got.RuleDiff.Baseline, got.RuleDiff.Candidate, got.Candidate)
	}
	if !slices.ContainsFunc(got.Added, func(r ruleset.RuleRef) bool { return r.ID == 920640 && r.Paranoia == 1 && r.Action == "block" }) {
		t.Errorf("920640 not added at PL1 with block: %+v", got.Added)
	}
	if !strings.Contains(out, `"field": "paranoia_level",`) || !strings.HasPrefix(got.Summary, "CRS 4.22.0 -> 4.25.0: 11 rules added") {
		t.Errorf("summary %q; output:\n%s", got.Summary, out)
	}
}

// tune on a baseline whose CRS comes from files writes the candidate
// beside the baseline's own files, not the CRS's (the marker line, copied
// into the candidate, serves those), and the candidate compiles on the
// same CRS.
func TestTuneOnACRSFromFiles(t *testing.T) {
	base, err := ruleset.Load(crs422Baseline(t))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Retire()
	fp := demo.NoteFalsePositive()
	rec := capture.Record{ID: "r1", Method: fp.Method, Host: "shop.example", URI: fp.Path, Proto: "HTTP/1.1",
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "User-Agent": {"Mozilla/5.0"}}, Body: fp.Body}
	_, res := tuned(t, base, rec)
	dir := t.TempDir()
	cand := filepath.Join(dir, "c.conf")
	if err := writeTuned(cand, filepath.Join(dir, "c.cases.yaml"), res); err != nil {
		t.Fatal(err)
	}
	if names := namesIn(t, dir); names != "c.cases.yaml c.conf" {
		t.Errorf("the directory holds %v, want the candidate and its cases", names)
	}
	rs, err := ruleset.Load(cand)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	if rs.CRS.Version != "4.22.0" || len(rs.Rules) <= len(base.Rules) {
		t.Errorf("the candidate: %s, %d rules (the baseline %d)", rs.CRS, len(rs.Rules), len(base.Rules))
	}
}

// A CRS upgrade's new blocks, seen in shadow, are tuned as the operator
// would: explain says the candidate would have blocked the request;
// tune writes the candidate (not the served baseline) with the exception
// its traffic needs, and says so; validate passes it with its cases.
func TestTuneACandidatesShadowBlock(t *testing.T) {
	clearEnv(t)
	base := rulesettest.Baseline(t, rulesettest.CRSRules(t, rulesettest.CRSModule), "")
	tn := startNode(t, quietLogger(), func(c *node.Config) {
		c.Capture.Enabled = true
		c.Rulesets.Baseline = base
	})
	run := func(args ...string) string {
		t.Helper()
		out, _, err := runRoot(t, context.Background(), append(args, "--admin", tn.admin)...)
		if err != nil {
			t.Fatalf("%s: exit %d, %v\n%s", args[0], exitCode(err), err, out)
		}
		return out
	}
	// An upgrade takes the crs-upgrade preset: a week in shadow, where
	// every client is served by the baseline and the candidate judges.
	out := run("start", "--candidate", "embedded:baseline.conf", "--reason", "CRS 4.22.0 -> 4.25.0")
	if !strings.Contains(out, "preset      crs-upgrade: the candidate changes the CRS from 4.22.0 to 4.25.0 (--preset default for rollout.steps); shadow 168h0m0s/20000 requests -> 1% 24h0m0s/5000 requests") {
		t.Fatalf("start does not say the preset:\n%s", out)
	}
	// Shadow sampling is 100% by default: the chunked, untyped body is
	// the candidate's new block (920640).
	req, _ := http.NewRequest(http.MethodPost, tn.proxy+"/api/notes", io.MultiReader(strings.NewReader("remember "), strings.NewReader("the milk")))
	req.Host = "shop.example.com"
	req.Header.Set("X-Request-ID", "untyped-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden {
		t.Fatal("the baseline blocked the untyped body: not the upgrade's new block")
	}
	out = ""
	for range 250 {
		if o, _, err := runRoot(t, context.Background(), "explain", "untyped-1", "--admin", tn.admin); err == nil && strings.Contains(o, "capture (redacted)") {
			out = o
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out, "request untyped-1: served by the baseline; the candidate, judging it in shadow, would have blocked it (403)") || !strings.Contains(out, "920640") {
		t.Fatalf("explain:\n%s", out)
	}
	dir := t.TempDir()
	cand, cases := filepath.Join(dir, "upgrade.conf"), filepath.Join(dir, "upgrade.cases.yaml")
	out = run("tune", "untyped-1", "--output", cand, "--cases", cases)
	for _, want := range []string{"wrote " + cand + ": the candidate ", "ctl:ruleRemoveTargetById=920640;REQUEST_BODY_LENGTH", "with exceptions for its new blocks on shop.example.com/api/notes"} {
		if !strings.Contains(out, want) {
			t.Errorf("tune lacks %q:\n%s", want, out)
		}
	}
	b, _ := os.ReadFile(cand)
	if strings.Contains(string(b), "# wafcanary: base ") || !strings.Contains(string(b), "tune`") {
		t.Errorf("the tuned upgrade records a base it was not written from:\n%s", b)
	}
	m := regexp.MustCompile(`(?m)^  wafcanary validate (.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("tune prints no validate command:\n%s", out)
	}
	if !strings.Contains(m[1], "--baseline "+base) {
		t.Errorf("validate against %q, want the served baseline %s", m[1], base)
	}
	vout, _, err := runRoot(t, context.Background(), append([]string{"validate", "--crs-suite=false"}, strings.Fields(m[1])...)...)
	if err != nil {
		t.Fatalf("validate: exit %d, %v\n%s", exitCode(err), err, vout)
	}
}

// tune sends a removed rule's own payloads from the tests of the CRS the
// ruleset reads, not the embedded CRS's: a CRS directory whose tests/
// beside rules/ hold one test of 941100, with a payload of its own, gives
// exactly that payload to the exclusion's check and cases.
func TestTunePayloadsFromTheRulesetsCRS(t *testing.T) {
	rules := rulesettest.CRSRules(t, rulesettest.CRSModule)
	dir := t.TempDir()
	if err := os.Symlink(rules, filepath.Join(dir, "rules")); err != nil {
		t.Fatal(err)
	}
	const payload = "<script>document.location='//wafcanary.invalid/own-test-payload'</script>"
	test := `---
rule_id: 941100
tests:
  - test_id: 1
    stages:
      - input:
          dest_addr: 127.0.0.1
          method: GET
          port: 80
          uri: "/get?x=` + strings.ReplaceAll(payload, "'", "%27") + `"
          headers:
            User-Agent: "OWASP CRS test agent"
            Host: localhost
        output:
          log:
            expect_ids: [941100]
`
	for name, content := range map[string]string{
		"tests/REQUEST-911-METHOD-ENFORCEMENT/911100.yaml":     "---\nrule_id: 911100\ntests: []\n",
		"tests/REQUEST-941-APPLICATION-ATTACK-XSS/941100.yaml": test,
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base, err := ruleset.Load(rulesettest.Baseline(t, filepath.Join(dir, "rules"), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Retire()
	fp := demo.NoteFalsePositive()
	_, res := tuned(t, base, capture.Record{ID: "r1", Method: fp.Method, Host: "shop.example", URI: fp.Path, Proto: "HTTP/1.1",
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "User-Agent": {"Mozilla/5.0"}}, Body: fp.Body})
	if len(res.Checks) != 1 || res.Checks[0].Rule != 941100 || res.Checks[0].Tests != 1 || res.Checks[0].Checked != 1 {
		t.Fatalf("checks %+v: want 941100's one test of this CRS", res.Checks)
	}
	if !slices.ContainsFunc(res.Cases.MustBlock, func(c gates.Case) bool { return strings.Contains(c.Body, url.QueryEscape(payload)) }) {
		t.Errorf("no must_block case sends the CRS's own payload: %+v", res.Cases.MustBlock)
	}
}
