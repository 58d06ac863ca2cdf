package exclusion

import (
	"fmt"
	"path"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// maxInferredRules bounds one inferred clause: an exclusion that takes
// more rules away than this is not a narrow one, and excusing all their
// lost blocks must be declared, not guessed.
const maxInferredRules = 25

// Inference is the rollout scope read from what a candidate takes away
// from its baseline, with what was read and what was not.
type Inference struct {
	// Scope has one clause per narrow exclusion; empty when none is.
	Scope evidence.Scope
	// Notes say, per added directive that takes something away, the
	// clause it gave or why it gave none.
	Notes []string
	// Left are the directives that take something away and are not in
	// Scope (on every host and path, too many rules, inspection turned
	// down): every lost block they cause counts against the candidate.
	Left []string
}

// Why is the reason no scope was inferred, for start to print; "" when
// one was.
func (in Inference) Why() string {
	switch {
	case !in.Scope.Empty():
		return ""
	case len(in.Left) > 0:
		return strings.Join(in.Left, "; ")
	}
	return "the candidate adds no exclusion to the baseline (nothing taken away): every lost block counts"
}

// ScopeOf reads the rollout scope from what cand adds to base: every
// exclusion it adds (ctl:ruleRemove*, SecRuleRemove*, SecRuleUpdateTarget*)
// conditioned on a path or a host gives one clause, the rules it takes
// away on exactly that path (@streq), or under it (@beginsWith, an
// anchored @rx), and host. A removal on every path and host, of more than
// 25 rules, or of inspection itself (a ctl that turns the engine or the
// body off, or swaps the body's parser; allow; skip) is not inferred: its
// lost blocks would all be excused, so it must be declared with
// --scope-*. A directive that takes nothing away adds nothing, so every
// disagreement it causes stays outside the scope, and a condition that
// cannot be read widens its clause, which the notes name.
func ScopeOf(base, cand *ruleset.Ruleset) Inference {
	var in Inference
	var clauses []evidence.Scope
	for _, chain := range ruleset.Added(base.Directives(), cand.Directives()) {
		d := chain[0]
		var c evidence.Scope
		var notes []string
		var lowers string // inspection taken away beyond rules: not inferred
		switch strings.ToLower(d.Name) {
		case "secrule", "secaction":
			c, lowers, notes = ruleScope(base, chain)
		case "secruleengine", "secrequestbodyaccess":
			if v := strings.ToLower(ruleset.Unquote(d.Args)); v != "on" {
				lowers = d.Name + " " + d.Args + " turns inspection down on every request"
			}
		default:
			for _, e := range ruleset.ExclusionsOf(chain) {
				switch {
				case e.Kind.By() == ruleset.ByMsg:
					lowers = byMsg(e)
				case !e.Kind.Targets() || slices.ContainsFunc(e.Targets, func(t ruleset.Target) bool { return t.Not }):
					c.RuleIDs = base.RulesOf(e)
				}
			}
		}
		where := fmt.Sprintf("%s:%d", d.File, d.Line)
		for _, n := range notes {
			in.Notes = append(in.Notes, where+": "+n)
		}
		left := ""
		switch {
		case lowers != "":
			left = fmt.Sprintf("%s: %s%s: not inferred (any rule may lose its blocks there)", where, lowers, on(c))
		case len(c.RuleIDs) == 0:
			continue
		case len(c.Paths) == 0 && len(c.ExactPaths) == 0 && len(c.Hosts) == 0:
			left = fmt.Sprintf("%s: takes %d rule(s) away on every host and path: not inferred (every lost block counts)", where, len(c.RuleIDs))
		case len(c.RuleIDs) > maxInferredRules:
			left = fmt.Sprintf("%s: takes %d rules away%s: not inferred (at most %d)", where, len(c.RuleIDs), on(c), maxInferredRules)
		}
		if left != "" {
			in.Notes = append(in.Notes, left+"; declare --scope-* if that is meant")
			in.Left = append(in.Left, left)
			continue
		}
		in.Notes = append(in.Notes, fmt.Sprintf("%s: %s", where, c))
		clauses = merge(clauses, c)
	}
	switch len(clauses) {
	case 0:
		in.Notes = append(in.Notes, "no narrow exclusion inferred: every lost block is outside the scope")
	case 1:
		in.Scope = clauses[0]
		in.Scope.Inferred = true
	default:
		in.Scope = evidence.Scope{Clauses: clauses, Inferred: true}
	}
	return in
}

// on says where clause c's conditions hold, for a note.
func on(c evidence.Scope) string {
	c.RuleIDs = nil
	if c.Empty() {
		return " on every host and path"
	}
	return " on " + c.String()
}

// ruleScope reads one rule and its chain links: the rules its ctl actions
// take away, the path and host its links condition them on, and lowers,
// what it turns down beyond rules (a ctl, allow, skip), "" when nothing.
// An action runs when its own link matches, whatever the links after it
// do: the conditions read are those up to the first link that takes
// something away.
func ruleScope(base *ruleset.Ruleset, chain []ruleset.Directive) (c evidence.Scope, lowers string, notes []string) {
	// parser is a body parser swapped; types is set when the rule also
	// allows a content type: then the parser is for a body of that type,
	// which the baseline refused whole (tune's allowance reads it raw),
	// and the policy rule's clause covers it.
	var parser string
	var types bool
	upto := len(chain) - 1
	for i, d := range chain {
		for _, a := range d.Actions() {
			name, val := ruleset.SplitAction(a)
			if name == "setvar" {
				// A policy list set on a path (tune's allowance) takes
				// away the blocks of the rule that enforces it.
				k, _, _ := strings.Cut(val, "=")
				if id, ok := policyOf(k); ok {
					c.RuleIDs = append(c.RuleIDs, id)
					types = types || id == 920420
					upto = min(upto, i)
				}
				continue
			}
			w := lowering(name, val)
			if w == "" {
				continue
			}
			upto = min(upto, i)
			option, _ := ruleset.SplitCtl(val)
			switch {
			case lowers != "":
			case name == "ctl" && strings.EqualFold(option, "requestBodyProcessor"):
				parser = w
			default:
				lowers = w
			}
		}
	}
	for _, e := range ruleset.ExclusionsOf(chain) {
		if e.Kind.By() == ruleset.ByMsg {
			if lowers == "" {
				lowers = byMsg(e)
			}
		} else {
			c.RuleIDs = append(c.RuleIDs, base.RulesOf(e)...)
		}
		upto = min(upto, e.Link)
	}
	if parser != "" && !types && lowers == "" {
		lowers = parser
	}
	slices.Sort(c.RuleIDs)
	c.RuleIDs = slices.Compact(c.RuleIDs)
	if len(c.RuleIDs) == 0 && lowers == "" {
		return c, "", nil // takes nothing away: its conditions do not matter
	}
	var unread []string
	var conds []cond
	for _, rc := range ruleset.Conditions(chain) {
		if rc.Link > upto {
			break
		}
		k, ok, note := condition(rc)
		switch {
		case !ok:
			unread = append(unread, rc.Vars+" "+rc.Op)
		case k != cond{}:
			conds = append(conds, k)
		}
		if note != "" {
			notes = append(notes, note)
		}
	}
	k, ok := conjoin(conds)
	if !ok {
		// Conditions no request meets together: it never applies.
		return evidence.Scope{}, "", append(notes, "its conditions exclude each other: it never applies, and nothing is inferred from it")
	}
	if k.host != "" {
		c.Hosts = []string{k.host}
	}
	switch {
	case k.exact:
		c.ExactPaths = []string{k.path}
	case k.path != "":
		c.Paths = []string{k.path}
	}
	if len(unread) > 0 {
		notes = append(notes, fmt.Sprintf("condition %s not read: its clause covers more than the exclusion does", strings.Join(unread, "; ")))
	}
	return c, lowers, notes
}

// byMsg says why an exclusion by message is not inferred.
func byMsg(e ruleset.Exclusion) string {
	return e.Kind.String() + " takes rules away by their message, which is not read here"
}

// lowering says what an action of an added rule turns down beyond taking
// rules away, "" for one that does not: every ctl that reduces what is
// inspected, and the actions that stop or skip the rules after it. Such a
// rule may cost any rule its blocks, so its scope is not inferred. (A
// setvar that lowers the paranoia level or raises a threshold is the
// guard's to refuse: whether it lowers anything depends on the value it
// replaces.)
func lowering(name, val string) string {
	switch name {
	case "allow":
		return "allow stops inspection"
	case "skip", "skipafter":
		return name + " passes over the rules after it"
	case "ctl":
	default:
		return ""
	}
	k, v := ruleset.SplitCtl(val)
	v = strings.ToLower(strings.TrimSpace(v))
	switch strings.ToLower(k) {
	case "ruleengine":
		if v != "on" {
			return "ctl:ruleEngine=" + v + " stops blocking"
		}
	case "requestbodyaccess", "responsebodyaccess":
		if v != "on" && v != "true" {
			return "ctl:" + k + "=" + v + " stops inspecting the body"
		}
	case "requestbodyprocessor", "responsebodyprocessor":
		// Another parser gives the rules other variables (a JSON body
		// read as URLENCODED has no ARGS to inspect).
		return "ctl:" + k + "=" + v + " changes how the body is read"
	case "requestbodylimit", "responsebodylimit":
		return "ctl:" + k + "=" + v + " changes how much of the body is read"
	}
	return ""
}

// policyOf is the CRS rule that enforces the policy list TX variable
// name (tx.allowed_methods: 911100), as tune's allowances set it.
func policyOf(name string) (int, bool) {
	tx, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(name)), "tx.")
	if !ok {
		return 0, false
	}
	for id, p := range policies {
		if p.tx == tx {
			return id, true
		}
	}
	return 0, false
}

