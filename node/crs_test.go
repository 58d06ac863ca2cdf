package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/ruleset/rulesettest"
)

// crs422Baseline is the shipped baseline on CRS 4.22.0's files.
func crs422Baseline(t *testing.T) string {
	t.Helper()
	return rulesettest.Baseline(t, rulesettest.CRSRules(t, rulesettest.CRSModule), "")
}

// A start that changes the CRS says what it changes in its journal
// entry, and the status names each side's CRS: the baseline serves CRS
// 4.22.0 from files, the candidate is the embedded 4.25.0.
func TestStartJournalsTheCRSDiff(t *testing.T) {
	up := newUpstream(t)
	cfg := rolloutConfig(t, up.URL)
	cfg.Rulesets.Baseline = crs422Baseline(t)
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

// The upgrade the issue tells of: the application takes request bodies
// without a Content-Type. Checked against both releases' files: 920340
// blocks such a body at paranoia level 1 in 4.22.0 already when it comes
// with a Content-Length; 4.23's 920640 (phase 2, REQUEST_BODY_LENGTH)
// also blocks one sent chunked, without a Content-Length, which 4.22.0
// lets through. The shadow step sees those new blocks, and the rollback
// names 920640 as new in the upgrade.
func TestCRSUpgradeRolledBackNamingTheNewRule(t *testing.T) {
	app := httptest.NewServer(demo.NewApp())
	t.Cleanup(app.Close)
	cfg := rolloutConfig(t, app.URL)
	cfg.Rulesets.Baseline = crs422Baseline(t)
	ls := startLive(t, cfg)
	ls.start(t, "embedded:baseline.conf")
	send(t, ls.proxy, 160, 0, nil)
	for i := range 40 {
		// A reader of unknown length: net/http sends it chunked.
		body := io.MultiReader(strings.NewReader("remember "), strings.NewReader("the milk"))
		req, err := http.NewRequest(http.MethodPost, ls.proxy+"/api/notes", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "shop.example.com"
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-Client-ID", fmt.Sprint("chunked-", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	settle(t, ls.s, 200)
	d, err := ls.s.rollout.Step(context.Background(), time.Now().Add(time.Minute))
	if err != nil || d.Action != "rollback" || !strings.Contains(d.Reason, "920640 (x40, new in the upgrade)") {
		t.Fatalf("%s (%v): %s", d.Action, err, d.Reason)
	}
}
