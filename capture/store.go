package capture

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/verdict"
)

// Errors callers branch on.
var (
	// ErrNotFound is a request ID with no capture.
	ErrNotFound = errors.New("no capture of that request")
	// ErrNoSignature is a signature the store does not hold.
	ErrNoSignature = errors.New("no blocks of that signature are kept")
	// ErrAmbiguous is a signature prefix that more than one held
	// signature starts with.
	ErrAmbiguous = errors.New("more than one signature starts so")
	// ErrPinLimit is a pin past capture.max_pinned.
	ErrPinLimit = errors.New("capture.max_pinned signatures are pinned already")
	// ErrNoSpace is a capture refused to keep capture.min_free_bytes free.
	ErrNoSpace = errors.New("capture not written to keep the volume's free space")
	// ErrExists is a capture refused because its request ID is captured
	// already.
	ErrExists = errors.New("a capture of that request ID exists: the first one is kept")
)

// Bounds of what the store remembers per signature besides its captures.
const (
	// maxClients is the distinct client addresses counted per signature;
	// past it the count says "or more".
	maxClients = 32
	// maxRecent is the request IDs remembered per signature, kept or not,
	// so that an ID quoted by a user leads to its signature.
	maxRecent = 8
)

// queueSize is the blocks waiting for the writer. Under a flood of blocks
// the writer competes for CPU with the proxy; a block that finds the queue
// full is not counted under its signature (wafcanary_captures_not_written_total
// {reason="queue_full"}). Each holds at most max_body_bytes of body, so
// the queue holds at most 256 times that.
const queueSize = 256

// flushEvery is how often the writer saves the index when it changed:
// counts lost in a crash are at most this old.
const flushEvery = 10 * time.Second

// indexName is the index file in the store's directory: every signature
// with its counts, pins and captures. The captures themselves are one
// file each, named by a hash of their request ID.
const indexName = "index.json"

// captureName is what a capture's file name looks like (fileOf).
var captureName = regexp.MustCompile(`^[0-9a-f]{32}\.json$`)

// Eviction reasons, the values of the metrics' reason label.
var reasons = [...]string{"max_signatures", "max_requests", "max_bytes", "age"}

const (
	byMaxSignatures = iota
	byMaxRequests
	byMaxBytes
	byAge
)

// Store keeps blocked requests by signature (Shape): for each signature
// its count, first and last time, distinct clients, and its first
// captures_per_signature requests, one file each (mode 0600), redacted.
// When a bound is passed (max_signatures, max_requests, max_bytes) the
// signature seen least recently goes, whole; captures go at max_age, and
// a signature when it has not been seen for that long. A pinned signature
// stays until unpinned. The index of signatures is saved beside the
// captures (index.json), so they outlive a restart.
//
// The request path only offers a block to a bounded queue; one writer
// goroutine (Run) groups, redacts, writes and evicts, so a slow disk never
// slows a response. Every method is safe for concurrent use.
type Store struct {
	dir   string
	cfg   Config
	red   redactor
	queue chan verdict.Block
	log   *slog.Logger
	// Dropped counts blocks not captured: the queue was full.
	Dropped atomic.Int64
	// NoSpace counts blocks not captured to keep capture.min_free_bytes
	// free on the volume.
	NoSpace atomic.Int64
	// Repeats counts blocks counted but not kept: their signature had
	// its captures already.
	Repeats atomic.Int64
	// evictedCaptures and evictedSigs count what went before an
	// operator saw it, by reason.
	evictedCaptures, evictedSigs [len(reasons)]atomic.Int64
	// free reports the bytes free to this process on dir's volume; ok is
	// false where that cannot be known. A field so tests can fill a disk.
	free func(dir string) (int64, bool)
	now  func() time.Time

	flushMu sync.Mutex // one index write at a time, in order

	mu    sync.Mutex
	sigs  map[string]*sigEntry // by key
	lru   *list.List           // of *sigEntry, least recently seen first
	files map[string]*sigEntry // capture file name → its signature
	// recent maps the request IDs in some signature's Recent to it.
	recent   map[string]*sigEntry
	prefixes map[string]int // first 8 hex digits → signatures held
	nfiles   int
	bytes    int64
	pinned   int
	dirty    bool
	// lastNoSpace is when the writer last logged ErrNoSpace.
	lastNoSpace time.Time
}

