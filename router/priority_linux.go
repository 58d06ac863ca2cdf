package router

import (
	"runtime"
	"syscall"
)

// shadowNice is how much nicer than the process the threads shadow
// workers run on are (nice values stop at 19).
const shadowNice = 10

// lowerPriority pins the calling goroutine to its OS thread and lowers
// that thread's scheduling priority, so that on a busy machine the kernel
// runs request handling (and the upstream, and anything else sharing the
// cores) before shadow evaluation, which nobody waits for. Under
// saturation the shadow queue then fills and samples are dropped and
// counted, rather than live requests queueing behind shadow work.
//
// The goroutine never unlocks, so its thread ends with it and is never
// handed to other goroutines; and the runtime creates new threads through
// a template thread when asked from a locked one, so the niceness does
// not spread to threads that serve requests.
func lowerPriority() error {
	runtime.LockOSThread()
	// On Linux, PRIO_PROCESS with a thread ID reads and sets that thread's
	// nice value; the raw getpriority(2) returns 20 - nice.
	tid := syscall.Gettid()
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return err
	}
	return syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(20-p+shadowNice, 19))
}
