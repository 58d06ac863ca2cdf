// Package rulesettest gives tests the CRS releases they compare with the
// one embedded in the binary, as directories on disk.
package rulesettest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CRSModule is a coraza-coreruleset version that tests compare the
// embedded CRS with: 4.22.0, the last release before 4.23 moved 941120 to
// paranoia level 1 and added 920640.
const CRSModule = "github.com/corazawaf/coraza-coreruleset/v4@v4.22.0"

// CRSRules returns the rules/ folder of module (CRSModule) in the Go
// module cache (@crs-setup.conf.example, @owasp_crs/*.conf and *.data),
// downloading it through the module proxy when the cache lacks it:
// .ci/run downloads it before the tests, so a machine without the network
// has it from there. The test fails when the go command cannot get it.
func CRSRules(t testing.TB, module string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = t.TempDir() // outside any module: the version is not added to a go.mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var got struct{ Dir, Error string }
	_ = json.Unmarshal(out, &got)
	if err != nil || got.Dir == "" {
		t.Fatalf("go mod download %s: %v %s (the test reads that CRS from the module cache; .ci/run downloads it first)", module, err, got.Error)
	}
	return filepath.Join(got.Dir, "rules")
}
