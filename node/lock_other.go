//go:build !unix

package node

// lockStateDir is a no-op where flock does not exist.
func lockStateDir(dir, who string) (release func(), err error) { return func() {}, nil }
