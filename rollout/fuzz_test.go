package rollout

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
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

// FuzzReadJournalTail: reading a journal from its end gives exactly the
// last n entries of reading it from its start, whatever its bytes.
func FuzzReadJournalTail(f *testing.F) {
	f.Add([]byte("{\"action\":\"start\"}\n\n{\"act\n{\"action\":\"hold\"}"), uint8(2))
	f.Add([]byte("{\"action\":\"hold\",\"analysis\":{\"outcomes\":[{\"check\":\"p99\",\"upper\":\"+Inf\"}]}}\n"), uint8(3))
	f.Add([]byte("\n\n{\"action\":\"pause\",\"reason\":\""+strings.Repeat("x", 5000)+"\"}\n{\"action\":\"hold\"}\n"), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, n uint8) {
		const max = 4 << 10
		path := filepath.Join(t.TempDir(), "journal.jsonl")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		all, err := readJournal(file, max)
		if err != nil {
			t.Fatal(err)
		}
		want := all[len(all)-min(len(all), int(n)):]
		got, err := readJournalTail(file, int(n), max)
		if err != nil || len(got) != len(want) {
			t.Fatalf("last %d of %d entries: got %d, %v", n, len(all), len(got), err)
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("last %d, entry %d: %+v, want %+v", n, i, got[i], want[i])
			}
		}
	})
}
