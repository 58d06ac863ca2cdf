package rollout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The journal rotates by size and History reads across the files it
// keeps, oldest first; the oldest beyond JournalKeep is gone.
func TestJournalRotates(t *testing.T) {
	s := FileStore{Dir: t.TempDir(), JournalMaxBytes: 2000, JournalKeep: 2}
	ctx := context.Background()
	for i := range 60 {
		if err := s.Append(ctx, Entry{Time: time.Unix(int64(i), 0).UTC(), Action: ActionHold, Reason: fmt.Sprintf("entry %d %s", i, strings.Repeat("x", 50))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"journal.jsonl", "journal.jsonl.1", "journal.jsonl.2"} {
		info, err := os.Stat(filepath.Join(s.Dir, f))
		if err != nil || info.Size() > 2000 {
			t.Errorf("%s: %v, %d bytes", f, err, info.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "journal.jsonl.3")); err == nil {
		t.Error("a rotated file beyond JournalKeep was kept")
	}
	all, err := s.History(0)
	if err != nil || len(all) < 20 || len(all) >= 60 || !strings.HasPrefix(all[len(all)-1].Reason, "entry 59 ") {
		t.Fatalf("history across files: %v, %d entries", err, len(all))
	}
	for i := 1; i < len(all); i++ {
		if !all[i].Time.After(all[i-1].Time) {
			t.Fatalf("history out of order at %d", i)
		}
	}
	last, _ := s.History(25) // more than the current file holds
	if len(last) != 25 || last[24].Reason != all[len(all)-1].Reason || last[0].Reason != all[len(all)-25].Reason {
		t.Errorf("last 25: %d entries", len(last))
	}
}

// History(n), which reads the journal from its end, returns exactly the
// last n entries of reading it all, whatever the lines are: blank ones,
// a torn one fenced off, lines longer than a read block, a line over the
// limit, a torn end; and across rotated files.
func TestHistoryTailIsTheTail(t *testing.T) {
	entry := func(i, pad int) string {
		b, err := MarshalEntry(Entry{Time: time.Unix(int64(i), 0).UTC(), Action: ActionHold, Reason: fmt.Sprintf("entry %d %s", i, strings.Repeat("r", pad))})
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	const limit = 200 << 10 // the line limit readJournal* are given here
	var b strings.Builder
	b.WriteString("\n") // blank first line
	b.WriteString(entry(0, 0))
	b.WriteString(`{"action":"adv` + "\n") // torn, fenced off by the next append
	for i := 1; i < 40; i++ {
		switch i % 10 {
		case 3:
			b.WriteString(entry(i, 100<<10)) // longer than a 64 KiB block
		case 7:
			b.WriteString(`{"action":"pause","reason":"` + strings.Repeat("x", limit) + "\"}\n") // over the limit
		case 9:
			b.WriteString("  \n")
		}
		b.WriteString(entry(i, i*37))
	}
	for _, tail := range []string{"", `{"time":"2026-12-01T00:00:00Z","act`} { // a crash mid-append leaves a torn end
		path := filepath.Join(t.TempDir(), "journal.jsonl")
		if err := os.WriteFile(path, []byte(b.String()+tail), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		all, err := readJournal(f, limit)
		if err != nil || len(all) != 48 { // 40 entries, 4 long ones, 4 unreadable
			t.Fatalf("whole journal: %d entries, %v", len(all), err)
		}
		for n := 1; n <= len(all)+2; n++ {
			got, err := readJournalTail(f, n, limit)
			want := all[max(0, len(all)-n):]
			if err != nil || len(got) != len(want) {
				t.Fatalf("last %d: %d entries, %v; want %d", n, len(got), err, len(want))
			}
			for i := range want {
				if got[i].Action != want[i].Action || got[i].Reason != want[i].Reason || !got[i].Time.Equal(want[i].Time) {
					t.Fatalf("last %d, entry %d: %s %.60q, want %s %.60q", n, i, got[i].Action, got[i].Reason, want[i].Action, want[i].Reason)
				}
			}
		}
		f.Close()
	}

	s := FileStore{Dir: t.TempDir(), JournalMaxBytes: 4000, JournalKeep: 3}
	for i := range 120 {
		if err := s.Append(context.Background(), Entry{Time: time.Unix(int64(i), 0).UTC(), Action: ActionHold, Reason: fmt.Sprint("entry ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.History(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 30, 50, len(all) - 1, len(all), len(all) + 5} {
		got, err := s.History(n)
		want := all[max(0, len(all)-n):]
		if err != nil || len(got) != len(want) || got[0].Reason != want[0].Reason || got[len(got)-1].Reason != want[len(want)-1].Reason {
			t.Errorf("History(%d) across rotated files: %d entries, %v; want %d", n, len(got), err, len(want))
		}
	}
}

// A journal written before a check's status was called CheckStatus still
// reads: the line below is as wafcanary wrote it then, with "verdict" for
// the analysis and for each outcome, and the key stays "verdict".
func TestJournalWrittenWithVerdictReads(t *testing.T) {
	dir := t.TempDir()
	line := `{"time":"2025-01-02T03:04:05Z","actor":"controller","action":"rollback","reason":"new blocks","state":"rolled_back","step":1,"candidate_percent":0,"baseline_version":"b1","candidate_version":"c1",` +
		`"analysis":{"outcomes":[{"check":"new_blocks","verdict":"fail","required":true,"window":"rollout","reason":"942100 blocks customers","observed":0.01,"lower":0.005,"upper":0.02,"limit":0.001,"n":9000},` +
		`{"check":"waf_time_p99","verdict":"inconclusive","required":true,"window":"step","reason":"fewer than 200 samples","observed":0,"lower":0,"upper":0,"limit":0,"n":0}],"verdict":"fail"}}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "journal.jsonl"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := FileStore{Dir: dir}.History(0)
	if err != nil || len(h) != 1 || h[0].Action != ActionRollback || h[0].Analysis == nil {
		t.Fatalf("history: %v, %+v", err, h)
	}
	a := h[0].Analysis
	if a.Status != Fail || len(a.Outcomes) != 2 || a.Outcomes[0].Status != Fail || a.Outcomes[1].Status != Inconclusive {
		t.Errorf("read back %+v", *a)
	}
	b, err := MarshalEntry(h[0])
	if err != nil || !strings.Contains(string(b), `"verdict":"fail"`) || strings.Contains(string(b), `"status"`) {
		t.Errorf("written again as %s (%v), want the key verdict", b, err)
	}
}
