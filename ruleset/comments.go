package ruleset

import "strings"

// CommentsAbove returns the comment lines right above d in its file, top
// down, each without its '#' and trimmed: the block of comments that ends
// on the line before d, blank lines ending it. A directive has no actions
// to carry a tag, so notes kept with it (an exception's owner) live
// there. Nil when d's file is not one of r's own or holds no such block.
func (r *Ruleset) CommentsAbove(d Directive) []string {
	for _, f := range r.Files {
		if f.Embedded || f.Name != d.File {
			continue
		}
		lines := strings.Split(string(f.Content), "\n")
		var out []string
		for i := min(d.Line-1, len(lines)) - 1; i >= 0; i-- {
			l := strings.TrimSpace(lines[i])
			if !strings.HasPrefix(l, "#") {
				break
			}
			out = append(out, strings.TrimSpace(strings.TrimPrefix(l, "#")))
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	return nil
}
