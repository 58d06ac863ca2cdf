//go:build !linux

package router

// lowerPriority does nothing where per-thread priorities are not available.
func lowerPriority() error { return nil }
