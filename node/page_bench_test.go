package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/rollout"
)

// BenchmarkPageState polls GET /ui/state of a real node whose journal is
// just under its 16 MiB rotation size (a day of 15 s analyses), as open
// status pages do, from parallel clients: "poll" is one poll's cost,
// "journal" one read of the 200 entries the page shows. Six pages once
// took the proxy from 2,090 to 49 requests/s: every poll decoded the
// whole file.
func BenchmarkPageState(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	b.Cleanup(up.Close)
	cfg := Default()
	cfg.Listen, cfg.Admin.Listen, cfg.Upstream, cfg.StateDir = "127.0.0.1:0", "127.0.0.1:0", up.URL, b.TempDir()
	cfg.Gates.CRSSuite = false
	size := writeJournal(b, cfg.StateDir, rollout.JournalMaxBytes-(1<<20))
	s, err := New(cfg, quietLogger(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, pl, al) }()
	b.Cleanup(func() { cancel(); <-done })
	url := "http://" + al.Addr().String() + "/ui/state"
	b.Logf("journal of %d MiB", size>>20)

	b.Run("poll", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			c := &http.Client{Timeout: time.Minute}
			for pb.Next() {
				resp, err := c.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n < 1000 {
					b.Errorf("poll: %d, %d bytes", resp.StatusCode, n)
					return
				}
			}
		})
	})
	b.Run("journal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if h, err := s.History(200); err != nil || len(h) != 200 {
				b.Fatalf("%d entries, %v", len(h), err)
			}
		}
	})
}

// writeJournal fills dir's journal with analyses like the controller's
// holds, up to about size bytes, and returns its size.
func writeJournal(b *testing.B, dir string, size int) int {
	b.Helper()
	a := &rollout.Analysis{Status: rollout.Inconclusive}
	for _, check := range []string{"new_blocks", "lost_blocks", "block_rate", "upstream_errors", "waf_time_p50", "waf_time_p99"} {
		a.Outcomes = append(a.Outcomes, rollout.Outcome{Check: check, Status: rollout.Inconclusive, Required: true, Window: rollout.StepWindow,
			Reason:   check + ": 12 of 18204 paired requests (0.066%): rate between 0.01% and 0.19%, not yet conclusive against limit 0.1%",
			Observed: 0.00066, Lower: 0.0001, Upper: 0.0019, Limit: 0.001, N: 18204})
	}
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	var sb strings.Builder
	for i := 0; sb.Len() < size; i++ {
		e := rollout.Entry{Time: t0.Add(time.Duration(i) * 15 * time.Second), Actor: "controller", Action: rollout.ActionHold,
			Reason: fmt.Sprintf("look %d: checks not yet conclusive", i), State: rollout.Progressing, Step: 2, Percent: 5,
			Baseline: "7ac70ac84b770506", Candidate: "89cc15906a589fd3", Analysis: a}
		line, err := rollout.MarshalEntry(e)
		if err != nil {
			b.Fatal(err)
		}
		sb.Write(line)
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, "journal.jsonl"), []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return sb.Len()
}
