package modsec

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// The CRS written out for ModSecurity is the embedded one, with only the
// chain links that lack an action list mended, and nothing else changed.
func TestEmbeddedCRSForModSecurity(t *testing.T) {
	dir := t.TempDir()
	fixed, err := WriteCRS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fixed) != 2 || !strings.HasPrefix(fixed[0], "REQUEST-949-BLOCKING-EVALUATION.conf:") || !strings.HasPrefix(fixed[1], "RESPONSE-959-BLOCKING-EVALUATION.conf:") {
		t.Errorf("mended %v, want the chain links of 949111 and 959101", fixed)
	}
	got, err := os.ReadFile(filepath.Join(dir, "owasp_crs", "REQUEST-949-BLOCKING-EVALUATION.conf"))
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := fs.ReadFile(coreruleset.FS, "@owasp_crs/REQUEST-949-BLOCKING-EVALUATION.conf")
	if want := strings.Replace(string(orig), `SecRule TX:EARLY_BLOCKING "@eq 1"`+"\n", `SecRule TX:EARLY_BLOCKING "@eq 1" "t:none"`+"\n", 1); string(got) != want {
		t.Error("REQUEST-949 differs from the embedded file by more than the mended chain link")
	}
	for _, f := range []string{"crs-setup.conf.example", "owasp_crs/lfi-os-files.data", "owasp_crs/REQUEST-942-APPLICATION-ATTACK-SQLI.conf"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	fixedAgain, _ := Fix(got)
	if string(fixedAgain) != string(got) {
		t.Error("mending twice changes the file again")
	}
}
