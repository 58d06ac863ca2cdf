package suite

import (
	"net/url"
	"slices"
	"strings"
)

// Values is what the cases send, cut the way rules see it: whole URIs and
// bodies, query and form values, header values, each also URL-decoded and
// lower-cased, since CRS transforms before matching. Operator tests use it
// as a corpus of attacks and near-misses; the result is sorted and has no
// duplicates.
func Values(cases []Case) []string {
	seen := map[string]bool{}
	add := func(v string) {
		for _, s := range []string{v, strings.ToLower(v)} {
			seen[s] = true
			if d, err := url.QueryUnescape(s); err == nil {
				seen[d] = true
			}
		}
	}
	pairs := func(s string) {
		for _, kv := range strings.Split(s, "&") {
			_, v, _ := strings.Cut(kv, "=")
			add(v)
		}
	}
	for _, c := range cases {
		for _, st := range c.Stages {
			in := st.Input
			add(in.URI)
			add(in.Data)
			if _, q, ok := strings.Cut(in.URI, "?"); ok {
				pairs(q)
			}
			pairs(in.Data)
			for _, h := range in.Headers {
				add(h.Value)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
