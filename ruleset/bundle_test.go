package ruleset

import (
	"errors"
	"path/filepath"
	"testing"
)

// A bundle compiles to the version it was saved as, anywhere; changed
// bytes compile to another version and are refused.
func TestBundleRoundTripAndMismatch(t *testing.T) {
	rs, err := Load(filepath.Join("testdata", "ok.conf"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := rs.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Compile(nil)
	if err != nil || again.Version != rs.Version {
		t.Fatalf("round trip: %v, %v", again, err)
	}
	again.Retire()
	b.Files[b.Main] = append(append([]byte(nil), b.Files[b.Main]...), []byte("\n# edited\n")...)
	if _, err := b.Compile(nil); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("edited bundle: %v, want ErrVersionMismatch", err)
	}
	if _, err := (&Ruleset{Path: "embedded", Files: []File{{Name: "@x", Embedded: true}}}).Bundle(); err == nil {
		t.Error("a bundle of an embedded main file")
	}
}
