package node

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
)

// The blocks API over real HTTP, on a node with capture on: an image
// upload CRS blocks is kept byte for byte (issue 27: its replay was a
// body-less POST) and reads back through the API; its signature is
// listed, explained by its newest capture, pinned and unpinned (either
// twice is success), and outlives a restart with its pin. With capture
// off the API says why it has no signatures.
func TestBlocksOverTheAPI(t *testing.T) {
	up := newUpstream(t)
	ctx := context.Background()
	cfg := testConfig(t, up.URL)
	cfg.Capture.Enabled = true
	cfg.Rulesets.Baseline = pngBaseline(t)
	ls := startLive(t, cfg)
	const png = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\xff\xfe"
	// The site takes image uploads; Coraza reads a body of a type it has
	// no parser for as a form, and rule 9104 refuses its binary names.
	req, _ := http.NewRequest(http.MethodPost, ls.proxy+"/account/avatar", strings.NewReader(png))
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("X-Request-ID", "avatar-1")
	req.Host = "shop.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the upload got %d, want 400 (rule 9104)", resp.StatusCode)
	}
	api := ls.api()
	var e admin.Explanation
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if e, err = api.Explain(ctx, "avatar-1"); err == nil && e.Capture != nil {
			break
		}
	}
	if err != nil || e.Capture == nil {
		t.Fatalf("explain avatar-1: %+v, %v", e, err)
	}
	if e.Capture.Body != png || e.Capture.BodyNote != "" {
		t.Fatalf("the upload's body through the API: %q (note %q), want the bytes sent; %+v", e.Capture.Body, e.Capture.BodyNote, e)
	}
	if e.Group == nil || e.Group.Count != 1 || e.Group.Path != "/account/avatar" {
		t.Fatalf("the upload's signature: %+v", e.Group)
	}
	sig := e.Group.Sig

	l, err := api.Blocks(ctx, 10)
	if err != nil || len(l.Signatures) != 1 || l.Signatures[0].Sig != sig || l.Store.Signatures != 1 || l.Store.MaxSignatures != cfg.Capture.MaxSignatures {
		t.Fatalf("blocks: %+v, %v", l, err)
	}
	byID, err := api.Explain(ctx, sig)
	if err != nil || byID.ID != "avatar-1" || !strings.Contains(byID.Chosen, "the newest of its 1 captures") {
		t.Errorf("explain %s: %+v, %v", sig, byID, err)
	}
	g, err := api.Block(ctx, sig)
	if err != nil || len(g.Captures) != 1 || g.Captures[0].Body != png {
		t.Errorf("block %s: %+v, %v", sig, g, err)
	}
	for _, pin := range []bool{true, true, false, false, true} {
		sum, err := api.Pin(ctx, sig, pin)
		if err != nil || sum.Pinned != pin {
			t.Fatalf("pin %v: %+v, %v", pin, sum, err)
		}
	}
	var ae *admin.Error
	if _, err := api.Pin(ctx, "sig:00000000", true); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("pinning an unknown signature: %v, want 404", err)
	}
	if _, err := api.Explain(ctx, "sig:zz"); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(err.Error(), "8 to 16 hex digits") {
		t.Errorf("explaining a malformed signature: %v, want 404 saying what a signature is", err)
	}
	if r := httpGet(t, newClient(t), ls.admin+"/api/v1/blocks?n=0", "Authorization", "Bearer "+ls.s.adminToken); r.status != http.StatusBadRequest {
		t.Errorf("n=0: %d %s", r.status, r.body)
	}

	ls.stop()
	again := startLive(t, cfg)
	l, err = again.api().Blocks(ctx, 10)
	if err != nil || len(l.Signatures) != 1 || l.Signatures[0].Sig != sig || !l.Signatures[0].Pinned || l.Signatures[0].Count != 1 {
		t.Fatalf("after a restart: %+v, %v", l, err)
	}
	again.stop()

	// The shipped baseline blocks an image/png body in phase 1, unread:
	// the capture says so rather than pass for a body-less request.
	cfg = testConfig(t, up.URL)
	cfg.Capture.Enabled = true
	early := startLive(t, cfg)
	req, _ = http.NewRequest(http.MethodPost, early.proxy+"/account/avatar", strings.NewReader(png))
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("X-Request-ID", "avatar-early")
	req.Host = "shop.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the upload to the shipped baseline: %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if e, err = early.api().Explain(ctx, "avatar-early"); err == nil && e.Capture != nil {
			break
		}
	}
	if e.Capture == nil || e.Capture.Body != "" || !strings.Contains(e.Capture.BodyNote, "blocked before its body phase") {
		t.Errorf("an upload blocked before its body was read: %+v", e.Capture)
	}
	early.stop()

	cfg = testConfig(t, up.URL)
	off := startLive(t, cfg)
	if _, err := off.api().Blocks(ctx, 10); !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(err.Error(), "capture.enabled is off") {
		t.Errorf("blocks with capture off: %v", err)
	}
}

// pngBaseline writes the shipped baseline with image/png among the
// allowed request content types, as a site that takes image uploads
// configures it, and returns its path.
func pngBaseline(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	const include = "Include @owasp_crs/*.conf"
	allow := `SecAction "id:9190,phase:1,pass,t:none,nolog,setvar:'tx.allowed_request_content_type=|application/x-www-form-urlencoded| |multipart/form-data| |application/json| |image/png|'"` + "\n"
	conf := strings.Replace(string(b), include, allow+include, 1)
	p := filepath.Join(t.TempDir(), "baseline-png.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