// sigEntry is one signature as the store keeps it, and as the index
// file holds it.
type sigEntry struct {
	Key string `json:"key"`
	Shape
	Count        int64      `json:"count"`
	First        time.Time  `json:"first"`
	Last         time.Time  `json:"last"`
	Clients      []uint64   `json:"clients,omitempty"` // hashes of client addresses, sorted
	ManyClients  bool       `json:"many_clients,omitempty"`
	Credentialed int64      `json:"credentialed,omitempty"`
	ScoreMin     int        `json:"score_min"`
	ScoreMax     int        `json:"score_max"`
	Pinned       bool       `json:"pinned,omitempty"`
	Captures     []captured `json:"captures,omitempty"` // oldest first
	Recent       []string   `json:"recent,omitempty"`   // newest last

	elem *list.Element
}

type captured struct {
	ID   string    `json:"id"`
	File string    `json:"file"`
	Size int64     `json:"size"`
	At   time.Time `json:"at"`
}

type indexFile struct {
	Version int `json:"version"`
	// Signatures are least recently seen first.
	Signatures []*sigEntry `json:"signatures"`
}

// Open opens (creating it, mode 0700) the store in dir: the index of
// signatures and the captures, and prunes what its limits no longer
// allow. Captures written after the index was last saved (a crash) are
// read back into it; captures from before signatures existed are grouped
// by theirs. now is the store's clock (nil: real time). It alone dates
// captures and signatures: a capture's file time is set from it when
// written and read back after a restart, so age is never measured
// between two clocks.
func Open(dir string, cfg Config, log *slog.Logger, now func() time.Time) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	s := &Store{dir: dir, cfg: cfg, red: newRedactor(cfg), queue: make(chan verdict.Block, queueSize), log: log, now: now, free: freeBytes,
		sigs: map[string]*sigEntry{}, lru: list.New(), files: map[string]*sigEntry{}, recent: map[string]*sigEntry{}, prefixes: map[string]int{}}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	onDisk := map[string]fs.FileInfo{}
	for _, de := range des {
		name := de.Name()
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		switch {
		case strings.HasPrefix(name, ".tmp-"): // a write a crash cut short
			_ = os.Remove(filepath.Join(dir, name))
		case captureName.MatchString(name):
			onDisk[name] = info
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadIndexLocked(onDisk); err != nil {
		// The captures are the truth; the index only adds counts.
		log.Warn("capture index not read; signatures rebuilt from the captures, counts restart", "error", err.Error())
		s.resetLocked()
	}
	s.adoptLocked(onDisk)
	s.pruneAgeLocked()
	s.pruneBoundsLocked()
	return s, nil
}

func (s *Store) resetLocked() {
	s.sigs, s.lru, s.files, s.recent, s.prefixes = map[string]*sigEntry{}, list.New(), map[string]*sigEntry{}, map[string]*sigEntry{}, map[string]int{}
	s.nfiles, s.bytes, s.pinned = 0, 0, 0
}

// loadIndexLocked reads the index, keeping of each signature only the
// captures still on disk.
func (s *Store) loadIndexLocked(onDisk map[string]fs.FileInfo) error {
	b, err := os.ReadFile(filepath.Join(s.dir, indexName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var idx indexFile
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("%s: %w", indexName, err)
	}
	for _, e := range idx.Signatures {
		if e == nil || e.Key != e.Shape.key() || s.sigs[e.Key] != nil {
			continue // a hand edit, or a duplicate
		}
		kept := e.Captures[:0]
		for _, c := range e.Captures {
			info, ok := onDisk[c.File]
			if !ok || s.files[c.File] != nil || c.File != fileOf(c.ID) {
				continue // gone, named twice, or not its ID's
			}
			c.Size = info.Size()
			kept = append(kept, c)
			s.files[c.File] = e
			s.nfiles++
			s.bytes += c.Size
		}
		e.Captures = kept
		recent := e.Recent
		e.Recent = nil
		s.addLocked(e)
		for _, id := range recent {
			s.noteRecentLocked(e, id)
		}
	}
	return nil
}

// adoptLocked files the captures the index does not name under their
// signatures: written after the index was last saved, or by a release
// without signatures. A file that does not read as a capture is removed:
// the directory is the store's own.
func (s *Store) adoptLocked(onDisk map[string]fs.FileInfo) {
	var orphans []string
	for name := range onDisk {
		if s.files[name] == nil {
			orphans = append(orphans, name)
		}
	}
	sort.Slice(orphans, func(i, j int) bool { return onDisk[orphans[i]].ModTime().Before(onDisk[orphans[j]].ModTime()) })
	for _, name := range orphans {
		info := onDisk[name]
		p := filepath.Join(s.dir, name)
		var rec Record
		b, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err == nil && fileOf(rec.ID) != name {
			err = errors.New("its request ID does not match its name")
		}
		if err != nil {
			s.log.Warn("capture not readable; removed", "file", name, "error", err.Error())
			_ = os.Remove(p)
			continue
		}
		shape := ShapeOf(rec.Host, rec.URI, rec.Verdict)
		shape.Shadow = rec.Shadow
		at := info.ModTime()
		e := s.sigs[shape.key()]
		if e == nil {
			e = &sigEntry{Key: shape.key(), Shape: shape, First: at, ScoreMin: rec.Verdict.InboundScore}
			s.addLocked(e)
		}
		if !slices.Contains(e.Recent, rec.ID) { // else counted before the index was saved
			s.countLocked(e, at, rec.ID, rec.ClientIP, rec.Header, rec.Verdict.InboundScore)
		}
		e.Captures = append(e.Captures, captured{ID: rec.ID, File: name, Size: info.Size(), At: at})
		s.files[name] = e
		s.nfiles++
		s.bytes += info.Size()
		s.dirty = true
	}
}

// addLocked holds a new signature, as the most recently seen.
func (s *Store) addLocked(e *sigEntry) {
	s.sigs[e.Key] = e
	e.elem = s.lru.PushBack(e)
	s.prefixes[e.Key[:8]]++
	if e.Pinned {
		s.pinned++
	}
}

// countLocked counts one block of e, seen at.
func (s *Store) countLocked(e *sigEntry, at time.Time, id, clientIP string, h map[string][]string, score int) {
	e.Count++
	if at.After(e.Last) {
		e.Last = at
	}
	if at.Before(e.First) {
		e.First = at
	}
	s.lru.MoveToBack(e.elem)
	hash := fnv.New64a()
	hash.Write([]byte(clientIP))
	c := hash.Sum64()
	if i, found := slices.BinarySearch(e.Clients, c); !found {
		if len(e.Clients) < maxClients {
			e.Clients = slices.Insert(e.Clients, i, c)
		} else {
			e.ManyClients = true
		}
	}
	if len(h["Cookie"]) > 0 || len(h["Authorization"]) > 0 {
		e.Credentialed++
	}
	if e.Count == 1 || score < e.ScoreMin {
		e.ScoreMin = score
	}
	e.ScoreMax = max(e.ScoreMax, score)
	s.noteRecentLocked(e, id)
	s.dirty = true
}

func (s *Store) noteRecentLocked(e *sigEntry, id string) {
	if id == "" {
		return
	}
	e.Recent = append(e.Recent, id)
	s.recent[id] = e
	if len(e.Recent) > maxRecent {
		old := e.Recent[0]
		e.Recent = e.Recent[1:]
		if s.recent[old] == e && !slices.Contains(e.Recent, old) {
			delete(s.recent, old)
		}
	}
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

// Run writes offered blocks until ctx is done, prunes captures past
// max_age every minute whether or not anything is blocked, and saves the
// index every flushEvery when it changed, and once more when it returns.
func (s *Store) Run(ctx context.Context) {
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	defer s.flushLogged()
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			s.mu.Lock()
			s.pruneAgeLocked()
			s.mu.Unlock()
		case <-flush.C:
			s.flushLogged()
		case b := <-s.queue:
			switch err := s.take(b); {
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

// take counts b under its signature and, while the signature has fewer
// than captures_per_signature captures, keeps it. Only the writer
// goroutine calls it: nothing else adds or evicts, so what it reads
// under the lock still holds when it takes the lock again.
func (s *Store) take(b verdict.Block) error {
	q := b.Request
	shape := shapeOfBlock(b)
	key := shape.key()
	at := s.now()
	name := fileOf(q.ID)
	s.mu.Lock()
	e := s.sigs[key]
	if e == nil {
		e = &sigEntry{Key: key, Shape: shape, First: at}
		s.addLocked(e)
	}
	s.countLocked(e, at, q.ID, q.ClientIP, q.Header, b.Record.Verdict.InboundScore)
	// An ID names one capture, the first: tune excludes what a capture
	// shows, so a later request must never replace the one a user
	// quoted. (The router does not give an ID twice; this holds across
	// its restarts and for IDs a trusted proxy reuses.)
	exists := s.files[name] != nil
	full := len(e.Captures) >= s.cfg.CapturesPerSignature
	s.pruneBoundsLocked() // a new signature may pass max_signatures
	_, held := s.sigs[key]
	s.mu.Unlock()
	switch {
	case exists:
		return ErrExists
	case full:
		s.Repeats.Add(1)
		return nil
	case !held: // every other signature is pinned and the bytes are spent
		return nil
	}
	rec := s.red.record(b, s.cfg.MaxBodyBytes)
	size, err := s.write(name, rec, at)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Captures = append(e.Captures, captured{ID: q.ID, File: name, Size: size, At: at})
	s.files[name] = e
	s.nfiles++
	s.bytes += size
	s.dirty = true
	s.pruneBoundsLocked()
	return nil
}

// fileOf names a capture by a hash of its request ID: the ID is the
// client's to choose, a file name must not be.
func fileOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16]) + ".json"
}

// write writes rec as the file name, mode 0600, whole or not at all, and
// returns its size.
func (s *Store) write(name string, rec Record, at time.Time) (int64, error) {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return 0, err
	}
	if s.cfg.MinFreeBytes > 0 {
		if free, ok := s.free(s.dir); ok && free-int64(len(b)) < s.cfg.MinFreeBytes {
			s.NoSpace.Add(1)
			return 0, fmt.Errorf("%w: %d bytes free, capture.min_free_bytes is %d", ErrNoSpace, free, s.cfg.MinFreeBytes)
		}
	}
	if err := s.writeFile(name, b, at); err != nil {
		return 0, err
	}
	return int64(len(b)), nil
}

// writeFile replaces name in the store's directory with b, mode 0600,
// through a temporary file renamed into place, dated at by the store's
// clock (read back by Open).
func (s *Store) writeFile(name string, b []byte, at time.Time) error {
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
	if err := os.Chtimes(tmp.Name(), at, at); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(s.dir, name))
}

