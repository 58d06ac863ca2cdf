package exclusion

import (
	"fmt"
	"regexp"
	"slices"
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
	for _, chain := range ruleset.Added(base.Directives(), cand.Directives()) {
		d := chain[0]
		var c evidence.Scope
		var note string
		switch strings.ToLower(d.Name) {
		case "secrule", "secaction":
			c, note = ruleScope(base, chain)
		case "secruleremovebyid":
			c.RuleIDs = base.IDs(strings.Fields(ruleset.Unquote(d.Args))...)
		case "secruleremovebytag":
			c.RuleIDs = base.Tagged(ruleset.Unquote(d.Args))
		case "secruleupdatetargetbyid":
			if f := d.Fields(); len(f) > 1 && strings.HasPrefix(ruleset.Unquote(f[len(f)-1]), "!") {
				c.RuleIDs = base.IDs(strings.Fields(ruleset.Unquote(f[0]))...)
			}
		case "secruleupdatetargetbytag":
			if f := d.Fields(); len(f) > 1 && strings.HasPrefix(ruleset.Unquote(f[len(f)-1]), "!") {
				c.RuleIDs = base.Tagged(ruleset.Unquote(f[0]))
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

// ruleScope reads one rule and its chain links: the rules its ctl actions
// take away, and the path and host its links condition them on.
func ruleScope(base *ruleset.Ruleset, chain []ruleset.Directive) (evidence.Scope, string) {
	var c evidence.Scope
	var unread []string
	for _, d := range chain {
		f := d.Fields()
		if strings.EqualFold(d.Name, "SecRule") && len(f) >= 2 {
			vars, op := ruleset.Unquote(f[0]), ruleset.Unquote(f[1])
			switch p, h, ok := condition(vars, op); {
			case p != "":
				c.Paths = append(c.Paths, p)
			case h != "":
				c.Hosts = append(c.Hosts, h)
			case !ok:
				unread = append(unread, vars+" "+op)
			}
		}
		for _, a := range d.Actions() {
			name, val, _ := strings.Cut(a, ":")
			if !strings.EqualFold(strings.TrimSpace(name), "ctl") {
				continue
			}
			k, v, _ := strings.Cut(val, "=")
			switch strings.ToLower(k) {
			case "ruleremovebyid":
				c.RuleIDs = append(c.RuleIDs, base.IDs(strings.Fields(v)...)...)
			case "ruleremovetargetbyid":
				id, _, _ := strings.Cut(v, ";")
				c.RuleIDs = append(c.RuleIDs, base.IDs(id)...)
			case "ruleremovebytag":
				c.RuleIDs = append(c.RuleIDs, base.Tagged(v)...)
			case "ruleremovetargetbytag":
				tag, _, _ := strings.Cut(v, ";")
				c.RuleIDs = append(c.RuleIDs, base.Tagged(tag)...)
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
		if !validHost(h) { // a name, or an IPv6 literal as tune writes it: ^\[::1\]
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
