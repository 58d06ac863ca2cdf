// Package localfile reads a file on the server that a path from outside
// the process names: a cases file given to the admin API's start, and any
// later path argument (replay files). A path from an API request can name
// any file the server can open, so the reader takes a regular file only
// (never a FIFO, which would hang the handler, nor a device such as
// /dev/zero, which would fill memory), reads at most a bound, checked
// while reading since some files (under /proc) report no size, and its
// errors name the path and what is wrong with it, never what it holds.
package localfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Errors callers branch on; every error Read returns that is not about
// the file's kind or size wraps the fs error (fs.ErrNotExist...).
var (
	// ErrNotRegular: a directory, named pipe, device or socket.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: more bytes than the bound.
	ErrTooLarge = errors.New("too large")
)

// Read returns the content of the regular file at path, of at most max
// bytes. The file is checked before it is opened (a device is never
// opened: opening some has effects), opened without blocking (a FIFO put
// in its place in between cannot hang the open), and checked again once
// open to be the file first checked.
func Read(path string, max int64) ([]byte, error) {
	before, err := os.Stat(path)
	if err != nil {
		return nil, pathError(path, err)
	}
	if err := check(path, before, max); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, pathError(path, err)
	}
	defer f.Close()
	after, err := f.Stat()
	if err != nil {
		return nil, pathError(path, err)
	}
	if err := check(path, after, max); err != nil {
		return nil, err
	}
	if !os.SameFile(before, after) {
		return nil, fmt.Errorf("%s: replaced while it was opened; try again: %w", path, fs.ErrInvalid)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, pathError(path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %s: %w", path, bytesText(max), ErrTooLarge)
	}
	return b, nil
}

// check refuses what is not a regular file of at most max bytes.
func check(path string, info fs.FileInfo, max int64) error {
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s (%s): %w", path, kind(info.Mode()), ErrNotRegular)
	}
	if info.Size() > max {
		return fmt.Errorf("%s: more than %s (%d bytes): %w", path, bytesText(max), info.Size(), ErrTooLarge)
	}
	return nil
}

// pathError is err about path, said once: an *fs.PathError repeats the
// path and the system call, which a person has no use for.
func pathError(path string, err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	return fmt.Errorf("%s: %w", path, err)
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.Type().String()
}

// bytesText writes a bound as a person reads it.
func bytesText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