// cond is one condition on where an exclusion applies: exactly a path,
// under a path, or a host; the zero value restricts nothing.
type cond struct {
	path  string
	exact bool
	host  string
}

// conjoin is the conditions of one chain, which all hold at once: the
// narrowest path and the host. ok is false when two cannot hold together
// (two hosts, or paths neither of which holds the other).
func conjoin(cs []cond) (cond, bool) {
	var out cond
	for _, c := range cs {
		if c.host != "" {
			if out.host != "" && out.host != c.host {
				return cond{}, false
			}
			out.host = c.host
		}
		if c.path == "" {
			continue
		}
		switch {
		case out.path == "":
			out.path, out.exact = c.path, c.exact
		case out.exact && c.exact:
			if out.path != c.path {
				return cond{}, false
			}
		case out.exact: // c a prefix: it must hold out's path
			if !under(out.path, c.path) {
				return cond{}, false
			}
		case c.exact:
			if !under(c.path, out.path) {
				return cond{}, false
			}
			out.path, out.exact = c.path, true
		case under(c.path, out.path):
			out.path = c.path
		case !under(out.path, c.path):
			return cond{}, false
		}
	}
	return out, true
}

// under reports whether path p is prefix q or below it, by segments.
func under(p, q string) bool {
	return q == "/" || p == q || strings.HasPrefix(p, q+"/")
}