// pruneAgeLocked drops the captures past max_age and the signatures not
// seen for that long, pinned ones excepted.
func (s *Store) pruneAgeLocked() {
	cutoff := s.now().Add(-s.cfg.MaxAge)
	for el := s.lru.Front(); el != nil; {
		e := el.Value.(*sigEntry)
		el = el.Next()
		if e.Pinned {
			continue
		}
		if e.Last.Before(cutoff) {
			s.evictLocked(e, byAge)
			continue
		}
		kept := e.Captures[:0]
		for _, c := range e.Captures {
			if c.At.Before(cutoff) {
				s.removeLocked(c)
				s.evictedCaptures[byAge].Add(1)
				continue
			}
			kept = append(kept, c)
		}
		e.Captures = kept
	}
}

// pruneBoundsLocked evicts the signatures seen least recently, pinned
// ones excepted, while the store is past a bound.
func (s *Store) pruneBoundsLocked() {
	for {
		reason := -1
		switch {
		case len(s.sigs) > s.cfg.MaxSignatures:
			reason = byMaxSignatures
		case s.nfiles > s.cfg.MaxRequests:
			reason = byMaxRequests
		case s.bytes > s.cfg.MaxBytes:
			reason = byMaxBytes
		}
		if reason < 0 {
			return
		}
		el := s.lru.Front()
		for el != nil && el.Value.(*sigEntry).Pinned {
			el = el.Next()
		}
		if el == nil {
			return // only pinned signatures: max_pinned bounds them
		}
		s.evictLocked(el.Value.(*sigEntry), reason)
	}
}

