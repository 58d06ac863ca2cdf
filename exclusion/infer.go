package exclusion

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/ruleset"
)

// ScopeOf reads the rollout scope from what cand adds to base: every
// exclusion it adds (ctl:ruleRemove*, SecRuleRemove*, SecRuleUpdateTarget*)
// gives one clause, the rules it takes away under the path and host its
// rule is conditioned on. Notes say what was read and what was not: a
// directive that is not an exclusion adds nothing to the scope, so every
// disagreement it causes stays outside it, and a condition that cannot be
// read widens its clause to every host or path, which the notes name.
func ScopeOf(base, cand *ruleset.Ruleset) (evidence.Scope, []string) {
	added := addedDirectives(base.Directives(), cand.Directives())
	var clauses []evidence.Scope
	var notes []string
	for i := 0; i < len(added); i++ {
		d := added[i]
		var c evidence.Scope
		var note string
		switch strings.ToLower(d.Name) {
		case "secrule", "secaction":
			chain := []ruleset.Directive{d}
			for hasAction(chain[len(chain)-1], "chain") && i+1 < len(added) {
				i++
				chain = append(chain, added[i])
			}
			c, note = ruleScope(base, chain)
		case "secruleremovebyid":
			c.RuleIDs = idsOf(base, strings.Fields(d.Args))
		case "secruleremovebytag":
			c.RuleIDs = taggedRules(base, unquote(d.Args))
		case "secruleupdatetargetbyid":
			if f := fields(d.Args); len(f) > 0 && strings.HasPrefix(unquote(f[len(f)-1]), "!") {
				c.RuleIDs = idsOf(base, strings.Fields(unquote(f[0])))
			}
		case "secruleupdatetargetbytag":
			if f := fields(d.Args); len(f) > 1 && strings.HasPrefix(unquote(f[len(f)-1]), "!") {
				c.RuleIDs = taggedRules(base, unquote(f[0]))
			}
		}
		if note != "" {
			notes = append(notes, fmt.Sprintf("%s:%d: %s", d.File, d.Line, note))
		}
		if len(c.RuleIDs) == 0 {
			continue
		}
		notes = append(notes, fmt.Sprintf("%s:%d: %s", d.File, d.Line, c))
		clauses = merge(clauses, c)
	}
	switch len(clauses) {
	case 0:
		notes = append(notes, "the candidate takes no rule or target away from the baseline: every lost block is outside the scope")
		return evidence.Scope{}, notes
	case 1:
		clauses[0].Inferred = true
		return clauses[0], notes
	}
	return evidence.Scope{Clauses: clauses, Inferred: true}, notes
}

// addedDirectives are the directives of cand that base does not have, in
// cand's order: a multiset difference on name and arguments, so a line the
// candidate copied from the baseline is not an addition wherever it sits.
func addedDirectives(base, cand []ruleset.Directive) []ruleset.Directive {
	have := map[string]int{}
	for _, d := range base {
		have[strings.ToLower(d.Name)+" "+d.Args]++
	}
	var out []ruleset.Directive
	for _, d := range cand {
		k := strings.ToLower(d.Name) + " " + d.Args
		if have[k] > 0 {
			have[k]--
			continue
		}
		out = append(out, d)
	}
	return out
}

// ruleScope reads one rule and its chain links: the rules its ctl actions
// take away, and the path and host its links condition them on.
func ruleScope(base *ruleset.Ruleset, chain []ruleset.Directive) (evidence.Scope, string) {
	var c evidence.Scope
	var unread []string
	for _, d := range chain {
		f := fields(d.Args)
		if strings.EqualFold(d.Name, "SecRule") && len(f) >= 2 {
			vars, op := unquote(f[0]), unquote(f[1])
			switch p, h, ok := condition(vars, op); {
			case p != "":
				c.Paths = append(c.Paths, p)
			case h != "":
				c.Hosts = append(c.Hosts, h)
			case !ok:
				unread = append(unread, vars+" "+op)
			}
		}
		for _, a := range actions(d) {
			name, val, _ := strings.Cut(a, ":")
			if !strings.EqualFold(strings.TrimSpace(name), "ctl") {
				continue
			}
			k, v, _ := strings.Cut(val, "=")
			switch strings.ToLower(k) {
			case "ruleremovebyid":
				c.RuleIDs = append(c.RuleIDs, idsOf(base, strings.Fields(v))...)
			case "ruleremovetargetbyid":
				id, _, _ := strings.Cut(v, ";")
				c.RuleIDs = append(c.RuleIDs, idsOf(base, []string{id})...)
			case "ruleremovebytag":
				c.RuleIDs = append(c.RuleIDs, taggedRules(base, v)...)
			case "ruleremovetargetbytag":
				tag, _, _ := strings.Cut(v, ";")
				c.RuleIDs = append(c.RuleIDs, taggedRules(base, tag)...)
			}
		}
	}
	slices.Sort(c.RuleIDs)
	c.RuleIDs = slices.Compact(c.RuleIDs)
	if len(c.RuleIDs) == 0 || len(unread) == 0 {
		return c, ""
	}
	return c, fmt.Sprintf("condition %s not read: its clause covers more than the exclusion does", strings.Join(unread, "; "))
}

