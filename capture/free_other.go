//go:build !unix

package capture

// freeBytes cannot tell free space here; captures are bounded by their
// own limits only.
func freeBytes(string) (int64, bool) { return 0, false }
