package literal

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// naive is the definition FoundIn must meet.
func naive(members []string, fold bool, value string) bool {
	if fold {
		value = asciiLower(value)
	}
	for _, m := range members {
		if strings.Contains(value, m) {
			return true
		}
	}
	return false
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lower(c)
	}
	return string(b)
}

func TestFoundIn(t *testing.T) {
	tests := []struct {
		members []string
		fold    bool
		value   string
		want    bool
	}{
		{[]string{"select"}, true, "1 UNION SELECT", true},
		{[]string{"Server Error"}, false, "server error", false},
		{[]string{"Server Error"}, false, "<h1>Server Error</h1>", true},
		{[]string{"a", "bc", "def", "ghij", "klmno"}, false, "xxghijxx", true}, // table path, case-sensitive
		{[]string{"a", "bc", "def", "ghij", "klmno"}, false, "xxGHIJxx", false},
		{[]string{"é"}, true, "\u00c9", false}, // folding is ASCII only, as Aho-Corasick's
		{[]string{"é"}, true, "caf\u00e9", true},
		{[]string{"<"}, true, "a<b", true},
		{[]string{"xy"}, true, "x", false}, // a member's first byte at the end
		{[]string{"", "zz"}, false, "abc", true},
	}
	for _, tt := range tests {
		if got := New(tt.members, tt.fold).FoundIn(tt.value); got != tt.want {
			t.Errorf("%q fold %v in %q: %v, want %v", tt.members, tt.fold, tt.value, got, tt.want)
		}
	}
}

// Random sets over a small alphabet, so that members share first bytes
// and pairs collide in the hashed bitmap, against the definition.
func TestFoundInRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcABC<>/ \xc3\xa9"
	str := func(max int) string {
		var b strings.Builder
		for range 1 + r.IntN(max) {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 2000 {
		fold := r.IntN(2) == 0
		var members []string
		for range 1 + r.IntN(12) {
			m := str(4)
			if fold {
				m = asciiLower(m)
			}
			members = append(members, m)
		}
		set := New(members, fold)
		for range 20 {
			v := str(24)
			if got, want := set.FoundIn(v), naive(members, fold, v); got != want {
				t.Fatalf("%q fold %v in %q: %v, want %v", members, fold, v, got, want)
			}
		}
	}
}

func BenchmarkFoundIn(b *testing.B) {
	keywords := New(strings.Fields("select union insert update delete drop sleep benchmark waitfor exec xp_cmdshell"), true)
	title := New([]string{"<title>r57 shell</title>"}, false)
	page := strings.Repeat("<li><a href=\"/products/wh-1000xm5?ref=list\">Wireless headphones</a> 279.99</li>\n", 80)
	b.Run("folded-keywords-6KB", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			keywords.FoundIn(page)
		}
	})
	b.Run("exact-title-6KB", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			title.FoundIn(page)
		}
	})
}