// condition reads one link's condition: a path (REQUEST_FILENAME,
// REQUEST_URI, REQUEST_BASENAME by @streq, @beginsWith or an anchored
// @rx) or a host (REQUEST_HEADERS:Host, SERVER_NAME). ok is false for a
// condition on those variables that is not understood (a negation, an
// unanchored pattern); other variables narrow by things a scope has no
// word for, and are passed over.
func condition(vars, op string) (path, host string, ok bool) {
	v := strings.ToUpper(vars)
	isPath := v == "REQUEST_FILENAME" || v == "REQUEST_URI" || v == "REQUEST_URI_RAW"
	isHost := v == "REQUEST_HEADERS:HOST" || v == "SERVER_NAME"
	if !isPath && !isHost {
		return "", "", true
	}
	name, arg, _ := strings.Cut(strings.TrimSpace(op), " ")
	arg = strings.TrimSpace(arg)
	var lit string
	switch strings.ToLower(name) {
	case "@streq", "@beginswith":
		lit = arg
	case "@rx":
		re, err := regexp.Compile(arg)
		if err != nil || !strings.HasPrefix(arg, "^") {
			return "", "", false
		}
		lit, _ = re.LiteralPrefix()
		if lit == "" { // LiteralPrefix stops at the anchor
			lit, _ = regexp.MustCompile(arg[1:]).LiteralPrefix()
		}
	default:
		return "", "", false
	}
	if isHost {
		h := evidence.HostName(lit)
		if !validHost(h) || strings.Contains(h, ":") {
			return "", "", false
		}
		return "", h, true
	}
	lit, _, _ = strings.Cut(lit, "?")
	if !strings.HasPrefix(lit, "/") {
		return "", "", false
	}
	// A scope path covers whole segments: a prefix cut inside a segment
	// (^/api/no) is kept whole, which covers less than it, never more.
	if p := strings.TrimSuffix(lit, "/"); p != "" {
		return p, "", true
	}
	return "", "", false
}

// merge adds c to clauses, joining it with a clause on the same host and
// path.
func merge(clauses []evidence.Scope, c evidence.Scope) []evidence.Scope {
	for i, o := range clauses {
		if slices.Equal(o.Hosts, c.Hosts) && slices.Equal(o.Paths, c.Paths) {
			ids := append(slices.Clone(o.RuleIDs), c.RuleIDs...)
			slices.Sort(ids)
			clauses[i].RuleIDs = slices.Compact(ids)
			return clauses
		}
	}
	return append(clauses, c)
}

// idsOf expands rule IDs and ranges (942100-942199) to the IDs base
// loads, so that a range names only rules that exist.
func idsOf(base *ruleset.Ruleset, specs []string) []int {
	var out []int
	for _, s := range specs {
		s = unquote(s)
		lo, hi, isRange := strings.Cut(s, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil {
			continue
		}
		for _, r := range base.Rules {
			if r.ID >= a && r.ID <= b {
				out = append(out, r.ID)
			}
		}
	}
	return out
}

func taggedRules(base *ruleset.Ruleset, tag string) []int {
	var out []int
	for _, r := range base.Rules {
		if slices.Contains(r.Tags, tag) {
			out = append(out, r.ID)
		}
	}
	return out
}

// fields splits a directive's arguments SecLang's way: by white space,
// double-quoted strings kept whole with their backslash escapes.
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

// unquote takes the double quotes off a SecLang argument and undoes
// escaped quotes inside it.
func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.ReplaceAll(s[1:len(s)-1], `\"`, `"`)
	}
	return s
}

// actions splits a rule's action list at commas outside single quotes.
func actions(d ruleset.Directive) []string {
	f := fields(d.Args)
	if len(f) == 0 {
		return nil
	}
	list := unquote(f[len(f)-1])
	if strings.EqualFold(d.Name, "SecRule") && len(f) < 3 {
		return nil
	}
	var out []string
	var b strings.Builder
	inQuote := false
	for _, r := range list {
		switch {
		case r == '\'':
			inQuote = !inQuote
			b.WriteRune(r)
		case r == ',' && !inQuote:
			out = append(out, strings.TrimSpace(b.String()))
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

func hasAction(d ruleset.Directive, name string) bool {
	for _, a := range actions(d) {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}
