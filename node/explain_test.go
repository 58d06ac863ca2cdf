package node

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/admin"
)

// A user is blocked; explain names the rule and the variable from the
// request ID alone, with capture on it shows the request (redacted), and
// the capture outlives a restart.
func TestExplainABlockedRequest(t *testing.T) {
	up := newUpstream(t)
	ctx := context.Background()
	for _, captureOn := range []bool{false, true} {
		cfg := testConfig(t, up.URL)
		cfg.Capture.Enabled = captureOn
		ls := startLive(t, cfg)
		fp := ticketFP()
		req, _ := http.NewRequest(fp.Method, ls.proxy+fp.Path, strings.NewReader(fp.Body))
		req.Header = fp.Header.Clone()
		req.Header.Set("X-Request-ID", "ticket-blocked-1")
		req.Header.Set("Cookie", "session=s3cret-session")
		req.Host = "shop.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("the false positive got %d, want 403", resp.StatusCode)
		}
		var e admin.Explanation
		for range 100 { // the proxy reports after the response
			if e, err = ls.api().Explain(ctx, "ticket-blocked-1"); err == nil && (!captureOn || e.Capture != nil) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		var rule *admin.ExplainedRule
		for i := range e.Rules {
			if e.Rules[i].ID == 930120 {
				rule = &e.Rules[i]
			}
		}
		if e.Host != "shop.example" || e.Path != "/support/tickets" || e.Status != 403 || e.Score < 5 || rule == nil ||
			!strings.Contains(strings.Join(rule.Targets, ","), "ARGS:message") || rule.File == "" || rule.Paranoia != 1 {
			t.Fatalf("capture %v: explanation %+v", captureOn, e)
		}
		if captureOn != (e.Capture != nil) {
			t.Fatalf("capture %v, explanation has capture %v", captureOn, e.Capture != nil)
		}
		var ae *admin.Error
		if _, err := ls.api().Explain(ctx, "never-seen"); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || captureOn == strings.Contains(err.Error(), "turn capture.enabled on") {
			t.Errorf("capture %v, unknown ID: %v, want 404 (suggesting capture only when it is off)", captureOn, err)
		}
		if captureOn {
			if c := e.Capture; c.Host != "shop.example" || c.Header.Get("Cookie") != "[redacted]" || !strings.Contains(c.Body, "subject=Dashboard+times+out") {
				t.Fatalf("capture %+v", c)
			}
			ls.stop()
			again := startLive(t, cfg)
			after, err := again.api().Explain(ctx, "ticket-blocked-1")
			if err != nil || after.Capture == nil || after.Rules[0].ID == 0 || after.Rules[len(after.Rules)-1].File == "" {
				t.Fatalf("after a restart: %+v, %v", after, err)
			}
		}
	}
}
