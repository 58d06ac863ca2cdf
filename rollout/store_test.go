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
