package rollout

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzReadJournal: any journal bytes read into entries without a panic;
// a line over the limit becomes one unreadable entry; entries written
// back read as the same number of entries.
func FuzzReadJournal(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 4 << 10
		entries, err := readJournal(bytes.NewReader(b), max)
		if err != nil {
			t.Fatalf("reading from memory: %v", err)
		}
		if lines := bytes.Count(b, []byte("\n")) + 1; len(entries) > lines {
			t.Fatalf("%d entries from %d lines", len(entries), lines)
		}
		var again bytes.Buffer
		for _, e := range entries {
			line, err := MarshalEntry(e)
			if err != nil {
				t.Fatalf("entry %+v read but not written: %v", e, err)
			}
			again.Write(append(line, '\n'))
		}
		back, err := readJournal(&again, MaxEntryBytes+1)
		if err != nil || len(back) != len(entries) {
			t.Fatalf("%d entries written, %d read back: %v", len(entries), len(back), err)
		}
	})
}

// FuzzStateCheck: any rollout.json is refused at start-up, by name, or is
// a state a controller resumes from and analyses without a panic, into a
// state that is itself valid.
func FuzzStateCheck(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h := newHarness(t, nil)
		os.MkdirAll(h.store.Dir, 0o700)
		os.WriteFile(filepath.Join(h.store.Dir, "rollout.json"), b, 0o600)
		c, err := New(Options{Config: h.c.Config(), Router: h.r, Evidence: h.ev, Store: h.store, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			if !strings.Contains(err.Error(), "rollout") {
				t.Fatalf("refused without naming the state: %v", err)
			}
			return
		}
		h.ev.set(clean(20000))
		c.Step(context.Background(), h.t0.Add(time.Hour))
		if err := c.State().Check(); err != nil {
			t.Fatalf("resumed from %q into an invalid state: %v", b, err)
		}
	})
}
