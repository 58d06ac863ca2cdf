package ruleset

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadShippedRulesets(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{"baseline.conf", "candidate-exclusion.conf", "candidate-pl2.conf"} {
		t.Run(name, func(t *testing.T) {
			rs, err := Load(filepath.Join("..", "configs", "rulesets", name))
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Retire()
			if len(rs.Version) != 16 {
				t.Errorf("version %q: want 16 hex characters", rs.Version)
			}
			if other, dup := seen[rs.Version]; dup {
				t.Errorf("version %s shared with %s", rs.Version, other)
			}
			seen[rs.Version] = name
			// CRS must actually be there: the anomaly evaluation rule and
			// a few hundred logging rules.
			ids := rs.LoggingRuleIDs()
			if len(ids) < 300 || !containsID(ids, 949110) {
				t.Errorf("got %d logging rules (949110 present: %v); CRS not loaded?", len(ids), containsID(ids, 949110))
			}
			if containsID(ids, 901100) || containsID(ids, 10000) {
				t.Error("nolog bookkeeping rules listed as logging")
			}
			var embedded, local int
			for _, f := range rs.Files {
				if f.Embedded {
					embedded++
					if f.Content != nil {
						t.Errorf("embedded file %s keeps its content", f.Name)
					}
				} else {
					local++
				}
			}
			if local != 1 || embedded < 20 {
				t.Errorf("files read: %d local, %d embedded", local, embedded)
			}
		})
	}
}

func containsID(ids []int, id int) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestVersionFollowsContent(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load := func() string {
		t.Helper()
		rs, err := Load(filepath.Join(dir, "main.conf"))
		if err != nil {
			t.Fatal(err)
		}
		rs.Retire()
		return rs.Version
	}
	write("main.conf", "SecRuleEngine On\nInclude inc/a.conf\n")
	write("inc/a.conf", `SecRule ARGS "@contains x" "id:1,phase:2,deny"`+"\n")
	v1 := load()
	if v := load(); v != v1 {
		t.Fatalf("same bytes, different versions: %s %s", v1, v)
	}
	// A change in an included file changes the version, not only the main file.
	write("inc/a.conf", `SecRule ARGS "@contains y" "id:1,phase:2,deny"`+"\n")
	if v := load(); v == v1 {
		t.Fatal("included file changed but version did not")
	}
}

