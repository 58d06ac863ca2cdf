package ruleset

import (
	"regexp"
	"strconv"
	"strings"
)

// fixLines sets each rule's File and Line to where its directive starts.
// Coraza's parser counts lines across every file it reads (its counter is
// never reset for an include), so explain and tune gave 941180 at
// REQUEST-941's line 5349 where it sits at line 169; and it forgets the
// file once an include returns, so a rule after an Include had none. A
// rule is found by its ID (unique in a ruleset) in the file Coraza named,
// else in any file read; one found nowhere keeps its file and no line (0)
// rather than a wrong one.
func fixLines(rules []Rule, files []File) {
	starts := make(map[string]map[int]int, len(files))
	where := map[int]string{} // rule ID -> the first file that defines it
	for _, f := range files {
		m := ruleStarts(f.Content)
		starts[f.Name] = m
		for id := range m {
			if _, ok := where[id]; !ok {
				where[id] = f.Name
			}
		}
	}
	for i := range rules {
		r := &rules[i]
		if l, ok := starts[r.File][r.ID]; ok {
			r.Line = l
			continue
		}
		if f, ok := where[r.ID]; ok {
			r.File, r.Line = f, starts[f][r.ID]
			continue
		}
		r.Line = 0
	}
}

// idAction finds a rule's id action in a directive's text.
var idAction = regexp.MustCompile(`(?:^|[",'\s])id\s*:\s*'?(\d+)`)

// ruleStarts maps each rule ID in a SecLang file to the line (from 1) its
// directive starts on; a directive goes on over lines ending in '\'.
func ruleStarts(b []byte) map[int]int {
	out := map[int]int{}
	n, start, cont := 0, 0, false
	for line := range strings.Lines(string(b)) {
		n++
		t := strings.TrimSpace(line)
		if !cont {
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			start = n
		}
		for _, m := range idAction.FindAllStringSubmatch(t, -1) {
			if id, err := strconv.Atoi(m[1]); err == nil {
				if _, seen := out[id]; !seen {
					out[id] = start
				}
			}
		}
		cont = strings.HasSuffix(t, `\`)
	}
	return out
}