// condition reads one link's condition on the path (REQUEST_FILENAME,
// REQUEST_URI, REQUEST_URI_RAW) or the host (REQUEST_HEADERS:Host,
// SERVER_NAME): @streq is that path or host exactly; @beginsWith and an
// @rx anchored at the start with a literal are a path prefix, kept to
// whole segments (^/api/no is read as /api/no, which covers less than it,
// never more); an anchored literal @rx with an end anchor is exact. ok is
// false for a condition on those variables that is not understood (a
// negation, an unanchored pattern; no operator written is @rx); other
// variables, REQUEST_BASENAME among them, narrow by things a scope has
// no word for, and are passed over (the zero cond). note says where the
// reading is wider than the condition.
func condition(k ruleset.Condition) (c cond, ok bool, note string) {
	isHost := k.Subject == ruleset.OnHost
	if k.Subject != ruleset.OnPath && k.Subject != ruleset.OnURI && !isHost {
		return cond{}, true, ""
	}
	if k.Negated {
		return cond{}, false, ""
	}
	var lit string
	exact := false
	switch k.Operator {
	case "@streq":
		lit, exact = k.Arg, true
	case "@beginswith":
		lit = k.Arg
	case "@rx":
		var anchored bool
		if lit, exact, anchored = rxLiteral(k.Arg); !anchored {
			return cond{}, false, ""
		}
	default:
		return cond{}, false, ""
	}
	if isHost {
		// A prefix (^shop) is read as the name it spells, which covers
		// less than the condition does; tune's own pattern holds the
		// whole name, and an IPv6 address in its brackets (^\[::1\]).
		h := evidence.HostName(lit)
		if !verdict.ValidHostName(h) {
			return cond{}, false, ""
		}
		return cond{host: h}, true, ""
	}
	if k.Subject == ruleset.OnURI {
		q, _, hasQuery := strings.Cut(lit, "?")
		switch {
		case exact && !hasQuery:
			note = fmt.Sprintf("%s %s matches the path only without a query string: the scope covers %s with any query", k.Vars, k.Op, q)
		case exact:
			// With its query the condition holds one URI, and the scope
			// can only say its path.
			note = fmt.Sprintf("%s %s holds a query string: the scope covers %s with any query", k.Vars, k.Op, q)
		}
		lit = q
	}
	if !strings.HasPrefix(lit, "/") {
		return cond{}, false, ""
	}
	if exact {
		return cond{path: lit, exact: true}, true, note
	}
	// A scope path covers whole segments: a prefix cut inside a segment
	// (^/api/no) is kept whole, which covers less than it, never more.
	p := strings.TrimSuffix(lit, "/")
	switch {
	case p == "":
		return cond{}, true, note // every path
	case path.Clean(p) != p:
		return cond{}, false, ""
	}
	return cond{path: p}, true, note
}