func TestLoadRefusesBrokenRulesets(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings of the error
	}{
		{"broken/main.conf", []string{"broken/main.conf:4:", `unknown directive "secruleenginex"`}},
		// Why: Coraza counts lines across files; we must report the line
		// inside the included file, at the start of a continued directive.
		{"broken/include.conf", []string{"broken/parts/bad.conf:4:", "nosuchop"}},
		// Why: after an include returns, lines count in the including file again.
		{"broken/afterinclude.conf", []string{"broken/afterinclude.conf:3:", "denyy"}},
		// Why: an error after the whole CRS (globbed includes) still points home.
		{"broken/crsafter.conf", []string{"broken/crsafter.conf:5:", "missing closing )"}},
		// Why: an include inside a subdirectory is relative to that subdirectory.
		{"broken/nested.conf", []string{"broken/sub/level2.conf:2:", "bogus"}},
		// Why: Coraza 3.8.1 panics here (nil msg on most CRS rules); a
		// candidate must be refused, not crash the process.
		{"broken/removebymsg.conf", []string{"broken/removebymsg.conf:5:", "coraza panicked while compiling"}},
		{"broken/missing.conf", []string{"broken/missing.conf:2:", "parts/nope.conf"}},
		{"broken/escape.conf", []string{"broken/escape.conf:2:", "inside the ruleset's directory"}},
		{"broken/does-not-exist.conf", []string{"does-not-exist.conf", "no such file"}},
		{"broken/bodylimit.conf", []string{"broken/bodylimit.conf:4:", "request body limit should be at most 1GiB"}},
		{"broken/loop.conf", []string{"broken/parts/loop-c.conf:2:", "include loop: loop.conf -> parts/loop-b.conf -> parts/loop-c.conf -> parts/loop-b.conf"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatal("loaded a broken ruleset")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRetireClosesAfterLastRelease(t *testing.T) {
	rs, err := Load("testdata/ok.conf")
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.LoggingRuleIDs(); len(got) != 1 || got[0] != 1001 {
		t.Fatalf("logging rules %v, want [1001]", got)
	}
	if !rs.Acquire() {
		t.Fatal("cannot acquire a fresh ruleset")
	}
	rs.Retire()
	rs.Retire() // idempotent: must not release a second reference
	if rs.Closed() {
		t.Fatal("closed while a request still holds it")
	}
	rs.Release()
	if !rs.Closed() {
		t.Fatal("not closed after the last release")
	}
	if rs.Acquire() {
		t.Fatal("acquired a closed ruleset")
	}
}

func TestDirectivesInParseOrder(t *testing.T) {
	rs, err := Load("testdata/ok.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	var got []string
	for _, d := range rs.Directives() {
		got = append(got, fmt.Sprintf("%s:%d %s", d.File, d.Line, d.Name))
	}
	want := []string{"ok.conf:2 SecRuleEngine", "ok.conf:3 Include", "local/rules.conf:1 SecRule", "local/rules.conf:2 SecRule"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("directives %q, want %q", got, want)
	}
	// The shipped baseline's directives are its own lines only: the CRS
	// files are embedded and passed over.
	base, err := Load("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Retire()
	for _, d := range base.Directives() {
		if d.File != "baseline.conf" {
			t.Errorf("directive from %s listed", d.File)
		}
	}
}

// TestRecompileWithPrelude recompiles the recorded bytes, local includes
// in a subdirectory too, after the original files are gone.
func TestRecompileWithPrelude(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "inc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "main.conf"), "SecRuleEngine On\nInclude inc/*.conf\n")
	writeFile(t, filepath.Join(dir, "inc", "a.conf"), `SecRule ARGS "@rx x" "id:10,phase:1,pass,log"`+"\n")
	rs, err := Load(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	re, err := rs.Recompile(`SecAction "id:5,phase:1,pass,nolog"`)
	if err != nil {
		t.Fatal(err)
	}
	defer re.Retire()
	if got := fmt.Sprint(ids(re.Rules)); got != "[5 10]" {
		t.Errorf("recompiled rules %s, want [5 10]", got)
	}
	if fmt.Sprint(ids(rs.Rules)) != "[10]" {
		t.Errorf("original changed: %v", ids(rs.Rules))
	}
	if re.Version == rs.Version {
		t.Error("a prelude must change the version")
	}
	same, err := rs.Recompile("")
	if err != nil {
		t.Fatal(err)
	}
	defer same.Retire()
	if same.Version != rs.Version {
		t.Errorf("recompiling the same bytes gave version %s, want %s", same.Version, rs.Version)
	}
}

func ids(rules []Rule) []int {
	var out []int
	for _, r := range rules {
		out = append(out, r.ID)
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A candidate path comes from the admin API: whatever it names must not
// take the process down or come back quoted in an error.
func TestLoadRefusesWhatIsNotARulesetFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.conf")
	f, _ := os.Create(big)
	f.WriteString("SecRuleEngine On\n# ")
	f.Truncate(MaxFileBytes + 1)
	f.Close()
	secret := filepath.Join(dir, "secret.txt")
	os.WriteFile(secret, []byte("root:x:0:0:topsecret-value:/root:/bin/bash\n"), 0o600)
	incBig := filepath.Join(dir, "includes-big.conf")
	os.WriteFile(incBig, []byte("SecRuleEngine On\nInclude big.conf\n"), 0o600)
	for _, tt := range []struct{ path, want string }{
		{"/dev/zero", "not a regular file"},
		{dir, "not a regular file"},
		{big, "more than the 8 MiB a ruleset file may have"},
		{incBig, "big.conf: "},
		{secret, "not a SecLang file"},
	} {
		_, err := Load(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%s): %v, want an error containing %q", tt.path, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("Load(%s) quotes the file: %v", tt.path, err)
		}
	}
}

// The fault this guards against: a line over 64 KiB made Coraza's parser
// stop reading the file there; the ruleset compiled, validate said ok, and
// the rules after the line were gone.
func TestLoadRefusesALineCorazaWouldStopAt(t *testing.T) {
	dir := t.TempDir()
	long := `SecRule ARGS "@pm ` + strings.Repeat("x", 70000) + `" "id:1,phase:2,deny"`
	os.WriteFile(filepath.Join(dir, "long.conf"), []byte("SecRuleEngine On\n"+long+"\nSecRule ARGS \"@contains attack\" \"id:2,phase:2,deny\"\n"), 0o600)
	_, err := Load(filepath.Join(dir, "long.conf"))
	if err == nil || !strings.Contains(err.Error(), "long.conf:2: a line of 70") || !strings.Contains(err.Error(), "drop every rule after it") {
		t.Fatalf("Load: %v, want the long line refused at file:line", err)
	}
	// Just under the limit still loads, both rules in it.
	ok := `SecRule ARGS "@pm ` + strings.Repeat("x", maxLine-60) + `" "id:1,phase:2,deny"`
	os.WriteFile(filepath.Join(dir, "ok.conf"), []byte("SecRuleEngine On\n"+ok+"\nSecRule ARGS \"@contains attack\" \"id:2,phase:2,deny\"\n"), 0o600)
	rs, err := Load(filepath.Join(dir, "ok.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	if len(rs.Rules) != 2 {
		t.Errorf("%d rules compiled from a line just under the limit, want 2", len(rs.Rules))
	}
}

// Coraza parses SecRequestBodyNoFilesLimit and ignores it; the ruleset
// carries it for the proxy to enforce, and refuses the body settings the
// proxy cannot honour, with the file and line.
func TestBodyLimits(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, conf string
		want       int64
		err        string
	}{
		{"unset: ModSecurity's default", "SecRuleEngine On\n", DefaultNoFilesLimit, ""},
		{"set", "SecRuleEngine On\nSecRequestBodyNoFilesLimit 65536\n", 65536, ""},
		{"the last one wins", "SecRequestBodyNoFilesLimit 1000\nSecRequestBodyNoFilesLimit 2000\n", 2000, ""},
		{"zero", "SecRuleEngine On\nSecRequestBodyNoFilesLimit 0\n", 0, "x.conf:2: SecRequestBodyNoFilesLimit: want a number of bytes from 1 to 1073741824"},
		{"over the hard limit", "SecRequestBodyNoFilesLimit 2000000000\n", 0, "x.conf:1: SecRequestBodyNoFilesLimit"},
		{"ProcessPartial", "SecRuleEngine On\n\nSecRequestBodyLimitAction ProcessPartial\n", 0, "x.conf:3: SecRequestBodyLimitAction ProcessPartial: Coraza would judge only the first"},
		{"Reject", "SecRequestBodyLimitAction Reject\n", DefaultNoFilesLimit, ""},
	}
	for _, tc := range tests {
		writeFile(t, filepath.Join(dir, "x.conf"), tc.conf)
		rs, err := Load(filepath.Join(dir, "x.conf"))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			if rs != nil {
				rs.Retire()
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if rs.NoFilesLimit != tc.want {
			t.Errorf("%s: NoFilesLimit %d, want %d", tc.name, rs.NoFilesLimit, tc.want)
		}
		rs.Retire()
	}
	base, err := Load("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Retire()
	if base.NoFilesLimit != 128<<10 {
		t.Errorf("shipped baseline: NoFilesLimit %d, want 128 KiB", base.NoFilesLimit)
	}
}
