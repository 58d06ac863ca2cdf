package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/exclusion"
	"github.com/wafcanary/wafcanary/fleet/fleettest"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset/rulesettest"
	"go.yaml.in/yaml/v3"
)

// crs422Baseline is the shipped baseline on CRS 4.22.0's files.
func crs422Baseline(t *testing.T) string {
	t.Helper()
	return rulesettest.Baseline(t, rulesettest.CRSRules(t, rulesettest.CRSModule), "")
}

// A start that changes the CRS says what it changes in its journal
// entry, and the status and wafcanary_ruleset_info name each side's CRS:
// the baseline serves CRS 4.22.0 from files, the candidate is the
// embedded 4.25.0.
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
	body := httpGet(t, http.DefaultClient, ls.admin+"/metrics").body
	for _, want := range []string{
		`wafcanary_ruleset_info{arm="baseline",crs="4.22.0",version="` + st.Baseline.Version + `"} 1`,
		`wafcanary_ruleset_info{arm="candidate",crs="4.25.0",version="` + st.Candidate.Version + `"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	h, err := ls.s.History(0)
	if err != nil || len(h) == 0 {
		t.Fatalf("journal: %v %+v", err, h)
	}
	if got := h[len(h)-1].Reason; !strings.Contains(got, "[CRS 4.22.0 -> 4.25.0: 11 rules added, 0 removed, ") {
		t.Errorf("start's reason %q does not summarise the CRS diff", got)
	}
}

// The upgrade the issue tells of, to its end. The application takes
// request bodies without a Content-Type. Checked against both releases'
// files: 920340 blocks such a body at paranoia level 1 in 4.22.0 already
// when it comes with a Content-Length; 4.23's 920640 (phase 2,
// REQUEST_BODY_LENGTH) also blocks one sent chunked, without a
// Content-Length, which 4.22.0 lets through. The shadow step sees those
// new blocks, and the rollback names 920640 as new in the upgrade. The
// new blocks were captured in shadow; tune, on the rolled-back candidate
// the server keeps, writes the upgrade with an exception for that path,
// whose cases hold; and that upgrade is promoted on the same traffic,
// after which the client's bodies pass and attacks sent the same way, or
// elsewhere, are still blocked.
func TestCRSUpgradeRolledBackThenTunedAndPromoted(t *testing.T) {
	app := httptest.NewServer(demo.NewApp())
	t.Cleanup(app.Close)
	ctx := context.Background()
	cfg := rolloutConfig(t, app.URL)
	cfg.Rulesets.Baseline = crs422Baseline(t)
	cfg.Capture.Enabled = true
	ls := startLive(t, cfg)
	api := ls.api()
	// An upgrade takes the crs-upgrade preset (a week in shadow) unless
	// told otherwise; new blocks roll it back whatever its steps.
	st, err := api.Start(ctx, admin.StartRequest{Candidate: "embedded:baseline.conf", Reason: "CRS 4.22.0 -> 4.25.0", Actor: "test"})
	if err != nil || st.Preset != rollout.PresetCRSUpgrade || st.Composed == nil || !strings.HasPrefix(st.Composed.Preset, "crs-upgrade: the candidate changes the CRS from 4.22.0 to 4.25.0") || len(st.Plan) != 5 {
		t.Fatalf("start: %v, preset %q, %+v", err, st.Preset, st.Composed)
	}
	upgrade := ls.s.router.Snapshot().Candidate.Version
	send(t, ls.proxy, 160, 0, nil)
	untyped(t, ls.proxy, "/api/notes", "remember the milk", 40, 0)
	settle(t, ls.s, 200)
	d, err := ls.s.rollout.Step(ctx, time.Now().Add(time.Minute))
	if err != nil || d.Action != "rollback" || !strings.Contains(d.Reason, "920640 (x40, new in the upgrade)") {
		t.Fatalf("%s (%v): %s", d.Action, err, d.Reason)
	}

	// The candidate's new blocks were kept as shadow blocks.
	var e admin.Explanation
	fleettest.WaitFor(t, 10*time.Second, "the capture of a shadow block", func() bool {
		e, err = api.Explain(ctx, "untyped-0")
		return err == nil && e.Capture != nil
	})
	if !e.Shadow || !e.Capture.Shadow || e.Arm != "candidate" || e.Version != upgrade || e.InterruptedBy != 949110 ||
		e.Capture.Header.Get("Transfer-Encoding") != "chunked" || e.Capture.Body != "remember the milk" {
		t.Fatalf("the shadow block of untyped-0: %+v, capture %+v", e, e.Capture)
	}
	if e.Group == nil || !e.Group.Shadow || !slices.Equal(e.Group.Rules, []int{920640}) {
		t.Fatalf("its signature: %+v", e.Group)
	}

	// tune: the ruleset of those blocks is the rolled-back candidate.
	served, err := api.ServedBaseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bundle, onCandidate, err := api.RulesetOfBlocks(ctx, served, []capture.Record{*e.Capture})
	if err != nil || !onCandidate || bundle.Version != upgrade {
		t.Fatalf("the ruleset of the shadow block: %s, candidate %v, %v; want the upgrade %s", bundle.Version, onCandidate, err, upgrade)
	}
	cand, err := bundle.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cand.Retire()
	res, err := exclusion.Tune(ctx, cand, bundle, []capture.Record{*e.Capture}, exclusion.Options{Output: "upgrade.conf", Now: time.Now(), Candidate: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removals) != 1 || res.Removals[0].Rule != 920640 || res.Host != "shop.example.com" || res.Path != "/api/notes" || !res.Candidate {
		t.Fatalf("tune: %+v on %s%s", res.Removals, res.Host, res.Path)
	}
	dir := t.TempDir()
	for name, b := range res.Files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	y, err := yaml.Marshal(res.Cases)
	if err != nil {
		t.Fatal(err)
	}
	cases := filepath.Join(dir, "upgrade.cases.yaml")
	if err := os.WriteFile(cases, y, 0o600); err != nil {
		t.Fatal(err)
	}

	// The upgrade with its exception goes out as one change (on this
	// test's steps, not a week in shadow).
	if _, err := api.Start(ctx, admin.StartRequest{Candidate: filepath.Join(dir, "upgrade.conf"), Cases: cases, Reason: "CRS 4.22.0 -> 4.25.0 with the exception for untyped notes", Actor: "test", Preset: rollout.PresetDefault}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Minute)
	for i, want := range []rollout.Action{rollout.ActionAdvance, rollout.ActionAdvance, rollout.ActionPromote} {
		send(t, ls.proxy, 160, 1000*(i+1), nil)
		untyped(t, ls.proxy, "/api/notes", "remember the milk", 40, 1000*(i+1))
		settle(t, ls.s, 150)
		now = now.Add(time.Minute)
		if d, err := ls.s.rollout.Step(ctx, now); err != nil || d.Action != want {
			t.Fatalf("step %d: %s (%v): %s", i, d.Action, err, d.Reason)
		}
	}
	if b := ls.s.router.Snapshot().Baseline; b.CRS.Version != "4.25.0" {
		t.Fatalf("after the promotion the baseline runs %s", b.CRS)
	}
	for _, c := range []struct {
		name, path, body string
		blocked          bool
	}{
		{"the note, untyped", "/api/notes", "remember the milk", false},
		{"an untyped body elsewhere", "/api/comments", "remember the milk", true},
		{"SQL injection as the untyped note", "/api/notes", "q=1' UNION SELECT username, password FROM users--", true},
	} {
		// The demo application answers 400 to a note that is not a form:
		// the WAF's answer is 403.
		if got := untyped(t, ls.proxy, c.path, c.body, 1, 9000); (got == http.StatusForbidden) != c.blocked {
			t.Errorf("%s: %d, want blocked %v", c.name, got, c.blocked)
		}
	}
}

// untyped sends n chunked POSTs without a Content-Type to path, from
// distinct clients, with request IDs untyped-<offset+i>; it returns the
// last status.
func untyped(t *testing.T, proxy, path, body string, n, offset int) int {
	t.Helper()
	code := 0
	for i := range n {
		// A reader of unknown length: net/http sends it chunked.
		r := io.MultiReader(strings.NewReader(body[:len(body)/2]), strings.NewReader(body[len(body)/2:]))
		req, err := http.NewRequest(http.MethodPost, proxy+path, r)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "shop.example.com"
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-Client-ID", fmt.Sprint("untyped-", offset+i))
		req.Header.Set("X-Request-ID", fmt.Sprint("untyped-", offset+i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		code = resp.StatusCode
	}
	return code
}
