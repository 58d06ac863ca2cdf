package ruleset

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// A rule's line is where it starts in its own file: Coraza counts lines
// across every file it parses, so an included file's rules came out at
// the running count (941180 at REQUEST-941's line 5349; it is near 170).
func TestRuleLinesAreTheirFilesOwn(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "parts"), 0o700)
	writeFile(t, filepath.Join(dir, "main.conf"), "SecRuleEngine On\n# a comment\nSecRule ARGS \"@rx a\" \"id:1,phase:2,pass\"\nInclude parts/more.conf\nSecRule ARGS \"@rx c\" \\\n    \"id:3,\\\n    phase:2,pass\"\n")
	writeFile(t, filepath.Join(dir, "parts", "more.conf"), "\nSecRule ARGS \"@rx b\" \\\n  \"id:2,phase:2,pass\"\n")
	rs, err := Load(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	for id, want := range map[int]int{1: 3, 2: 2, 3: 5} {
		if r, _ := rs.Rule(id); r.Line != want {
			t.Errorf("rule %d in %s at line %d, want %d", id, r.File, r.Line, want)
		}
	}

	base, err := Load("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Retire()
	r, ok := base.Rule(941180)
	if !ok || !strings.HasSuffix(r.File, "REQUEST-941-APPLICATION-ATTACK-XSS.conf") {
		t.Fatalf("941180: %+v", r)
	}
	b, err := fs.ReadFile(coreruleset.FS, "@owasp_crs/REQUEST-941-APPLICATION-ATTACK-XSS.conf")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if r.Line < 1 || r.Line > len(lines) || !strings.HasPrefix(lines[r.Line-1], "SecRule ") || !strings.Contains(strings.Join(lines[r.Line-1:r.Line+3], "\n"), "id:941180") {
		t.Errorf("941180 at line %d of %d; that line is %q", r.Line, len(lines), lines[min(max(r.Line-1, 0), len(lines)-1)])
	}
}
