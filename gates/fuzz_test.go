package gates

import (
	"testing"
)

// FuzzParseCases: a cases file is refused with an error or read into
// cases that each make a request; it never panics, and never holds a case
// that fails only when the gates run.
func FuzzParseCases(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseCases("cases.yaml", b)
		if err != nil {
			return
		}
		if len(cs.MustPass)+len(cs.MustBlock) == 0 {
			t.Fatal("accepted a file with no cases")
		}
		for _, list := range [][]Case{cs.MustPass, cs.MustBlock} {
			for _, c := range list {
				if c.Name == "" {
					t.Fatalf("accepted a case without a name: %+v", c)
				}
				if _, err := c.request(); err != nil {
					t.Fatalf("accepted case %q makes no request: %v", c.Name, err)
				}
			}
		}
	})
}
