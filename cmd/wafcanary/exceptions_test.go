package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// exceptionsRuleset writes a ruleset on the embedded CRS with three
// exceptions: one owned, with an expiry date (given) and a ticket; one
// naming 942441, which CRS 4.22 deleted; and a directive owned in the
// comment above it, with no expiry.
func exceptionsRuleset(t *testing.T, expires string) string {
	t.Helper()
	text := `Include @coraza.conf-recommended
SecRuleEngine On
Include @crs-setup.conf.example
SecRule REQUEST_FILENAME "@streq /support/tickets" \
    "id:10000,phase:1,pass,t:none,nolog,\
    tag:'wafcanary/owner=alice',tag:'wafcanary/expires=` + expires + `',tag:'wafcanary/ticket=OPS-12',\
    ctl:ruleRemoveTargetById=930120;ARGS:message"
SecRule REQUEST_HEADERS:Host "@streq legacy.example" "id:10001,phase:1,pass,t:none,nolog,ctl:ruleRemoveById=942441"
Include @owasp_crs/*.conf
# wafcanary/owner=bob
SecRuleUpdateTargetById 942100 "!ARGS:legacy_q"
`
	p := filepath.Join(t.TempDir(), "exceptions.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// exceptions -o json keeps the field names scripts and alerts read, per
// exception; read from a file, nothing says where they came from.
func TestExceptionsJSON(t *testing.T) {
	clearEnv(t)
	// A date two days gone by the command's own clock: expired whenever
	// the test runs.
	gone := time.Now().UTC().AddDate(0, 0, -2).Format(time.DateOnly)
	file := exceptionsRuleset(t, gone)
	out, _, err := runRoot(t, context.Background(), "exceptions", "--ruleset", file, "-o", "json")
	if err != nil {
		t.Fatalf("exit %d: %v", exitCode(err), err)
	}
	var got struct {
		Baseline   string                       `json:"baseline_version"`
		Now        time.Time                    `json:"now"`
		Exceptions []map[string]json.RawMessage `json:"exceptions"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Baseline == "" || got.Now.IsZero() || len(got.Exceptions) != 3 {
		t.Fatalf("%s", out)
	}
	for _, e := range got.Exceptions {
		for _, k := range []string{"id", "file", "line", "rules", "targets", "conditions", "origin", "owner", "expires", "ticket", "dangling", "status",
			"measured", "judged", "would_block", "would_block_rules", "last_would_block", "would_block_requests"} {
			if _, ok := e[k]; !ok {
				t.Errorf("exception %s: no %q field", e["id"], k)
			}
		}
	}
	field := func(i int, k string) string {
		var b bytes.Buffer
		_ = json.Compact(&b, got.Exceptions[i][k])
		return b.String()
	}
	for _, c := range []struct {
		i         int
		key, want string
	}{
		{0, "id", `"10000"`}, {0, "file", `"exceptions.conf"`}, {0, "line", "4"}, {0, "rules", `["930120"]`},
		{0, "targets", `["ARGS:message"]`}, {0, "owner", `"alice"`}, {0, "expires", `"` + gone + `"`}, {0, "ticket", `"OPS-12"`},
		{0, "status", `"expired"`}, {0, "origin", "null"}, {0, "dangling", "[]"},
		// Read from a file: nothing measured.
		{0, "measured", "false"}, {0, "would_block", "0"}, {0, "last_would_block", "null"}, {0, "would_block_rules", "[]"},
		{1, "id", `"10001"`}, {1, "dangling", `["942441"]`}, {1, "status", `"dangling"`}, {1, "owner", `""`},
		{2, "line", "11"}, {2, "owner", `"bob"`}, {2, "targets", `["!ARGS:legacy_q"]`}, {2, "conditions", "[]"}, {2, "status", `"active"`},
	} {
		if got := field(c.i, c.key); got != c.want {
			t.Errorf("exception %d %s: %s, want %s", c.i, c.key, got, c.want)
		}
	}
	var conds []map[string]any
	_ = json.Unmarshal(got.Exceptions[1]["conditions"], &conds)
	if len(conds) != 1 || conds[0]["on"] != "host" || conds[0]["variable"] != "REQUEST_HEADERS:Host" || conds[0]["operator"] != "@streq" || conds[0]["argument"] != "legacy.example" {
		t.Errorf("conditions of 10001: %v", conds)
	}

	// The text form: a block per exception.
	text, _, err := runRoot(t, context.Background(), "exceptions", "--ruleset", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		": 3 exceptions (1 dangling, 1 expired, 0 stale)\n",
		"\n10000  expired  exceptions.conf:4\n  removes   ctl:ruleRemoveTargetById 930120, targets ARGS:message\n  when      REQUEST_FILENAME @streq /support/tickets\n",
		"  owner     alice, expires " + gone + " (expired), ticket OPS-12\n  origin    not known (read from a file, not a server)\n",
		"  dangling  942441: not loaded by this ruleset\n",
		"  when      every request\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
	if lines := strings.Split(text, "\n"); !slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "d") && strings.HasSuffix(l, "  active  exceptions.conf:11")
	}) {
		t.Errorf("no block for the directive:\n%s", text)
	}
}

// validate warns of dangling references and of exceptions without an
// owner or an expiry date, exit code unchanged; gates.strict_exceptions
// makes them a failed gate (exit 7). The shipped baseline has none.
func TestValidateAuditsExceptions(t *testing.T) {
	clearEnv(t)
	future := time.Now().UTC().AddDate(1, 0, 0).Format(time.DateOnly)
	file := exceptionsRuleset(t, future)
	ctx := context.Background()

	out, warn, err := runRoot(t, ctx, "validate", file)
	if err != nil {
		t.Fatalf("exit %d: %v\n%s", exitCode(err), err, out)
	}
	for _, want := range []string{
		"warning: " + file + ": exception 10001 (exceptions.conf:8) names 942441, which the ruleset does not load",
		"warning: " + file + ": exception 10001 (exceptions.conf:8) has no owner: add tag:'wafcanary/owner=NAME'",
		"has no expiry date: add a comment line right above it: # wafcanary/expires=YYYY-MM-DD",
	} {
		if !strings.Contains(warn, want) {
			t.Errorf("stderr lacks %q:\n%s", want, warn)
		}
	}
	if strings.Contains(warn, "exception 10000") {
		t.Errorf("10000 has owner and expiry, warned of:\n%s", warn)
	}

	strict := filepath.Join(t.TempDir(), "strict.yaml")
	if err := os.WriteFile(strict, []byte("gates:\n  strict_exceptions: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = runRoot(t, ctx, "validate", "-c", strict, file)
	if exitCode(err) != exitRefused || !strings.Contains(out, "FAIL "+file+": exception 10001 (exceptions.conf:8) names 942441") {
		t.Errorf("strict: exit %d (%v), want %d\n%s", exitCode(err), err, exitRefused, out)
	}
	if out, _, err := runRoot(t, ctx, "validate", "-c", strict, "embedded:baseline.conf"); err != nil {
		t.Errorf("strict, the shipped baseline: exit %d: %v\n%s", exitCode(err), err, out)
	}
}