func (s *Store) evictLocked(e *sigEntry, reason int) {
	for _, c := range e.Captures {
		s.removeLocked(c)
	}
	s.evictedCaptures[reason].Add(int64(len(e.Captures)))
	s.evictedSigs[reason].Add(1)
	for _, id := range e.Recent {
		if s.recent[id] == e {
			delete(s.recent, id)
		}
	}
	s.lru.Remove(e.elem)
	delete(s.sigs, e.Key)
	if s.prefixes[e.Key[:8]]--; s.prefixes[e.Key[:8]] <= 0 {
		delete(s.prefixes, e.Key[:8])
	}
	if e.Pinned {
		s.pinned--
	}
	s.dirty = true
}

func (s *Store) removeLocked(c captured) {
	if err := os.Remove(filepath.Join(s.dir, c.File)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("capture not pruned", "file", c.File, "error", err.Error())
	}
	delete(s.files, c.File)
	s.nfiles--
	s.bytes -= c.Size
	s.dirty = true
}

// Flush saves the index now if it changed: signatures, counts and pins
// outlive a restart. Run calls it; so does Pin, so that a pin the API
// answered is on disk.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	idx := indexFile{Version: 1, Signatures: make([]*sigEntry, 0, len(s.sigs))}
	for el := s.lru.Front(); el != nil; el = el.Next() {
		e := *el.Value.(*sigEntry)
		e.Clients, e.Captures, e.Recent = slices.Clone(e.Clients), slices.Clone(e.Captures), slices.Clone(e.Recent)
		idx.Signatures = append(idx.Signatures, &e)
	}
	s.dirty = false
	at := s.now()
	s.mu.Unlock()
	b, err := json.Marshal(idx)
	if err == nil {
		err = s.writeFile(indexName, b, at)
	}
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("capture index: %w", err)
	}
	return nil
}

