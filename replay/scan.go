package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

// DefaultMaxRecordBytes bounds one record (a log line, a HAR entry, a
// capture): a record past it is reported and skipped, so a log of any
// size is read in bounded memory.
const DefaultMaxRecordBytes = 16 << 20

// peekBytes is how much of a file detection reads.
const peekBytes = 64 << 10

// scanner reads recorded requests out of files, for Scan.
type scanner struct {
	format  Format
	max     int
	yield   func(Entry) error
	problem func(Problem)
	// read are the transaction files a concurrent index already gave,
	// so that a directory holding both the index and its storage is not
	// read twice.
	read map[string]bool
}

// Scan reads every request recorded in paths, files or directories
// (walked, in lexical order, concurrent indexes first), in format (Auto:
// each file's own, detected), calling yield for each in order and
// problem for each record or file it cannot read. It stops at the
// first error yield returns, or when ctx is done; nothing else is fatal.
func Scan(ctx context.Context, paths []string, format Format, maxRecord int, yield func(Entry) error, problem func(Problem)) error {
	if maxRecord <= 0 {
		maxRecord = DefaultMaxRecordBytes
	}
	s := &scanner{format: format, max: maxRecord, yield: yield, problem: problem, read: map[string]bool{}}
	for _, p := range paths {
		if err := s.path(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) path(ctx context.Context, p string) error {
	info, err := os.Stat(p)
	if err != nil {
		s.problem(Problem{Pos: Position{File: p, Entry: -1}, Err: err.Error()})
		return nil
	}
	if !info.IsDir() {
		return s.file(ctx, p, "")
	}
	var files []string
	err = filepath.WalkDir(p, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			s.problem(Problem{Pos: Position{File: name, Entry: -1}, Err: err.Error()})
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Indexes first: the transactions they name are then not read again
	// as files of the storage directory.
	formats := make(map[string]Format, len(files))
	for _, f := range files {
		formats[f], _ = s.detectFile(f)
	}
	sort.SliceStable(files, func(i, j int) bool {
		return formats[files[i]] == concurrentIndex && formats[files[j]] != concurrentIndex
	})
	for _, f := range files {
		if err := s.file(ctx, f, formats[f]); err != nil {
			return err
		}
	}
	return nil
}

// detectFile detects the format of the file name, or says why none.
func (s *scanner) detectFile(name string) (Format, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, peekBytes)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	return detect(head[:n])
}

// file reads one file in its format (known: "" to detect).
func (s *scanner) file(ctx context.Context, name string, known Format) error {
	if s.read[name] {
		return nil
	}
	s.read[name] = true
	format := s.format
	if format == Auto || format == "" {
		format = known
		if format == "" {
			var err error
			if format, err = s.detectFile(name); err != nil {
				s.problem(Problem{Pos: Position{File: name, Entry: -1}, Err: err.Error()})
				return nil
			}
		}
	}
	f, err := os.Open(name)
	if err != nil {
		s.problem(Problem{Pos: Position{File: name, Entry: -1}, Err: err.Error()})
		return nil
	}
	defer f.Close()
	switch format {
	case ModSec3, ModSec2, Coraza:
		return s.lines(ctx, name, f, format)
	case concurrentIndex:
		return s.index(ctx, name, f)
	case HAR:
		return s.har(ctx, name, f)
	case Captures:
		return s.capture(name, f)
	case capturesIndex:
		return nil // signatures and counts, no requests
	}
	return fmt.Errorf("replay: unknown format %q", format)
}

// errUnknownFormat is a file in no format replay reads.
var errUnknownFormat = errors.New("not in any format replay reads (modsec3-json, modsec2-json, coraza-json, har, captures, or a concurrent audit log's index)")

// indexLine is a line of a concurrent audit log's index, as both
// ModSecurity versions write it: ending in the transaction's file, its
// offset, size and md5.
var indexLine = regexp.MustCompile(`^\S+ \S+ \S+ (?:\S+ )?\[[^\]]*\] ".*" \S+ \S+ .* (\S+) \d+ [0-9.]+ md5:[0-9a-f-]+\s*$`)

// detect tells a file's format from its first bytes.
func detect(head []byte) (Format, error) {
	t := bytes.TrimLeft(head, " \t\r\n\ufeff")
	if len(t) == 0 {
		return "", errors.New("empty: no records")
	}
	first, _, _ := bytes.Cut(t, []byte("\n"))
	if t[0] != '{' {
		if indexLine.Match(first) {
			return concurrentIndex, nil
		}
		return "", errUnknownFormat
	}
	has := func(b []byte, keys ...string) bool {
		for _, k := range keys {
			if !bytes.Contains(b, []byte(`"`+k+`"`)) {
				return false
			}
		}
		return true
	}
	switch {
	case has(first, "transaction", "request_line") || has(first, "transaction", "transaction_id", "remote_address"):
		return ModSec2, nil
	case has(first, "transaction", "time_stamp", "unique_id"):
		return ModSec3, nil
	case has(first, "transaction", "unix_timestamp") || has(first, "transaction", "is_interrupted"):
		return Coraza, nil
	case has(t, "log", "entries"):
		return HAR, nil
	case has(t, "id", "arm", "verdict", "uri"):
		return Captures, nil
	case has(t, "signatures"):
		return capturesIndex, nil
	}
	return "", errUnknownFormat
}

// lines reads a log of one JSON record a line.
func (s *scanner) lines(ctx context.Context, name string, r io.Reader, format Format) error {
	parse := map[Format]func([]byte) (Entry, error){ModSec3: parseModSec3, ModSec2: parseModSec2, Coraza: parseCoraza}[format]
	return s.eachLine(ctx, name, r, func(pos Position, line []byte) error {
		e, err := parse(line)
		if err != nil {
			s.problem(Problem{Pos: pos, Err: fmt.Sprintf("not a %s record: %v", format, err)})
			return nil
		}
		e.Pos, e.Format = pos, format
		return s.yield(e)
	})
}

// eachLine calls fn with each line of r that is not blank (mod_security2
// separates records with blank lines), reporting the lines past the
// bound and a read error, until fn returns an error or ctx is done.
func (s *scanner) eachLine(ctx context.Context, name string, r io.Reader, fn func(Position, []byte) error) error {
	lr := newLineReader(r, s.max)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, no, err := lr.next()
		pos := Position{File: name, Line: no, Entry: -1}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, errLineTooLong):
			s.problem(Problem{Pos: pos, Err: err.Error()})
			continue
		case err != nil:
			s.problem(Problem{Pos: pos, Err: "reading: " + err.Error()})
			return nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(pos, line); err != nil {
			return err
		}
	}
}

