package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/fleet/fleettest"
)

// artifactDir is where tests leave what a person should look at (.ci/run
// sets ARTIFACTS_DIR and prints it); a temporary directory otherwise.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// The status page in a real headless Chromium during a real rollout: it
// shows the state, the versions, the steps with progress and every check
// with its bounds; without a token its buttons refuse; with the token,
// Roll back takes the candidate out, and the page shows it.
func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a real Chromium against a real rollout; run without -short")
	}
	chromium := fleettest.Require(t, "chromium", "chromium")
	up := newUpstream(t)
	cfg := rolloutConfig(t, up.URL)
	cfg.Capture.Enabled = true // for the Blocks panel
	ls := startLive(t, cfg)
	ls.start(t, "embedded:candidate-exclusion.conf")
	send(t, ls.proxy, 300, 0, []demo.Request{ticketFP()})
	settle(t, ls.s, 300)
	if _, err := ls.s.rollout.Step(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	cand := ls.s.Status().Candidate.Version

	ctx := browser(t, chromium)

	if err := chromedp.Do(ctx, chromedp.Navigate(ls.admin+"/"), chromedp.WaitVisible(`#checks tbody tr[data-check="lost_blocks"]`)); err != nil {
		t.Fatal(err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return s
	}
	state, stepline, candidate, checks, steps, journal := text("#state"), text("#stepline"), text("#candidate"), text("#checks"), text("#steps"), text("#journal")
	scope := text("#scope")
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir(t), "status-page.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the page during the rollout: %s (%d bytes)", path, len(shot))
	for what, c := range map[string]struct{ got, want string }{
		"state":     {state, "progressing"},
		"step":      {stepline, "step 2 of 3"},
		"candidate": {candidate, cand},
		"checks":    {checks, "lost_blocks"},
		"bounds":    {checks, "["},
		"steps":     {steps, "shadow only"},
		"progress":  {steps, "of 150 requests"},
		"journal":   {journal, "start"},
		// The shipped exclusion is @streq: exactly its path (issue 27).
		"scope": {scope, "path /support/tickets, and rules 930120 (inferred from the candidate)"},
	} {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("page %s: %q lacks %q", what, c.got, c.want)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Click(`button[data-action="rollback"]`)); err != nil {
		t.Fatal(err)
	}
	if refused := text("#actionresult"); !strings.Contains(refused, "enter your token first") || ls.s.Status().State != "progressing" {
		t.Fatalf("rollback without a token: %q, state %s", refused, ls.s.Status().State)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#token", ls.s.adminToken),
		chromedp.Click("#usetoken"),
		chromedp.SendKeys("#reason", "rolled back from the page"),
		chromedp.Click(`button[data-action="rollback"]`),
		chromedp.WaitVisible(`#state[data-state="rolled_back"]`),
	); err != nil {
		t.Fatal(err)
	}
	after := text("#journal")
	if st := ls.s.Status(); st.State != "rolled_back" || st.LastDecision.Actor != admin.TokenIdentity || st.LastDecision.Claimed != "web" || st.LastDecision.Reason != "rolled back from the page" {
		t.Fatalf("after the page's rollback: %+v", st.LastDecision)
	}
	if !strings.Contains(after, "rolled back from the page") {
		t.Errorf("the page's journal does not show the rollback:\n%s", after)
	}
	// The Blocks panel, with the token: the false positive's signature
	// with its signals, pinned from the page.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#blocks tbody tr[data-sig]`)); err != nil {
		t.Fatal(err)
	}
	if blocks := text("#blocks"); !strings.Contains(blocks, "/support/tickets") || !strings.Contains(blocks, "hints at a false positive") {
		t.Errorf("the Blocks panel: %q", blocks)
	}
	list, err := ls.api().Blocks(context.Background(), 50)
	sig := ""
	for _, s := range list.Signatures {
		if s.Path == "/support/tickets" {
			sig = s.Sig
		}
	}
	if err != nil || sig == "" {
		t.Fatalf("blocks: %+v, %v", list, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(`#blocks tbody tr[data-sig="`+sig+`"] button.pin`),
		chromedp.WaitVisible(`#blocks tbody tr.pinned[data-sig="`+sig+`"]`),
	); err != nil {
		t.Fatal(err)
	}
	if got, err := ls.s.capture.Signature(sig); err != nil || !got.Pinned {
		t.Errorf("pinned from the page: %+v, %v", got, err)
	}
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		path := filepath.Join(artifactDir(t), "status-page-blocks.png")
		if err := os.WriteFile(path, shot, 0o644); err == nil {
			t.Logf("screenshot of the page with its Blocks panel: %s", path)
		}
	}
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie + "|" + localStorage.length`))
	if err != nil || stored != "|0" {
		t.Errorf("the page keeps state beyond the tab's session storage: %q", stored)
	}
}

// browser is a headless Chromium's context, closed with the test, with
// 90 seconds to do what the test asks.
func browser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 1400))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	return ctx
}

// The Exceptions panel lists the served baseline's exceptions as GET
// /api/v1/exceptions does, once the token is given: the shipped ticket
// exception with its rule, its condition, no owner or expiry, measured
// live (exceptions.sample_percent), and its status.
func TestExceptionsPanelInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a real Chromium; run without -short")
	}
	chromium := fleettest.Require(t, "chromium", "chromium")
	cfg := testConfig(t, newUpstream(t).URL)
	cfg.Rulesets.Baseline = "embedded:candidate-exclusion.conf"
	cfg.Exceptions.SamplePercent = 100
	ls := startLive(t, cfg)
	ctx := browser(t, chromium)
	if err := chromedp.Do(ctx, chromedp.Navigate(ls.admin+"/"), chromedp.WaitVisible(`#exceptionsnote`)); err != nil {
		t.Fatal(err)
	}
	note, err := chromedp.Run(ctx, chromedp.Text("#exceptionsnote"))
	if err != nil || !strings.Contains(note, "enter the token") {
		t.Fatalf("without a token: %q %v", note, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#token", ls.s.adminToken),
		chromedp.Click("#usetoken"),
		chromedp.WaitVisible(`#exceptions tbody tr[data-exception="10000"]`),
	); err != nil {
		t.Fatal(err)
	}
	row, err := chromedp.Run(ctx, chromedp.Text(`#exceptions tbody tr[data-exception="10000"]`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"candidate-exclusion.conf:", "930120", "/support/tickets", "no owner, no expiry", "judged", "active"} {
		if !strings.Contains(row, want) {
			t.Errorf("the exception's row %q lacks %q", row, want)
		}
	}
	list, err := ls.api().Exceptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if note, _ := chromedp.Run(ctx, chromedp.Text("#exceptionsnote")); !strings.Contains(note, fmt.Sprintf("%d exception", len(list.Exceptions))) || !strings.Contains(note, list.Baseline) {
		t.Errorf("the panel's note %q, the API lists %d in %s", note, len(list.Exceptions), list.Baseline)
	}
}