func (s *Store) flushLogged() {
	if err := s.Flush(); err != nil {
		s.log.Error("capture index not saved", "error", err.Error())
	}
}

// Get returns the capture of request id.
func (s *Store) Get(id string) (Record, error) {
	s.mu.Lock()
	e := s.files[fileOf(id)]
	pinned := e != nil && e.Pinned
	s.mu.Unlock()
	if e == nil {
		return Record{}, ErrNotFound
	}
	rec, err := s.read(fileOf(id))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, ErrNotFound // evicted meanwhile
	}
	if err != nil {
		return Record{}, fmt.Errorf("capture %s: %w", id, err)
	}
	if rec.ID != id || (!pinned && rec.Time.Before(s.now().Add(-s.cfg.MaxAge))) {
		return Record{}, ErrNotFound // a hash collision, a hand edit, or past max_age
	}
	return rec, nil
}

func (s *Store) read(name string) (Record, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// Len is how many captures the store holds.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nfiles
}

// List returns the n signatures seen most recently (all for n <= 0),
// newest first, with their signals.
func (s *Store) List(n int) []Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sweep := s.sweepsLocked()
	out := []Summary{}
	for el := s.lru.Back(); el != nil && (n <= 0 || len(out) < n); el = el.Prev() {
		e := el.Value.(*sigEntry)
		out = append(out, s.summaryLocked(e, sweep[sweepKey(e)]-1))
	}
	return out
}

