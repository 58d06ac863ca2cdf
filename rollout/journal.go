package rollout

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unicode/utf8"
)

// Entry is one journal line: who did what, why, on what evidence.
type Entry struct {
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Action    Action    `json:"action"`
	Reason    string    `json:"reason"`
	State     Phase     `json:"state"`
	Step      int       `json:"step"`
	Percent   float64   `json:"candidate_percent"`
	Baseline  string    `json:"baseline_version"`
	Candidate string    `json:"candidate_version,omitempty"`
	Analysis  *Analysis `json:"analysis,omitempty"`
	// EffectLatency is how long a manual rollback took from request to
	// the new routing state being in force.
	EffectLatency time.Duration `json:"effect_latency_ns,omitempty"`
	// Ticket is the change ticket the action was taken under.
	Ticket string `json:"ticket,omitempty"`
	// Claimed is the actor the client named, when the identity its
	// credential proves (Actor) is another.
	Claimed string `json:"claimed_actor,omitempty"`
	// Emergency marks an admin's promotion past four-eyes.
	Emergency bool `json:"emergency,omitempty"`
}

// journalPath is the file entries are appended to; rotated(i) names the
// older ones.
func (s FileStore) journalPath() string { return filepath.Join(s.Dir, "journal.jsonl") }

// Journal bounds. An entry is written whole or trimmed, never refused: an
// action that happened must be on record. A line the reader cannot hold
// (a hand edit, a journal from elsewhere) is shown as unreadable, not
// allowed to hide the rest of the history.
const (
	// MaxReasonBytes is the longest reason kept in an entry; an override's
	// list of forbidden edits can be long.
	MaxReasonBytes = 64 << 10
	// MaxEntryBytes is the longest entry written. etcd refuses a request
	// over 1.5 MiB, and the fleet journals the same entries.
	MaxEntryBytes = 512 << 10
	// maxLineBytes is the longest journal line History reads.
	maxLineBytes = 16 << 20
)

// ActionUnreadable marks, in History, a journal line that could not be read.
const ActionUnreadable Action = "unreadable"

