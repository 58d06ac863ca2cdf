// Package modsec writes ModSecurity set-ups that load the CRS wafcanary
// embeds, like for like: the rule files for libmodsecurity v3 and
// mod_security2, and the engine settings that mirror wafcanary's baseline,
// with or without an audit log. The bench runs nginx with them; replay's
// tests run nginx and Apache with them to produce real audit logs.
package modsec

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"

	"github.com/wafcanary/wafcanary/ruleset"
)

// WriteCRS writes the CRS that wafcanary embeds (coraza-coreruleset v4:
// crs-setup.conf.example, the rules and their data files) under dir, for
// ModSecurity to load the same rules as wafcanary. It returns the rules
// ModSecurity needed mended: see Fix.
func WriteCRS(dir string) ([]string, error) {
	var fixed []string
	err := fs.WalkDir(coreruleset.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasPrefix(name, "@crs-setup") && !strings.HasPrefix(name, "@owasp_crs/") {
			return nil
		}
		b, err := fs.ReadFile(coreruleset.FS, name)
		if err != nil {
			return err
		}
		out := filepath.Join(dir, strings.TrimPrefix(name, "@"))
		if strings.HasSuffix(name, ".conf") || strings.HasSuffix(name, ".example") {
			var f []string
			b, f = Fix(b)
			for _, l := range f {
				fixed = append(fixed, path.Base(name)+":"+l)
			}
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	return fixed, err
}

// CRSIncludes are the files to Include, after the engine settings, for the
// CRS WriteCRS wrote under dir.
func CRSIncludes(dir string) []string {
	return []string{dir + "/crs-setup.conf.example", dir + "/owasp_crs/*.conf"}
}

// Fix gives every SecRule written without an action list (the chain
// links such as `SecRule TX:... "@eq 0"` under 949111) the action list
// "t:none", which changes nothing in what the rule does: libmodsecurity
// 3.0.9's parser refuses a SecRule with two arguments ("Rules must have
// at least id action"), where ModSecurity v2 and Coraza take the chain
// link's actions as empty. It returns the lines mended.
func Fix(b []byte) ([]byte, []string) {
	lines := strings.Split(string(b), "\n")
	var fixed []string
	var logical strings.Builder
	start := -1
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if start < 0 {
			start = i
		}
		if strings.HasSuffix(t, `\`) {
			logical.WriteString(strings.TrimSuffix(t, `\`) + " ")
			continue
		}
		logical.WriteString(t)
		name, args, _ := strings.Cut(strings.TrimSpace(logical.String()), " ")
		d := ruleset.Directive{Name: name, Args: args}
		if strings.EqualFold(name, "SecRule") && len(d.Fields()) == 2 {
			lines[i] = l + ` "t:none"`
			fixed = append(fixed, fmt.Sprint(start+1))
		}
		logical.Reset()
		start = -1
	}
	return []byte(strings.Join(lines, "\n")), fixed
}
