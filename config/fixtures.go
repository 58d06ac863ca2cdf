package config

import (
	"strings"
	"testing"
)

// Section is a configuration section with its own Validate.
type Section interface{ Validate() error }

// TestSection runs a section's fixtures in dir: each file decoded over
// defaults, as the command decodes it, then validated.
func TestSection[T Section](t *testing.T, dir string, defaults T) {
	t.Helper()
	TestFixtures(t, dir, func(body []byte) error {
		c := defaults
		if err := DecodeYAML(body, &c); err != nil {
			return err
		}
		return c.Validate()
	})
}

// TestFixtures runs a package's configuration fixtures in dir (see
// Fixtures) through load, which decodes a file's body over the section's
// defaults and validates it: each good file must load, each bad one fail
// with its "# want:" fragment.
func TestFixtures(t *testing.T, dir string, load func(body []byte) error) {
	t.Helper()
	fixtures, err := Fixtures(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fixtures) < 3 {
		t.Fatalf("%d fixtures in %s", len(fixtures), dir)
	}
	for _, f := range fixtures {
		t.Run(f.Name, func(t *testing.T) {
			err := load(f.Body)
			switch {
			case f.Want == "" && err != nil:
				t.Fatalf("good file refused: %v", err)
			case f.Want != "" && err == nil:
				t.Fatalf("bad file accepted; want %q", f.Want)
			case f.Want != "" && !strings.Contains(err.Error(), f.Want):
				t.Fatalf("error %q, want it to contain %q", err, f.Want)
			}
		})
	}
}
