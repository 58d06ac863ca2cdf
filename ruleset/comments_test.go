package ruleset

import (
	"slices"
	"testing"
)

// TestCommentsAbove reads the comment block that ends right above a
// directive, and nothing past a blank line or another directive.
func TestCommentsAbove(t *testing.T) {
	text := `# far away

# wafcanary/owner=alice
  #   wafcanary/expires=2030-01-31
SecRuleRemoveById 920341
SecRuleEngine On
# alone
SecRuleRemoveByTag attack-xss
`
	rs := &Ruleset{Files: []File{{Name: "m.conf", Content: []byte(text)}}}
	ds := rs.Directives()
	if len(ds) != 3 {
		t.Fatalf("%d directives", len(ds))
	}
	for i, want := range [][]string{{"wafcanary/owner=alice", "wafcanary/expires=2030-01-31"}, nil, {"alone"}} {
		if got := rs.CommentsAbove(ds[i]); !slices.Equal(got, want) {
			t.Errorf("%s line %d: %q, want %q", ds[i].Name, ds[i].Line, got, want)
		}
	}
	if got := rs.CommentsAbove(Directive{File: "other.conf", Line: 3}); got != nil {
		t.Errorf("another file: %q", got)
	}
}