// rxLiteral reads an @rx pattern as Coraza compiles it ((?sm) before it):
// anchored is set when it starts with ^ or \A followed by a literal, lit
// is that literal, and exact is set when an end anchor follows the
// literal and nothing else. With (?m), ^ and $ also match at a newline
// inside the value, so the pattern matches more values than lit; the
// scope reads only lit, which covers less than the exclusion, never more.
func rxLiteral(pattern string) (lit string, exact, anchored bool) {
	re, err := syntax.Parse("(?sm)"+pattern, syntax.Perl)
	if err != nil {
		return "", false, false
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	if len(subs) < 2 || (subs[0].Op != syntax.OpBeginLine && subs[0].Op != syntax.OpBeginText) ||
		subs[1].Op != syntax.OpLiteral || subs[1].Flags&syntax.FoldCase != 0 {
		return "", false, false
	}
	lit = string(subs[1].Rune)
	exact = len(subs) == 3 && (subs[2].Op == syntax.OpEndLine || subs[2].Op == syntax.OpEndText)
	return lit, exact, true
}

// merge adds c to clauses, joining it with a clause on the same host and
// paths.
func merge(clauses []evidence.Scope, c evidence.Scope) []evidence.Scope {
	for i, o := range clauses {
		if slices.Equal(o.Hosts, c.Hosts) && slices.Equal(o.Paths, c.Paths) && slices.Equal(o.ExactPaths, c.ExactPaths) {
			ids := append(slices.Clone(o.RuleIDs), c.RuleIDs...)
			slices.Sort(ids)
			clauses[i].RuleIDs = slices.Compact(ids)
			return clauses
		}
	}
	return append(clauses, c)
}