// MarshalEntry encodes e for a journal within MaxEntryBytes: a long reason
// is cut (saying how much), then, if the entry is still too long, the
// analysis is left out (the reason still summarises it).
func MarshalEntry(e Entry) ([]byte, error) {
	if len(e.Reason) > MaxReasonBytes {
		cut := len(e.Reason) - MaxReasonBytes
		r := e.Reason[:MaxReasonBytes]
		for len(r) > 0 && !utf8.ValidString(r) {
			r = r[:len(r)-1]
		}
		e.Reason = fmt.Sprintf("%s... (%d bytes cut)", r, cut)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEntryBytes && e.Analysis != nil {
		e.Analysis = nil
		e.Reason += fmt.Sprintf(" (analysis of %d bytes not journalled)", len(b))
		b, err = json.Marshal(e)
	}
	return b, err
}

// Append adds an entry to the journal.
func (s FileStore) Append(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := MarshalEntry(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	line := append(b, '\n')
	if err := s.rotate(int64(len(line))); err != nil {
		return fmt.Errorf("journal: rotating: %w", err)
	}
	f, err := os.OpenFile(s.journalPath(), os.O_APPEND|os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	// A crash mid-append leaves a torn last line. Appending onto it would
	// make one unreadable line of the fragment and this entry, losing the
	// entry; a newline first fences the fragment off (History skips it).
	if info, err := f.Stat(); err == nil && info.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, info.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return f.Sync()
}

// The journal rotates by size: when an entry would take journal.jsonl
// past JournalMaxBytes, it becomes journal.jsonl.1 (and .1 becomes .2...),
// and the oldest beyond JournalKeep rotated files is deleted. With the
// shipped interval, holds included, a file lasts about a day.
const (
	JournalMaxBytes = 16 << 20
	JournalKeep     = 4
)

func (s FileStore) maxBytes() int64 {
	if s.JournalMaxBytes > 0 {
		return s.JournalMaxBytes
	}
	return JournalMaxBytes
}

func (s FileStore) keep() int {
	if s.JournalKeep > 0 {
		return s.JournalKeep
	}
	return JournalKeep
}

func (s FileStore) rotated(i int) string { return fmt.Sprintf("%s.%d", s.journalPath(), i) }

// rotate makes room for an entry of n bytes. One writer appends (the
// store's lock holder), so renames race with nothing.
func (s FileStore) rotate(n int64) error {
	info, err := os.Stat(s.journalPath())
	if errors.Is(err, fs.ErrNotExist) || err == nil && (info.Size() == 0 || info.Size()+n <= s.maxBytes()) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Remove(s.rotated(s.keep())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for i := s.keep() - 1; i >= 1; i-- {
		if err := os.Rename(s.rotated(i), s.rotated(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(s.journalPath(), s.rotated(1)); err != nil {
		return err
	}
	return syncDir(s.Dir)
}

// History returns the last n journal entries (all if n <= 0), oldest first,
// across the rotated files it needs. With n > 0 each file is read from its
// end, and only the lines of the entries returned are decoded: the status
// page asks for the last 200 of a journal that grows to 16 MiB. A torn
// line (a crash mid-append) is skipped, not fatal; a line too long to read
// is an ActionUnreadable entry saying where it is.
func (s FileStore) History(n int) ([]Entry, error) {
	var out []Entry
	for i := 0; i <= s.keep(); i++ {
		path := s.journalPath()
		if i > 0 {
			path = s.rotated(i)
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("journal: %w", err)
		}
		var older []Entry
		if n > 0 {
			older, err = readJournalTail(f, n-len(out), maxLineBytes)
		} else {
			older, err = readJournal(f, maxLineBytes)
		}
		f.Close()
		out = append(older, out...)
		if err != nil {
			return out, fmt.Errorf("journal %s: %w", path, err)
		}
		if n > 0 && len(out) >= n {
			break
		}
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// readJournal decodes one entry per line. A line over max bytes is
// skipped without being held in memory.
func readJournal(r io.Reader, max int) ([]Entry, error) {
	var out []Entry
	br := bufio.NewReaderSize(r, 64<<10)
	for offset := int64(0); ; {
		var (
			line []byte
			size int
			err  error
		)
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			size += len(chunk)
			if size <= max {
				line = append(line, chunk...)
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return out, err
		}
		if e, ok := journalLine(line, offset, size, max); ok {
			out = append(out, e)
		}
		offset += int64(size)
		if err == io.EOF {
			return out, nil
		}
	}
}

// readJournalTail decodes the last n entries of the journal in f, oldest
// first, reading the file backwards in blocks from its end and decoding
// nothing before them. Lines count as readJournal counts them (a line
// ends with its newline; the bytes after the last one are a line too): a
// torn or blank line is no entry, a line over max bytes is one
// ActionUnreadable entry, and is not held in memory.
func readJournalTail(f *os.File, n, max int) ([]Entry, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var (
		newest []Entry  // newest first
		parts  [][]byte // the line being assembled, its last part first
		size   int      // its length so far
	)
	// prepend adds b before what the line being assembled has so far.
	prepend := func(b []byte) {
		size += len(b)
		if size <= max && len(b) > 0 {
			parts = append(parts, bytes.Clone(b))
		}
	}
	// emit ends the line being assembled, which starts at start.
	emit := func(start int64) {
		var line []byte
		if size <= max {
			line = make([]byte, 0, size)
			for i := len(parts) - 1; i >= 0; i-- {
				line = append(line, parts[i]...)
			}
		}
		if e, ok := journalLine(line, start, size, max); ok {
			newest = append(newest, e)
		}
		parts, size = parts[:0], 0
	}
	block := make([]byte, 64<<10)
	for pos := info.Size(); pos > 0 && len(newest) < n; {
		k := min(int64(len(block)), pos)
		pos -= k
		buf := block[:k]
		if _, err := f.ReadAt(buf, pos); err != nil && err != io.EOF {
			return nil, err
		}
		for len(newest) < n {
			i := bytes.LastIndexByte(buf, '\n')
			if i < 0 {
				prepend(buf)
				break
			}
			// The newline at i ends the line before: the line being
			// assembled starts just after it.
			prepend(buf[i+1:])
			emit(pos + int64(i) + 1)
			prepend(buf[i : i+1])
			buf = buf[:i]
		}
		if pos == 0 && len(newest) < n {
			emit(0) // the first line, which no newline precedes
		}
	}
	slices.Reverse(newest)
	return newest, nil
}

// journalLine is the entry of the journal line at offset, of size bytes,
// whose bytes are line (nil when size is over max); ok is false for a
// line that is no entry (blank, torn).
func journalLine(line []byte, offset int64, size, max int) (e Entry, ok bool) {
	switch {
	case size > max:
		return Entry{Action: ActionUnreadable,
			Reason: fmt.Sprintf("journal line at byte %d: %d bytes, over the %d MiB a line may have; not shown", offset, size, max>>20)}, true
	case len(bytes.TrimSpace(line)) == 0:
		return Entry{}, false
	}
	return e, json.Unmarshal(line, &e) == nil
}
