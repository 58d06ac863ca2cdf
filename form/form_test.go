package form_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/form"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Parse gives what Coraza's own parser gives, pair by pair, in order.
func TestParse(t *testing.T) {
	type kv struct{ k, v string }
	for _, tc := range []struct {
		body  string
		limit int
		want  []kv
		trunc bool
	}{
		{"a=1&b=2", 0, []kv{{"a", "1"}, {"b", "2"}}, false},
		{"q=x&Q=", 0, []kv{{"q", "x"}, {"Q", ""}}, false},
		{"&&a&=v&b==c&", 0, []kv{{"a", ""}, {"", "v"}, {"b", "=c"}}, false},
		{"a=%3Cb%3e+c&%zz=%4&x=%", 0, []kv{{"a", "<b> c"}, {"%zz", "%4"}, {"x", "%"}}, false},
		{"k=%00%ff%41", 0, []kv{{"k", "\x00\xffA"}}, false},
		{"a=1&b=2&c=3", 2, []kv{{"a", "1"}, {"b", "2"}}, true},
		{"a=1&b=2&&", 2, []kv{{"a", "1"}, {"b", "2"}}, false},
	} {
		var got []kv
		trunc := form.Parse(tc.body, tc.limit, func(k, v string) { got = append(got, kv{k, v}) })
		if !slices.Equal(got, tc.want) || trunc != tc.trunc {
			t.Errorf("Parse(%q, %d) = %q, %v; want %q, %v", tc.body, tc.limit, got, trunc, tc.want, tc.trunc)
		}
	}
}

// A form whose argument names differ only in case hid the first one's
// value from CRS about half the time (Coraza's processor kept whichever
// came later in map order). Twenty tries: each must be blocked.
func TestCaseFoldedNamesAreAllJudged(t *testing.T) {
	rs, err := ruleset.Load("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Retire()
	for _, body := range []string{"q=%3Cscript%3Ealert(1)%3C%2Fscript%3E&Q=", "Q=&q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"} {
		for i := range 20 {
			r, _ := http.NewRequest("POST", "http://shop.example/f", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("User-Agent", "Mozilla/5.0")
			r.Header.Set("Accept", "*/*")
			v, err := verdict.JudgeHTTP(context.Background(), rs, "case", r)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Blocked {
				t.Fatalf("%s, try %d: allowed (rules %v)", body, i+1, v.RuleIDs())
			}
		}
	}
}
