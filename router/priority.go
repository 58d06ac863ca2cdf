package router

// LowerPriority lowers the calling goroutine's OS thread's scheduling
// priority as the shadow workers' is (see lowerPriority), for other
// off-path workers that nobody waits for: call it first thing in the
// worker's goroutine, which then keeps its thread to itself.
func LowerPriority() error { return lowerPriority() }
