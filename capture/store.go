package capture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/verdict"
)

// ErrNotFound is a request ID with no capture.
var ErrNotFound = errors.New("no capture of that request")

// Store keeps captures as one file each (mode 0600) in a directory, within
// the configured count, bytes and age. The request path only offers a
// block to a bounded queue; one writer goroutine (Run) redacts, writes and
// prunes, so a slow disk never slows a response.
type Store struct {
	dir   string
	cfg   Config
	queue chan verdict.Block
	log   *slog.Logger
	// Dropped counts blocks not captured: the queue was full.
	Dropped atomic.Int64
	// NoSpace counts blocks not captured to keep capture.min_free_bytes
	// free on the volume.
	NoSpace atomic.Int64
	// free reports the bytes free to this process on dir's volume; ok is
	// false where that cannot be known. A field so tests can fill a disk.
	free func(dir string) (int64, bool)

	mu    sync.Mutex
	files []entry // oldest first
	bytes int64
	now   func() time.Time
	// lastNoSpace is when the writer last logged ErrNoSpace.
	lastNoSpace time.Time
}

type entry struct {
	name string
	size int64
	at   time.Time
}

// Open opens (creating it, mode 0700) the store in dir and prunes what its
// limits no longer allow. now is the store's clock (nil: real time). It
// alone dates captures: a capture's file time is set from it when written
// and read back after a restart, so age is never measured between two
// clocks.
func Open(dir string, cfg Config, log *slog.Logger, now func() time.Time) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	s := &Store{dir: dir, cfg: cfg, queue: make(chan verdict.Block, 64), log: log, now: now, free: freeBytes}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if strings.HasPrefix(name, ".tmp-") { // a write a crash cut short
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		if strings.HasSuffix(name, ".json") {
			s.files = append(s.files, entry{name: name, size: info.Size(), at: info.ModTime()})
			s.bytes += info.Size()
		}
	}
	sort.Slice(s.files, func(i, j int) bool { return s.files[i].at.Before(s.files[j].at) })
	s.mu.Lock()
	s.pruneLocked()
	s.mu.Unlock()
	return s, nil
}

// ObserveBlock offers a blocked request for capture; it never blocks.
func (s *Store) ObserveBlock(b verdict.Block) {
	select {
	case s.queue <- b:
	default:
		s.Dropped.Add(1)
	}
}

// BlockBody implements router.BlockObserver: the body bytes a capture keeps.
func (s *Store) BlockBody() int { return s.cfg.MaxBodyBytes }

// Run writes offered blocks until ctx is done, and prunes captures past
// max_age every minute, whether or not anything is blocked.
func (s *Store) Run(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.mu.Lock()
			s.pruneLocked()
			s.mu.Unlock()
		case b := <-s.queue:
			switch err := s.save(Of(b, s.cfg)); {
			case errors.Is(err, ErrNoSpace):
				// Once per minute at most: under a flood of blocks this
				// is every block.
				if t := s.now(); t.Sub(s.lastNoSpace) >= time.Minute {
					s.lastNoSpace = t
					s.log.Warn("captures paused: the volume is nearly full", "error", err.Error(), "not_written", s.NoSpace.Load())
				}
			case errors.Is(err, ErrExists):
				s.log.Warn("capture not written", "request_id", b.Request.ID, "error", err.Error())
			case err != nil:
				s.log.Error("capture not written", "request_id", b.Request.ID, "error", err.Error())
			}
		}
	}
}

// fileOf names a capture by a hash of its request ID: the ID is the
// client's to choose, a file name must not be.
func fileOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16]) + ".json"
}

// ErrNoSpace is a capture refused to keep capture.min_free_bytes free.
var ErrNoSpace = errors.New("capture not written to keep the volume's free space")

// ErrExists is a capture refused because its request ID is captured
// already.
var ErrExists = errors.New("a capture of that request ID exists: the first one is kept")

func (s *Store) save(rec Record) error {
	name := fileOf(rec.ID)
	// An ID names one capture, the first: tune excludes what a capture
	// shows, so a later request must never replace the one a user
	// quoted. (The router does not give an ID twice; this holds across
	// its restarts and for IDs a trusted proxy reuses.)
	s.mu.Lock()
	exists := slices.ContainsFunc(s.files, func(e entry) bool { return e.name == name })
	s.mu.Unlock()
	if exists {
		return ErrExists
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if s.cfg.MinFreeBytes > 0 {
		if free, ok := s.free(s.dir); ok && free-int64(len(b)) < s.cfg.MinFreeBytes {
			s.NoSpace.Add(1)
			return fmt.Errorf("%w: %d bytes free, capture.min_free_bytes is %d", ErrNoSpace, free, s.cfg.MinFreeBytes)
		}
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	at := s.now()
	if err := os.Chtimes(tmp.Name(), at, at); err != nil { // the store's clock, read back by Open
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, name)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = append(s.files, entry{name: name, size: int64(len(b)), at: at})
	s.bytes += int64(len(b))
	s.pruneLocked()
	return nil
}

// pruneLocked deletes the oldest captures beyond the limits.
func (s *Store) pruneLocked() {
	cutoff := s.now().Add(-s.cfg.MaxAge)
	for len(s.files) > 0 && (len(s.files) > s.cfg.MaxRequests || s.bytes > s.cfg.MaxBytes || s.files[0].at.Before(cutoff)) {
		e := s.files[0]
		if err := os.Remove(filepath.Join(s.dir, e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("capture not pruned", "file", e.name, "error", err.Error())
		}
		s.files, s.bytes = s.files[1:], s.bytes-e.size
	}
}

// Get returns the capture of request id.
func (s *Store) Get(id string) (Record, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, fileOf(id)))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, fmt.Errorf("capture: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("capture %s: %w", id, err)
	}
	if rec.ID != id || rec.Time.Before(s.now().Add(-s.cfg.MaxAge)) {
		return Record{}, ErrNotFound // a hash collision, a hand edit, or past max_age
	}
	return rec, nil
}

// Len is how many captures the store holds.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files)
}

// Collectors are the store's counters for Prometheus: blocks not captured,
// by reason (queue_full: the writer fell behind; no_space: keeping
// capture.min_free_bytes free).
func (s *Store) Collectors() []prometheus.Collector {
	counter := func(reason string, n *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "wafcanary_captures_not_written_total",
			Help:        "Blocked requests not captured, by reason: queue_full (the writer fell behind) or no_space (capture.min_free_bytes would not stay free).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(n.Load()) })
	}
	return []prometheus.Collector{counter("queue_full", &s.Dropped), counter("no_space", &s.NoSpace)}
}
