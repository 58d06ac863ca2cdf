package literal

import (
	"fmt"
	"io/fs"

	"math/rand/v2"
	"strings"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
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
		b[i] = lowerByte(c)
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
// and four-byte keys, and pairs and keys collide in the hashed bitmaps,
// against the definition.
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
			m := str(1 + r.IntN(8))
			if fold {
				m = asciiLower(m)
			}
			members = append(members, m)
		}
		set := New(members, fold)
		for range 20 {
			v := str(40)
			if got, want := set.FoundIn(v), naive(members, fold, v); got != want {
				t.Fatalf("%q fold %v in %q: %v, want %v", members, fold, v, got, want)
			}
		}
	}
}

// Hundreds of members sharing their first four bytes, and keys that fill
// the open-addressed table's probe runs.
func TestFoundInCrowded(t *testing.T) {
	var members []string
	for i := range 600 {
		members = append(members, fmt.Sprintf("warning: %d failed", i), fmt.Sprintf("%04d", i))
	}
	set := New(members, true)
	for _, tt := range []struct {
		value string
		want  bool
	}{
		{"<b>WARNING: 599 failed</b>", true},
		{"warning: 600 failed", false},
		{"warning: 59 faile", false},
		{"id 0042!", true},
		{"id 042", false},
		{"id 0600", false},
	} {
		if got := set.FoundIn(tt.value); got != tt.want {
			t.Errorf("FoundIn(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

// The table's probe runs stay short on CRS's lists: a hash whose slot
// came from the keys' shared first bytes clustered them into runs of
// 6-20 probes on average (up to 64).
func TestTableProbesShortOnCRS(t *testing.T) {
	for _, name := range []string{"php-errors.data", "lfi-os-files.data", "restricted-files.data", "unix-shell.data"} {
		set := New(crsData(t, name), true)
		mask := uint32(len(set.table) - 1)
		probes, keys := 0, 0
		for _, s := range set.table {
			if s.hi == 0 {
				continue
			}
			keys++
			for j := hash(s.key) >> set.tableShift; set.table[j].key != s.key; j = (j + 1) & mask {
				probes++
			}
			probes++
		}
		if avg := float64(probes) / float64(keys); avg > 2 {
			t.Errorf("%s: %d keys take %.2f probes on average, want at most 2", name, keys, avg)
		}
	}
}

// crsData reads a CRS data file's phrases, lower-cased as @pm compares them.
func crsData(t testing.TB, name string) []string {
	data, err := fs.ReadFile(coreruleset.FS, "@owasp_crs/"+name)
	if err != nil {
		t.Fatal(err)
	}
	var members []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
			members = append(members, strings.ToLower(line))
		}
	}
	return members
}

// lower4 must agree with lower on every byte value in every position;
// a carry from one byte into the next would show here.
func TestLower4(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for pos := range 4 {
		for c := range 256 {
			var in, want [4]byte
			for j := range in {
				in[j] = byte(r.IntN(256))
			}
			in[pos] = byte(c)
			for j := range in {
				want[j] = lowerByte(in[j])
			}
			got := lower4(quad(string(in[:])))
			if got != quad(string(want[:])) {
				t.Fatalf("lower4(%q) = %08x, want %q", in, got, want)
			}
		}
	}
}

func BenchmarkFoundIn(b *testing.B) {
	keywords := New(strings.Fields("select union insert update delete drop sleep benchmark waitfor exec xp_cmdshell"), true)
	title := New([]string{"<title>r57 shell</title>"}, false)
	oracle := New([]string{"ora-", "java.sql.sqlexception", "oracle", "warning"}, true)
	page := strings.Repeat("<li><a href=\"/products/wh-1000xm5?ref=list\">Wireless headphones</a> 279.99</li>\n", 80)
	b.Run("folded-keywords-6KB", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			keywords.FoundIn(page)
		}
	})
	b.Run("folded-few-6KB", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			oracle.FoundIn(page)
		}
	})
	b.Run("exact-title-6KB", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			title.FoundIn(page)
		}
	})
}

// BenchmarkCRSDataFiles searches the bench mix's values for the phrases
// of the CRS data files that @pmFromFile rules search request arguments
// and response bodies for: the lists whose search showed in profiles.
func BenchmarkCRSDataFiles(b *testing.B) {
	page := strings.Repeat("<li><a href=\"/products/wh-1000xm5?ref=list\">Wireless headphones</a> <span class=\"price\">279.99</span></li>\n", 60)
	values := []string{
		page,
		"Dana Whitfield", "dana@example.com", "Order A-10293",
		strings.Repeat("Great product, arrived quickly and works well. ", 8),
		"wireless headphones", "price", "2", "audio", "sony", "shipped",
		"Please leave the parcel with the neighbour at number 12 if nobody answers the door. Thanks a lot!",
		"https://shop.example.com/products/headphones?utm_source=newsletter&utm_medium=email",
	}
	var total int64
	for _, v := range values {
		total += int64(len(v))
	}
	for _, name := range []string{"php-errors.data", "sql-errors.data", "unix-shell.data", "lfi-os-files.data", "windows-powershell-commands.data", "php-function-names-933150.data", "restricted-files.data"} {
		set := New(crsData(b, name), true)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				for _, v := range values {
					set.FoundIn(v)
				}
			}
		})
	}
}
