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

// maxInferredRules bounds one inferred clause: an exclusion that takes
// more rules away than this is not a narrow one, and excusing all their
// lost blocks must be declared, not guessed.
const maxInferredRules = 25

// ScopeOf reads the rollout scope from what cand adds to base: every
// exclusion it adds (ctl:ruleRemove*, SecRuleRemove*, SecRuleUpdateTarget*)
// conditioned on a path or a host gives one clause, the rules it takes
// away under that path and host. A removal on every path and host, or of
// more than 25 rules, is not inferred: its lost blocks would all be
// excused, so it must be declared with --scope-*. Notes say what was read
// and what was not; a directive that is not an exclusion adds nothing, so
// every disagreement it causes stays outside the scope, and a condition
// that cannot be read widens its clause, which the notes name.
func ScopeOf(base, cand *ruleset.Ruleset) (evidence.Scope, []string) {
	var clauses []evidence.Scope
	var notes []string
	for _, chain := range addedRules(base.Directives(), cand.Directives()) {
		d := chain[0]
		var c evidence.Scope
		var note string
		switch strings.ToLower(d.Name) {
		case "secrule", "secaction":
			c, note = ruleScope(base, chain)
		case "secruleremovebyid":
			c.RuleIDs = idsOf(base, strings.Fields(unquote(d.Args)))
		case "secruleremovebytag":
			c.RuleIDs = taggedRules(base, unquote(d.Args))
		case "secruleupdatetargetbyid":
			if f := fields(d.Args); len(f) > 1 && strings.HasPrefix(unquote(f[len(f)-1]), "!") {
				c.RuleIDs = idsOf(base, strings.Fields(unquote(f[0])))
			}
		case "secruleupdatetargetbytag":
			if f := fields(d.Args); len(f) > 1 && strings.HasPrefix(unquote(f[len(f)-1]), "!") {
				c.RuleIDs = taggedRules(base, unquote(f[0]))
			}
		}
		where := fmt.Sprintf("%s:%d", d.File, d.Line)
		if note != "" {
			notes = append(notes, where+": "+note)
		}
		switch {
		case len(c.RuleIDs) == 0:
			continue
		case len(c.Paths) == 0 && len(c.Hosts) == 0:
			notes = append(notes, fmt.Sprintf("%s: takes %d rule(s) away on every host and path: not inferred (every lost block counts); declare --scope-rule if that is meant", where, len(c.RuleIDs)))
			continue
		case len(c.RuleIDs) > maxInferredRules:
			notes = append(notes, fmt.Sprintf("%s: takes %d rules away: not inferred (at most %d); declare --scope-* if that is meant", where, len(c.RuleIDs), maxInferredRules))
			continue
		}
		notes = append(notes, fmt.Sprintf("%s: %s", where, c))
		clauses = merge(clauses, c)
	}
	switch len(clauses) {
	case 0:
		notes = append(notes, "no narrow exclusion inferred: every lost block is outside the scope")
		return evidence.Scope{}, notes
	case 1:
		clauses[0].Inferred = true
		return clauses[0], notes
	}
	return evidence.Scope{Clauses: clauses, Inferred: true}, notes
}

// rules groups directives into rules: a SecRule with its chain links,
// every other directive alone.
func rules(ds []ruleset.Directive) [][]ruleset.Directive {
	var out [][]ruleset.Directive
	open := false
	for _, d := range ds {
		if open && strings.EqualFold(d.Name, "SecRule") {
			out[len(out)-1] = append(out[len(out)-1], d)
		} else {
			out = append(out, []ruleset.Directive{d})
		}
		open = (strings.EqualFold(d.Name, "SecRule") || strings.EqualFold(d.Name, "SecAction")) && hasAction(d, "chain")
	}
	return out
}

// addedRules are the rules of cand that base does not have, in cand's
// order: a multiset difference on whole rules (chains included), so a
// rule copied from the baseline is not an addition wherever it sits, and
// a chain is never split between the two.
func addedRules(base, cand []ruleset.Directive) [][]ruleset.Directive {
	key := func(r []ruleset.Directive) string {
		var b strings.Builder
		for _, d := range r {
			b.WriteString(strings.ToLower(d.Name) + " " + d.Args + "\n")
		}
		return b.String()
	}
	have := map[string]int{}
	for _, r := range rules(base) {
		have[key(r)]++
	}
	var out [][]ruleset.Directive
	for _, r := range rules(cand) {
		if k := key(r); have[k] > 0 {
			have[k]--
			continue
		}
		out = append(out, r)
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
		s = strings.Trim(unquote(s), `"'`)
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
