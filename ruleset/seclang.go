package ruleset

import (
	"slices"
	"strings"
)

// Fields splits a directive's arguments SecLang's way: by white space,
// double-quoted strings kept whole with their backslash escapes.
func (d Directive) Fields() []string { return fields(d.Args) }

// Actions lists a SecRule's or SecAction's actions, split at commas
// outside single quotes; nil for other directives and for a SecRule
// without an action list (a chain link may have none).
func (d Directive) Actions() []string {
	f := d.Fields()
	if len(f) == 0 {
		return nil
	}
	switch {
	case strings.EqualFold(d.Name, "SecRule") && len(f) < 3,
		!strings.EqualFold(d.Name, "SecRule") && !strings.EqualFold(d.Name, "SecAction"):
		return nil
	}
	return splitActions(Unquote(f[len(f)-1]))
}

// HasAction reports whether the directive lists the action name with no
// argument (chain, nolog, pass).
func (d Directive) HasAction(name string) bool {
	for _, a := range d.Actions() {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// Chains groups directives into rules: a SecRule or SecAction with its
// chain links, every other directive alone.
func Chains(ds []Directive) [][]Directive {
	var out [][]Directive
	open := false
	for _, d := range ds {
		if open && strings.EqualFold(d.Name, "SecRule") {
			out[len(out)-1] = append(out[len(out)-1], d)
		} else {
			out = append(out, []Directive{d})
		}
		open = (strings.EqualFold(d.Name, "SecRule") || strings.EqualFold(d.Name, "SecAction")) && d.HasAction("chain")
	}
	return out
}

// chainKey names a rule by its text, links included.
func chainKey(r []Directive) string {
	var b strings.Builder
	for _, d := range r {
		b.WriteString(strings.ToLower(d.Name) + " " + d.Args + "\n")
	}
	return b.String()
}

// Added are the rules of cand that base does not have, in cand's order:
// a multiset difference on whole rules (chains included), so a rule
// copied from the baseline is not an addition wherever it sits, and a
// chain is never split between the two.
func Added(base, cand []Directive) [][]Directive {
	added, _ := changes(Chains(base), Chains(cand))
	return added
}

// changes returns the rules only cand has and the rules only base has,
// each in its own file's order.
func changes(base, cand [][]Directive) (added, removed [][]Directive) {
	have := map[string]int{}
	for _, r := range base {
		have[chainKey(r)]++
	}
	for _, r := range cand {
		if k := chainKey(r); have[k] > 0 {
			have[k]--
			continue
		}
		added = append(added, r)
	}
	for _, r := range base {
		if k := chainKey(r); have[k] > 0 {
			have[k]--
			removed = append(removed, r)
		}
	}
	return added, removed
}

// Tagged lists the IDs of the rules r loads that carry tag.
func (r *Ruleset) Tagged(tag string) []int {
	var out []int
	for _, rule := range r.Rules {
		if slices.Contains(rule.Tags, tag) {
			out = append(out, rule.ID)
		}
	}
	return out
}

func fields(s string) []string {
	var out []string
	var b strings.Builder
	inQuote, escaped := false, false
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for _, r := range s {
		switch {
		case escaped:
			b.WriteRune(r)
			escaped = false
		case r == '\\':
			b.WriteRune(r)
			escaped = true
		case r == '"':
			b.WriteRune(r)
			inQuote = !inQuote
			if !inQuote {
				flush()
			}
		case !inQuote && (r == ' ' || r == '\t'):
			flush()
		default:
			b.WriteRune(r)
		}
	}
	flush()
	return out
}

// Unquote takes the double quotes off a SecLang argument and undoes
// escaped quotes inside it.
func Unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.ReplaceAll(s[1:len(s)-1], `\"`, `"`)
	}
	return s
}

func splitActions(list string) []string {
	var out []string
	var b strings.Builder
	inQuote := false
	for _, r := range list {
		switch {
		case r == '\'':
			inQuote = !inQuote
			b.WriteRune(r)
		case r == ',' && !inQuote:
			if s := strings.TrimSpace(b.String()); s != "" {
				out = append(out, s)
			}
			b.Reset()
		default:
			b.WriteRune(r)
		}
	}
	if s := strings.TrimSpace(b.String()); s != "" {
		out = append(out, s)
	}
	return out
}
