package suite

import (
	"testing"
)

// FuzzParse: a go-ftw file is refused with an error or read into cases
// whose every stage renders to request bytes; it never panics.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		cases, err := Parse("tests.yaml", b)
		if err != nil {
			return
		}
		for _, c := range cases {
			if len(c.Stages) == 0 {
				t.Fatalf("%s: accepted without stages", c.ID)
			}
			for _, st := range c.Stages {
				_ = st.Input.Bytes()
			}
		}
	})
}
