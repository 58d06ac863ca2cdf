package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/ruleset/rulesettest"
)

// A start that changes the CRS says what it changes in its journal
// entry, and the status names each side's CRS: the baseline serves CRS
// 4.22.0 from files, the candidate is the embedded 4.25.0.
func TestStartJournalsTheCRSDiff(t *testing.T) {
	crs := rulesettest.CRSRules(t, rulesettest.CRSModule)
	shipped, err := os.ReadFile(filepath.Join("..", "configs", "rulesets", "baseline.conf"))
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "baseline-crs422.conf")
	if err := os.WriteFile(base, append([]byte("# wafcanary: crs "+crs+"\n"), shipped...), 0o644); err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	cfg := rolloutConfig(t, up.URL)
	cfg.Rulesets.Baseline = base
	ls := startLive(t, cfg)
	if _, err := ls.s.Start(context.Background(), admin.StartRequest{Candidate: "embedded:baseline.conf", Reason: "CRS upgrade", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	st := ls.s.Status()
	if !strings.HasPrefix(st.Baseline.CRS, "CRS 4.22.0 from ") || st.Candidate == nil || st.Candidate.CRS != "CRS 4.25.0 (embedded)" {
		t.Errorf("status names the CRS: baseline %+v, candidate %+v", st.Baseline, st.Candidate)
	}
	h, err := ls.s.History(0)
	if err != nil || len(h) == 0 {
		t.Fatalf("journal: %v %+v", err, h)
	}
	if got := h[len(h)-1].Reason; !strings.Contains(got, "[CRS 4.22.0 -> 4.25.0: 11 rules added, 0 removed, ") {
		t.Errorf("start's reason %q does not summarise the CRS diff", got)
	}
}