// Stats says what the store holds against its limits.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Signatures: len(s.sigs), MaxSignatures: s.cfg.MaxSignatures, Requests: s.nfiles, MaxRequests: s.cfg.MaxRequests,
		Bytes: s.bytes, MaxBytes: s.cfg.MaxBytes, Pinned: s.pinned, MaxPinned: s.cfg.MaxPinned, PerSignature: s.cfg.CapturesPerSignature,
		EvictedSignatures: map[string]int64{}}
	for i, r := range reasons {
		st.EvictedSignatures[r] = s.evictedSigs[i].Load()
	}
	return st
}

// sweepsLocked counts, per host and rule set, the distinct paths
// blocked: how many paths a signature's rules blocked on its host.
func (s *Store) sweepsLocked() map[string]int {
	paths := map[string]map[string]bool{}
	for _, e := range s.sigs {
		k := sweepKey(e)
		if paths[k] == nil {
			paths[k] = map[string]bool{}
		}
		paths[k][e.Path] = true
	}
	m := make(map[string]int, len(paths))
	for k, ps := range paths {
		m[k] = len(ps)
	}
	return m
}

func sweepKey(e *sigEntry) string { return e.Host + "\x00" + fmt.Sprint(e.Rules) }

func (s *Store) summaryLocked(e *sigEntry, sweep int) Summary {
	sum := Summary{Sig: s.displayLocked(e.Key), Shape: e.Shape, Count: e.Count, First: e.First, Last: e.Last,
		Clients: len(e.Clients), ClientsMore: e.ManyClients, Credentialed: e.Credentialed, ScoreMin: e.ScoreMin, ScoreMax: e.ScoreMax,
		Pinned: e.Pinned, Captures: []CaptureRef{}, Recent: slices.Clone(e.Recent), Signals: signals(e, sweep)}
	sum.Rules, sum.Targets = slices.Clone(e.Rules), slices.Clone(e.Targets)
	if sum.Recent == nil {
		sum.Recent = []string{}
	}
	for _, c := range e.Captures {
		sum.Captures = append(sum.Captures, CaptureRef{ID: c.ID, Time: c.At})
	}
	return sum
}

// displayLocked is the signature as shown: 8 hex digits, or 16 when
// another signature held starts with the same 8.
func (s *Store) displayLocked(key string) string {
	if s.prefixes[key[:8]] > 1 {
		return "sig:" + key
	}
	return "sig:" + key[:8]
}

// hexDigits is what a signature is after its "sig:".
var hexDigits = regexp.MustCompile(`^[0-9a-f]{8,16}$`)

