package router

import (
	"runtime"
	"syscall"
	"testing"
)

// niceOf reads a thread's nice value; getpriority(2) returns 20 - nice.
func niceOf(t *testing.T, tid int) int {
	t.Helper()
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}

// The shadow worker's thread runs niced, and only that thread: the
// goroutine is pinned to it, so request handling never lands there.
func TestShadowWorkerThreadIsNiced(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := syscall.Gettid()
	before := niceOf(t, self)

	type result struct {
		tid, nice int
		err       error
	}
	done := make(chan result)
	go func() {
		err := lowerPriority()
		tid := syscall.Gettid()
		p, _ := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
		done <- result{tid, 20 - p, err}
		// Exits locked: the runtime ends the thread with its niceness.
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.tid == self {
		t.Fatal("worker ran on the test's locked thread")
	}
	if want := min(before+shadowNice, 19); r.nice != want {
		t.Errorf("worker thread nice = %d, want %d", r.nice, want)
	}
	if got := niceOf(t, self); got != before {
		t.Errorf("test thread nice changed from %d to %d", before, got)
	}
}
