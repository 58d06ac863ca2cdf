package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/node"
)

// TestExceptionsRetireAndRenewCmd runs retire and renew against a node
// whose baseline has the ticket exception, every request judged without
// each exception and would-be blocks kept (capture on). The ticket sent
// with a cookie and a credential becomes retire's must_pass case without
// either; start refuses that candidate, the exception being still needed;
// renew changes the expiry only; retire --start of the dangling one starts
// a rollout.
func TestExceptionsRetireAndRenewCmd(t *testing.T) {
	clearEnv(t)
	future := time.Now().UTC().AddDate(0, 1, 0).Format(time.DateOnly)
	baseline := exceptionsRuleset(t, future)
	n := startNode(t, quietLogger(), func(c *node.Config) {
		c.Rulesets.Baseline = baseline
		c.Capture.Enabled = true
		c.Exceptions.SamplePercent = 100
	})
	ctx := context.Background()
	api := &admin.Client{URL: n.admin, Token: os.Getenv("WAFCANARY_ADMIN_TOKEN"), Timeout: time.Minute}
	ticket := func() exception.Exception {
		t.Helper()
		l, err := api.Exceptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e, err := exception.Find(l.Exceptions, "10000")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	deadline := time.Now().Add(30 * time.Second)
	for !ticket().Measured {
		if time.Now().After(deadline) {
			t.Fatal("the variants were not built in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fp := demo.FalsePositiveRequests()[0]
	req, _ := http.NewRequest(fp.Method, n.proxy+fp.Path, strings.NewReader(fp.Body))
	req.Header = fp.Header.Clone()
	req.Header.Set("Cookie", "session=s3cr3t-cookie")
	req.Header.Set("Authorization", "Bearer t0ken-value")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden {
		t.Fatal("the ticket is blocked: the exception does not serve")
	}
	for ticket().WouldBlock == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no would-be block in time")
		}
		time.Sleep(50 * time.Millisecond)
	}

	dir := t.TempDir()
	cand, cases := filepath.Join(dir, "r.conf"), filepath.Join(dir, "r.cases.yaml")
	checkCommand(t, []string{"exceptions", "retire", "10000", "--admin", n.admin, "--output", cand}, 0, []string{
		`^wrote .*r\.conf: baseline [0-9a-f]{12} without exception 10000 \(exceptions\.conf:4\), its lines commented out`,
		`^  it removed ctl:ruleRemoveTargetById 930120, targets ARGS:message$`,
		`^  status active; 1 requests judged without it .*1 would have been blocked by rules 930120`,
		`^wrote .*r\.cases\.yaml: 1 must_pass`,
		`^  wafcanary start --candidate .*r\.conf --cases .*r\.cases\.yaml --retire 10000 --reason`,
	}, "")
	y, err := os.ReadFile(cases)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"path: /support/tickets", "etc%2Fhosts"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("cases lack %q:\n%s", want, y)
		}
	}
	for _, leak := range []string{"s3cr3t", "t0ken", "[redacted]", "Cookie", "Authorization"} {
		if strings.Contains(string(y), leak) {
			t.Errorf("cases carry %q:\n%s", leak, y)
		}
	}
	text, err := os.ReadFile(cand)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(baseline)
	if lines := strings.Split(string(text), "\n"); len(lines) != strings.Count(string(orig), "\n")+1 || !strings.HasPrefix(lines[3], "# SecRule REQUEST_FILENAME") {
		t.Errorf("the candidate:\n%s", text)
	}
	// The request it let through is blocked without it: refused before
	// any traffic sees it.
	checkCommand(t, []string{"start", "--admin", n.admin, "--candidate", cand, "--cases", cases, "--retire", "10000", "--reason", "still needed?"},
		exitRefused, nil, "let through by exception 10000")

	checkCommand(t, []string{"exceptions", "renew", "10000", "--admin", n.admin, "--until", "2099-01-31", "--reason", "tickets still quote /etc/hosts"}, 0, []string{
		`^renewed: the served baseline [0-9a-f]+ with exception 10000 \(exceptions\.conf:4\): expires ` + future + ` -> 2099-01-31$`,
		`^  exception 10000 \(exceptions\.conf:4\) now: owner alice, expires 2099-01-31, ticket OPS-12; status active$`,
		`^  in service as baseline [0-9a-f]{12}, promoted without steps: it judges every request as baseline`,
	}, "")
	if e := ticket(); e.Expires != "2099-01-31" || e.Line != 4 {
		t.Errorf("after renew: %+v", e)
	}
	checkCommand(t, []string{"exceptions", "renew", "10000", "--admin", n.admin, "--until", "2001-01-01", "--reason", "x"}, exitUsage, nil, "before today")

	checkCommand(t, []string{"exceptions", "retire", "10001", "--admin", n.admin, "--output", filepath.Join(dir, "s.conf"), "--start", "--reason", "legacy.example is gone"}, 0, []string{
		`^no cases file: no request it let through is kept`,
		`^state       shadow \(step 1 of \d+\)`,
		`^base        the served baseline [0-9a-f]+ without exception 10001 \(exceptions\.conf:8\), retired$`,
	}, "")
	checkCommand(t, []string{"exceptions", "retire", "10042", "--admin", n.admin, "--output", filepath.Join(dir, "x.conf")}, exitUsage, nil, "no such exception")
}

// expiryOf reads tune's --expires and renew's --until from an injected
// clock: a date, a number of days, or nothing.
func TestExpiryOf(t *testing.T) {
	now := time.Date(2026, time.May, 4, 23, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		in, want, err string
	}{
		{"90d", "2026-08-02", ""},
		{"0d", "2026-05-04", ""},
		{"", "", ""},
		{"2026-05-04", "2026-05-04", ""},
		{"2027-01-31", "2027-01-31", ""},
		// Written expired: refused.
		{"2026-05-03", "", "before today"},
		{"-5d", "", "number of days"},
		{"99999d", "", "number of days"},
		{"31/12/2026", "", "want YYYY-MM-DD"},
	} {
		got, err := expiryOf(c.in, now)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("expiryOf(%q) = %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}
