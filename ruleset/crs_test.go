package ruleset

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/ruleset/rulesettest"
)

// shippedBaseline is the shipped baseline ruleset's text, which includes
// @crs-setup.conf.example and @owasp_crs/*.conf.
func shippedBaseline(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "configs", "rulesets", "baseline.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeFiles writes name -> content under dir, and symlinks for contents
// starting with "->".
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A ruleset reads its CRS from the directory its marker names, in either
// layout, and says which CRS it is; the rest of the ruleset is as before.
func TestCRSFromADirectory(t *testing.T) {
	crs422 := rulesettest.CRSRules(t, rulesettest.CRSModule)
	base := shippedBaseline(t)
	embedded, err := Load(filepath.Join("..", "configs", "rulesets", "baseline.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer embedded.Retire()
	if got := embedded.CRS; got.Version != "4.25.0" || got.Setup != 4250 || got.Dir != "" || got.String() != "CRS 4.25.0 (embedded)" {
		t.Errorf("embedded CRS: %+v (%s)", got, got)
	}

	tests := []struct {
		name  string
		files map[string]string // main.conf is the ruleset
		dir   string            // the CRS directory, under the test's
	}{
		{
			name:  "the rules folder of a coraza-coreruleset version",
			files: map[string]string{"main.conf": "# wafcanary: crs " + crs422 + "\n" + base},
		},
		{
			// Why: a release archive unpacked has crs-setup.conf.example
			// and rules/ without the '@'; the path is relative to the ruleset.
			name: "a release unpacked, named relative to the ruleset",
			files: map[string]string{
				"main.conf":                    base + "\n#   wafcanary: crs   \"crs/coreruleset-4.22.0\"  \n",
				"crs/coreruleset-4.22.0/rules": "->" + filepath.Join(crs422, "@owasp_crs"),
				"crs/coreruleset-4.22.0/crs-setup.conf.example": "->" + filepath.Join(crs422, "@crs-setup.conf.example"),
			},
			dir: "crs/coreruleset-4.22.0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			rs, err := Load(filepath.Join(dir, "main.conf"))
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Retire()
			want := crs422
			if tt.dir != "" {
				want = filepath.Join(dir, tt.dir)
			}
			if got := rs.CRS; got.Version != "4.22.0" || got.Setup != 4220 || got.Dir != want {
				t.Errorf("CRS %+v, want 4.22.0, setup 4220, from %s", got, want)
			}
			if got := rs.CRS.String(); got != "CRS 4.22.0 from "+want {
				t.Errorf("CRS.String() = %q", got)
			}
			if r, ok := rs.Rule(941120); !ok || r.Paranoia != 2 {
				t.Errorf("941120 in 4.22.0: %+v, %v; want paranoia level 2", r, ok)
			}
			if _, ok := rs.Rule(920640); ok {
				t.Error("920640 loaded: 4.23 added it")
			}
			for _, f := range rs.Files {
				switch {
				case f.Name == corazaRecommended && !f.Embedded:
					t.Errorf("%s read from the CRS directory: it is Coraza's, embedded", f.Name)
				case strings.HasPrefix(f.Name, "@owasp_crs/") && (f.Embedded || f.Content == nil):
					t.Errorf("%s: embedded %v, %d bytes kept; want read from the directory and kept", f.Name, f.Embedded, len(f.Content))
				}
			}
			// The CRS's own directives are not the ruleset's: guards
			// and the exclusion reader see the same lines as with the
			// embedded CRS.
			if got, want := len(rs.Directives()), len(embedded.Directives()); got != want {
				t.Errorf("%d directives of its own, want %d as with the embedded CRS", got, want)
			}
			// A bundle carries the CRS files and compiles without the
			// directory, to the same version.
			b, err := rs.Bundle()
			if err != nil {
				t.Fatal(err)
			}
			again, err := b.Compile(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Retire()
			if again.Version != rs.Version || again.CRS.Version != "4.22.0" {
				t.Errorf("from its bundle: version %s (want %s), %s", again.Version, rs.Version, again.CRS)
			}
		})
	}
}

// A CRS directory that is not one, or a marker that cannot be honoured,
// is refused with the line; a CRS Coraza cannot compile is refused with
// the file and line in the CRS directory and Coraza's reason.
func TestCRSFromADirectoryRefused(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
		// needs is a path the row needs on this machine (.ci/run
		// installs it).
		needs string
	}{
		{
			// Why: Debian's modsecurity-crs is CRS 3.3.4, written for
			// ModSecurity: Coraza stops at its first rule that reads the
			// persistent IP collection, which Coraza does not have.
			name: "CRS 3.3.4 as Debian installs it",
			files: map[string]string{
				"main.conf":                  "# wafcanary: crs crs\nInclude @coraza.conf-recommended\nSecRuleEngine On\nInclude @crs-setup.conf.example\nInclude @owasp_crs/*.conf\n",
				"crs/rules":                  "->/usr/share/modsecurity-crs/rules",
				"crs/crs-setup.conf.example": "->/etc/modsecurity/crs/crs-setup.conf",
			},
			needs: "/usr/share/modsecurity-crs/rules/REQUEST-920-PROTOCOL-ENFORCEMENT.conf",
			want: []string{"does not compile", "/crs/rules/REQUEST-910-IP-REPUTATION.conf:48: ", "non-selectable collection: IP",
				"is a CRS 3 release, written for ModSecurity: Coraza compiles CRS 4"},
		},
		{
			// Why: past that, 920120 uses a look-behind, which Go's
			// regexp and RE2 lack.
			name: "CRS 3.3.4's look-behind",
			files: map[string]string{
				"main.conf":                  "# wafcanary: crs crs\nInclude @coraza.conf-recommended\nSecRuleEngine On\nInclude @crs-setup.conf.example\nInclude @owasp_crs/REQUEST-920-PROTOCOL-ENFORCEMENT.conf\n",
				"crs/rules":                  "->/usr/share/modsecurity-crs/rules",
				"crs/crs-setup.conf.example": "->/etc/modsecurity/crs/crs-setup.conf",
			},
			needs: "/usr/share/modsecurity-crs/rules/REQUEST-920-PROTOCOL-ENFORCEMENT.conf",
			want:  []string{"/crs/rules/REQUEST-920-PROTOCOL-ENFORCEMENT.conf:", "(?<"},
		},
		{
			name:  "not a CRS directory",
			files: map[string]string{"main.conf": "SecRuleEngine On\n# wafcanary: crs elsewhere\n", "elsewhere/x.conf": "SecRuleEngine On\n"},
			want:  []string{"main.conf:2: wafcanary: crs:", "elsewhere: not a CRS directory", "rules/REQUEST-901-INITIALIZATION.conf"},
		},
		{
			name:  "no such directory",
			files: map[string]string{"main.conf": "# wafcanary: crs /nonexistent/crs\nSecRuleEngine On\n"},
			want:  []string{"main.conf:1: wafcanary: crs:", "/nonexistent/crs", "no such file or directory"},
		},
		{
			name:  "two markers",
			files: map[string]string{"main.conf": "# wafcanary: crs a\nSecRuleEngine On\n# wafcanary: crs b\n"},
			want:  []string{"main.conf:3:", "a second \"wafcanary: crs\" line (the first is line 1)"},
		},
		{
			name:  "a marker without a directory",
			files: map[string]string{"main.conf": "SecRuleEngine On\n# wafcanary: crs\n"},
			want:  []string{"main.conf:2:", "names no directory"},
		},
		{
			// Why: the main file's marker decides where the CRS comes
			// from before anything is included; one in an included file
			// would be silently ignored.
			name:  "a marker in an included file",
			files: map[string]string{"main.conf": "SecRuleEngine On\nInclude part.conf\n", "part.conf": "# wafcanary: crs /x\nSecAction \"id:1,pass,nolog\"\n"},
			want:  []string{"part.conf:1:", "belongs in the ruleset's main file (main.conf)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needs != "" {
				if _, err := os.Stat(tt.needs); err != nil {
					t.Fatalf("%v (.ci/run installs the Debian package modsecurity-crs)", err)
				}
			}
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			rs, err := Load(filepath.Join(dir, "main.conf"))
			if err == nil {
				rs.Retire()
				t.Fatal("loaded")
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// Only the CRS's names are served from a CRS directory.
func TestCRSDirServesOnlyCRSNames(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"rules/REQUEST-901-INITIALIZATION.conf": "SecAction \"id:1,pass,nolog\"\n",
		"rules/sub/x.conf":                      "SecAction \"id:2,pass,nolog\"\n",
		"secret.txt":                            "x",
	})
	c, err := openCRSDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"@owasp_crs/../secret.txt", "@owasp_crs/sub/x.conf", "@owasp_crs/", "@secret.txt", "@owasp_crs/..", "@owasp_crs/x.txt"} {
		if _, err := c.ReadFile(name); err == nil {
			t.Errorf("%s read", name)
		}
	}
	got, err := c.Glob("@owasp_crs/*.conf")
	if err != nil || !slices.Equal(got, []string{"@owasp_crs/REQUEST-901-INITIALIZATION.conf"}) {
		t.Errorf("glob: %v, %v", got, err)
	}
}
