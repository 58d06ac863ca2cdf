package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/node"
)

// runRoot runs the wafcanary command line with args and returns what it
// wrote to standard output and standard error, and its error.
func runRoot(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// okLine is validate's report of a ruleset that compiles.
var okLine = regexp.MustCompile(`^ok   (\S+) version ([0-9a-f]{16}), (\d+) rules \((\d+) that log\), (\d+) files, (CRS \S+ \(embedded\)|CRS \S+ from \S+|no CRS)$`)

func TestValidateCmd(t *testing.T) {
	const pl2 = "../../configs/rulesets/candidate-pl2.conf"
	tests := []struct {
		name  string
		args  []string
		lines []string // regular expressions, one per output line, in order
		exit  int
		err   string // substring of the returned error
	}{
		{
			name: "shipped rulesets compile",
			args: []string{"validate", "embedded:baseline.conf", pl2},
			lines: []string{
				`^ok   embedded:baseline\.conf version [0-9a-f]{16}, \d+ rules \(\d+ that log\), \d+ files, CRS 4\.25\.0 \(embedded\)$`,
				`^ok   \.\./\.\./configs/rulesets/candidate-pl2\.conf version [0-9a-f]{16}, \d+ rules \(\d+ that log\), \d+ files, CRS 4\.25\.0 \(embedded\)$`,
			},
			exit: exitOK,
		},
		{
			// A failure does not stop the others from being checked.
			name: "one of two does not compile",
			args: []string{"validate", "testdata/rulesets/broken.conf", "embedded:baseline.conf"},
			lines: []string{
				`^FAIL ruleset testdata/rulesets/broken\.conf does not compile: testdata/rulesets/broken\.conf:3: .*missing closing \)`,
				`^ok   embedded:baseline\.conf version `,
			},
			exit: exitInvalidRuleset,
			err:  "1 of 2 rulesets do not compile",
		},
		{
			// The line at fault is in the included file, not the one given.
			name: "fault in an included file",
			args: []string{"validate", "testdata/rulesets/include-broken.conf"},
			lines: []string{
				`^FAIL ruleset testdata/rulesets/include-broken\.conf does not compile: testdata/rulesets/parts/bad\.conf:3: .*nosuchop`,
			},
			exit: exitInvalidRuleset,
			err:  "1 of 1 rulesets do not compile",
		},
		{
			// Why: a missing file is not a ruleset that does not compile
			// (exit 3), but a path to fix (issue 27, item 9).
			name:  "missing file",
			args:  []string{"validate", "testdata/rulesets/missing.conf"},
			lines: []string{`^FAIL testdata/rulesets/missing\.conf: no such file$`},
			exit:  exitUsage,
			err:   "1 of 1 files not found",
		},
		{
			name:  "unknown embedded ruleset",
			args:  []string{"validate", "embedded:nope.conf"},
			lines: []string{`^FAIL embedded:nope\.conf: no such file$`},
			exit:  exitUsage,
		},
		{
			name: "a missing candidate",
			args: []string{"validate", "--crs-suite=false", "--baseline", "embedded:baseline.conf", "--candidate", "testdata/rulesets/missing.conf"},
			exit: exitUsage,
			err:  "testdata/rulesets/missing.conf: no such file",
		},
		{
			name: "unknown flag",
			args: []string{"validate", "--strict", "embedded:baseline.conf"},
			exit: exitUsage,
			err:  "unknown flag: --strict",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := runRoot(t, context.Background(), tt.args...)
			if got := exitCode(err); got != tt.exit {
				t.Errorf("exitCode(%v) = %d, want %d", err, got, tt.exit)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("error %v, want it to contain %q", err, tt.err)
			}
			// main prints the error once; cobra must not print it or the usage too.
			if errOut != "" {
				t.Errorf("stderr = %q, want nothing", errOut)
			}
			var lines []string
			if out != "" {
				lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			}
			if len(lines) != len(tt.lines) {
				t.Fatalf("output has %d lines, want %d:\n%s", len(lines), len(tt.lines), out)
			}
			for i, re := range tt.lines {
				if !regexp.MustCompile(re).MatchString(lines[i]) {
					t.Errorf("line %d:\n %s\ndoes not match\n %s", i+1, lines[i], re)
				}
			}
		})
	}
}

// What validate prints for a good ruleset is what serve would load: the
// same version and the same counts.
func TestValidateReportsLoadedRuleset(t *testing.T) {
	files := []string{"embedded:baseline.conf", "../../configs/rulesets/candidate-pl2.conf"}
	out, _, err := runRoot(t, context.Background(), append([]string{"validate"}, files...)...)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(files) {
		t.Fatalf("output has %d lines, want %d:\n%s", len(lines), len(files), out)
	}
	versions := map[string]bool{}
	for i, file := range files {
		m := okLine.FindStringSubmatch(lines[i])
		if m == nil || m[1] != file {
			t.Fatalf("line %d = %q, want an ok line for %s", i+1, lines[i], file)
		}
		rs, err := node.LoadRuleset(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rs.Retire)
		want := []string{rs.Version, strconv.Itoa(len(rs.Rules)), strconv.Itoa(len(rs.LoggingRuleIDs())), strconv.Itoa(len(rs.Files)), rs.CRS.String()}
		if got := m[2:]; !equalStrings(got, want) {
			t.Errorf("%s: validate printed version, rules, logging rules, files, CRS = %v; loadRuleset gives %v", file, got, want)
		}
		// The whole CRS is in each: hundreds of rules, dozens of files.
		if len(rs.Rules) < 500 || len(rs.Files) < 10 {
			t.Errorf("%s: %d rules from %d files, want the whole CRS", file, len(rs.Rules), len(rs.Files))
		}
		versions[rs.Version] = true
	}
	if len(versions) != len(files) {
		t.Errorf("different rulesets share a version: %v", lines)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