// index reads a concurrent audit log's index and each transaction file
// it names: absolute, or under the index's directory (mod_security2
// writes them relative to SecAuditLogStorageDir).
func (s *scanner) index(ctx context.Context, name string, r io.Reader) error {
	return s.eachLine(ctx, name, r, func(pos Position, line []byte) error {
		m := indexLine.FindSubmatch(line)
		if m == nil {
			s.problem(Problem{Pos: pos, Err: "not a line of a concurrent audit log's index"})
			return nil
		}
		tx := string(m[1])
		if _, err := os.Stat(tx); err != nil && !filepath.IsAbs(tx) {
			tx = filepath.Join(filepath.Dir(name), tx)
		} else if err != nil {
			if alt := filepath.Join(filepath.Dir(name), tx); fileExists(alt) {
				tx = alt
			}
		}
		if !fileExists(tx) {
			s.problem(Problem{Pos: pos, Err: "the transaction's file " + string(m[1]) + " is not there"})
			return nil
		}
		return s.file(ctx, tx, "")
	})
}

func fileExists(name string) bool {
	info, err := os.Stat(name)
	return err == nil && info.Mode().IsRegular()
}

// errLineTooLong is a record longer than the bound.
var errLineTooLong = errors.New("record longer than the bound")

// lineReader reads lines of at most max bytes; a longer one is skipped
// to its end, in bounded memory, and reported.
type lineReader struct {
	r   *bufio.Reader
	max int
	no  int
	buf []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its newline, and its number.
func (l *lineReader) next() ([]byte, int, error) {
	l.buf = l.buf[:0]
	l.no++
	long := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !long {
			if len(l.buf)+len(chunk) > l.max+1 {
				long, l.buf = true, l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil, errors.Is(err, io.EOF):
			if long {
				return nil, l.no, fmt.Errorf("%w (%d bytes): skipped to its end", errLineTooLong, l.max)
			}
			if errors.Is(err, io.EOF) && len(l.buf) == 0 {
				return nil, l.no, io.EOF
			}
			return bytes.TrimRight(l.buf, "\r\n"), l.no, nil
		default:
			return nil, l.no, err
		}
	}
}
