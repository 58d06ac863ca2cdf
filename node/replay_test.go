package node

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/demo"
)

// harOf writes the demo's traffic as a HAR file: n requests, every tenth
// one of extra, as send sends them.
func harOf(t *testing.T, n int, extra []demo.Request) string {
	t.Helper()
	type nv struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	benign := demo.BenignRequests()
	var entries []map[string]any
	for i := range n {
		r := benign[i%len(benign)]
		if i%10 == 0 && len(extra) > 0 {
			r = extra[(i/10)%len(extra)]
		}
		headers := []nv{{"Host", "shop.example.com"}, {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
			{"Accept", "text/html,application/json;q=0.9,*/*;q=0.8"}}
		for k, vs := range r.Header {
			for _, v := range vs {
				headers = append(headers, nv{k, v})
			}
		}
		q := map[string]any{"method": r.Method, "url": "https://shop.example.com" + r.Path, "httpVersion": "HTTP/1.1", "headers": headers}
		if r.Body != "" {
			q["postData"] = map[string]any{"mimeType": r.Header.Get("Content-Type"), "text": r.Body}
		}
		entries = append(entries, map[string]any{"startedDateTime": "2026-12-07T14:00:00Z", "request": q, "response": map[string]any{"status": 200}})
	}
	b, err := json.Marshal(map[string]any{"log": map[string]any{"version": "1.2", "creator": map[string]any{"name": "test"}, "entries": entries}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "yesterday.har")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// start --replay: a candidate that would block yesterday's customers is
// refused before it judges anyone, naming the replay and the rules; one
// that would not starts, with the replay's finding in its journal entry.
func TestStartReplaysRecordedTraffic(t *testing.T) {
	up := newUpstream(t)
	ls := startLive(t, rolloutConfig(t, up.URL))
	ctx := context.Background()
	// The quoted search and comment are blocked at paranoia level 2 only.
	yesterday := harOf(t, 300, demo.FalsePositiveRequests()[1:])

	_, err := ls.api().Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-pl2.conf", Reason: "raise to PL2", Replay: []string{yesterday}})
	if !refused(err) || !strings.Contains(err.Error(), "replay of "+yesterday) || !(strings.Contains(err.Error(), "942520") || strings.Contains(err.Error(), "942200")) {
		t.Fatalf("PL2 with yesterday's traffic: %v", err)
	}
	if st := ls.s.rollout.State(); st.Phase.Active() {
		t.Fatalf("refused, yet %s", st.Phase)
	}

	if _, err := ls.api().Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Reason: "930120 on tickets", Replay: []string{yesterday}}); err != nil {
		t.Fatalf("the exclusion with yesterday's traffic: %v", err)
	}
	h, err := ls.api().History(ctx, 0)
	if err != nil || !strings.Contains(h[len(h)-1].Reason, "[replay of 300 requests ("+yesterday+")") {
		t.Fatalf("the start's journal entry: %v %+v", err, h[len(h)-1])
	}

	// A file that is not there is the request's fault, named.
	ls2 := startLive(t, rolloutConfig(t, up.URL))
	if _, err := ls2.api().Start(ctx, admin.StartRequest{Candidate: "embedded:candidate-exclusion.conf", Reason: "x", Replay: []string{"/nonexistent.log"}}); err == nil || !strings.Contains(err.Error(), "nonexistent.log") {
		t.Fatalf("a missing replay file: %v", err)
	}
}
