// Package rulesettest gives tests the CRS releases they compare with the
// one embedded in the binary, as directories on disk.
package rulesettest

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wafcanary/wafcanary/configs"
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

// Baseline writes the shipped baseline ruleset (configs/rulesets/
// baseline.conf) with a marker line that makes it read its CRS from
// crsDir, and extra appended, into a temporary directory of t's; it
// returns the file's path, named baseline-crs.conf.
func Baseline(t testing.TB, crsDir, extra string) string {
	t.Helper()
	shipped, err := fs.ReadFile(configs.Rulesets, "baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "baseline-crs.conf")
	text := "# wafcanary: crs " + crsDir + "\n" + string(shipped) + extra
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