// resolveLocked finds the signature ref names: sig: (optional) and at
// least 8 of its hex digits.
func (s *Store) resolveLocked(ref string) (*sigEntry, error) {
	p := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(ref), "sig:"))
	if !hexDigits.MatchString(p) {
		return nil, fmt.Errorf("%q: %w (a signature is sig: and 8 to 16 hex digits, as `wafcanary blocks` shows it)", ref, ErrNoSignature)
	}
	if e := s.sigs[p]; e != nil {
		return e, nil
	}
	var found []*sigEntry
	for k, e := range s.sigs {
		if strings.HasPrefix(k, p) {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s: %w (evicted, past capture.max_age, or never seen; `wafcanary blocks` lists those kept)", ref, ErrNoSignature)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, e := range found {
		names = append(names, "sig:"+e.Key)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("%s: %w: %s", ref, ErrAmbiguous, strings.Join(names, ", "))
}

// Signature returns the summary of the signature ref names (sig: and at
// least 8 hex digits).
func (s *Store) Signature(ref string) (Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.resolveLocked(ref)
	if err != nil {
		return Summary{}, err
	}
	return s.summaryLocked(e, s.sweepsLocked()[sweepKey(e)]-1), nil
}

// SignatureOfRequest returns the summary of the signature a recent block
// with request ID id had, whether it was kept or not.
func (s *Store) SignatureOfRequest(id string) (Summary, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.files[fileOf(id)]
	if e == nil {
		e = s.recent[id]
	}
	if e == nil {
		return Summary{}, false
	}
	return s.summaryLocked(e, s.sweepsLocked()[sweepKey(e)]-1), true
}

// Records returns the signature ref names and every capture it keeps,
// oldest first; captures evicted meanwhile are left out.
func (s *Store) Records(ref string) (Summary, []Record, error) {
	sum, err := s.Signature(ref)
	if err != nil {
		return Summary{}, nil, err
	}
	recs := []Record{}
	for _, c := range sum.Captures {
		rec, err := s.Get(c.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Summary{}, nil, err
		}
		recs = append(recs, rec)
	}
	return sum, recs, nil
}

// Pin pins (or unpins) the signature ref names: a pinned signature is
// never evicted and its captures are kept past max_age, until unpinned.
// Pinning one pinned already, or unpinning one that is not, changes
// nothing and succeeds. The index is saved before Pin returns.
func (s *Store) Pin(ref string, pin bool) (Summary, error) {
	s.mu.Lock()
	e, err := s.resolveLocked(ref)
	if err == nil && pin && !e.Pinned && s.pinned >= s.cfg.MaxPinned {
		err = fmt.Errorf("%w (%d): unpin one first (`wafcanary blocks` marks them)", ErrPinLimit, s.cfg.MaxPinned)
	}
	if err != nil {
		s.mu.Unlock()
		return Summary{}, err
	}
	if e.Pinned != pin {
		// Unpinned, it is pruned as any other from the writer's next
		// block or minute: not here, under an operator's call.
		e.Pinned = pin
		if pin {
			s.pinned++
		} else {
			s.pinned--
		}
		s.dirty = true
	}
	sum := s.summaryLocked(e, s.sweepsLocked()[sweepKey(e)]-1)
	s.mu.Unlock()
	if err := s.Flush(); err != nil {
		return Summary{}, err
	}
	return sum, nil
}

// Collectors are the store's metrics for Prometheus: blocks not
// captured, by reason; captures and signatures evicted, by reason; and
// what the store holds.
func (s *Store) Collectors() []prometheus.Collector {
	counter := func(name, help, reason string, n *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"reason": reason}},
			func() float64 { return float64(n.Load()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return f()
		})
	}
	const notWritten = "Blocked requests not captured, by reason: queue_full (the writer fell behind), no_space (capture.min_free_bytes would not stay free) or signature_full (counted under a signature that has its capture.captures_per_signature already)."
	out := []prometheus.Collector{
		counter("wafcanary_captures_not_written_total", notWritten, "queue_full", &s.Dropped),
		counter("wafcanary_captures_not_written_total", notWritten, "no_space", &s.NoSpace),
		counter("wafcanary_captures_not_written_total", notWritten, "signature_full", &s.Repeats),
		gauge("wafcanary_captures_signatures", "Signatures of blocked requests the capture store holds.", func() float64 { return float64(len(s.sigs)) }),
		gauge("wafcanary_captures_requests", "Blocked requests the capture store holds.", func() float64 { return float64(s.nfiles) }),
		gauge("wafcanary_captures_bytes", "Bytes of the captured requests the capture store holds.", func() float64 { return float64(s.bytes) }),
	}
	for i, r := range reasons {
		out = append(out,
			counter("wafcanary_captures_evicted_total", "Captured requests deleted before an operator unpinned them, by reason: max_signatures, max_requests, max_bytes (their signature was the least recently seen when the store passed that bound) or age (capture.max_age).", r, &s.evictedCaptures[i]),
			counter("wafcanary_captures_signatures_evicted_total", "Signatures of blocked requests forgotten with their counts and captures, by reason: max_signatures, max_requests, max_bytes (the least recently seen when the store passed that bound) or age (not seen for capture.max_age).", r, &s.evictedSigs[i]))
	}
	return out
}
