package ruleset

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/corazawaf/coraza/v3/types"
)

// Difference is how a candidate differs from its baseline, as far as
// shadow evaluation can use it.
//
// The commonest candidate is an exclusion: the baseline with rules or
// targets taken away (ctl:ruleRemove*, SecRuleRemove*,
// SecRuleUpdateTarget* with "!" targets). Such a candidate reaches
// another verdict than the baseline's only on a request where one of the
// rules it touches matched on the baseline's side, or where one of its
// exclusions took effect; on every other request the two verdicts are
// the same, and the shadow evaluation can be skipped. The argument, read
// against Coraza v3.8's evaluation (internal/corazawaf, rule.go and
// rulegroup.go):
//
//   - A rule with fewer targets sees a subset of the (variable, value)
//     pairs it saw, so it matches only where it matched before. A rule
//     that does not match leaves nothing behind: its actions run only on
//     a match, MATCHED_VARS is reset before the next rule, and captures
//     are written only by an operator that matched. So a removed or
//     narrowed rule that did not match changes nothing, as long as it is
//     not a chain (Coraza runs a link's setvar whenever that link
//     matches, even when the chain fails, and MatchedRules does not show
//     it), does not capture on a negated operator, for narrowed targets
//     does not read a count (&ARGS, which a removed target lowers), and
//     for whole removal is not among the rules a skip:N passes over
//     (the skip would move on to the next rule).
//   - An added exclusion rule (pass, nolog, conditions whose operators
//     have no side effects, ctl:ruleRemove* by ID or tag) changes
//     nothing until it matches; with its ctl actions on its last link, a
//     match is in the candidate's MatchedRules.
//
// Any other change (an added, deleted or moved directive, an Include of
// a different embedded file, a changed data file) is not removal-only,
// and every sample is evaluated in full.
type Difference struct {
	// RemovalOnly is set when the argument above holds.
	RemovalOnly bool
	// Why names the first change that stops it, when RemovalOnly is false.
	Why string
	// Affected are the baseline rules the candidate removes or narrows,
	// ordered.
	Affected []int
	// Exclusions are the IDs of the rules the candidate adds, ordered.
	Exclusions []int
	// Static is set when some removal holds on every request
	// (SecRuleRemove*, SecRuleUpdateTarget*, a deleted baseline rule), or
	// an exclusion acts from a link before its last: the candidate's own
	// matches then cannot show that it judged like the baseline.
	Static bool

	affected, exclusions map[int]bool
}

// CandidateAgrees reports whether the candidate is certain to reach the
// verdict the baseline reached on a request, given every rule that
// matched on the baseline's side (nolog ones included): none of the rules
// the candidate touches matched.
func (d *Difference) CandidateAgrees(baseline []types.MatchedRule) bool {
	if d == nil || !d.RemovalOnly {
		return false
	}
	for _, m := range baseline {
		if d.affected[m.Rule().ID()] {
			return false
		}
	}
	return true
}

// BaselineAgrees reports whether the baseline is certain to reach the
// verdict the candidate reached on a request, given every rule that
// matched on the candidate's side: no removal holds on every request,
// and none of the candidate's exclusions matched, so it ran the
// baseline's rules on the baseline's targets.
func (d *Difference) BaselineAgrees(candidate []types.MatchedRule) bool {
	if d == nil || !d.RemovalOnly || d.Static {
		return false
	}
	for _, m := range candidate {
		if d.exclusions[m.Rule().ID()] {
			return false
		}
	}
	return true
}

// String says what the difference is, for logs.
func (d *Difference) String() string {
	if !d.RemovalOnly {
		return "not removal-only: " + d.Why
	}
	s := fmt.Sprintf("removal-only: %d rule(s) touched", len(d.Affected))
	if len(d.Exclusions) > 0 {
		s += fmt.Sprintf(", %d exclusion rule(s) added", len(d.Exclusions))
	}
	if d.Static {
		s += ", some on every request"
	}
	return s
}

// Compare classifies how cand differs from base.
func Compare(base, cand *Ruleset) *Difference {
	d := &Difference{affected: map[int]bool{}, exclusions: map[int]bool{}}
	touched := map[int]removal{}
	if why := d.read(base, cand, touched); why != "" {
		return &Difference{Why: why}
	}
	for id, how := range touched {
		if why := removable(base, id, how); why != "" {
			return &Difference{Why: why}
		}
		d.affected[id] = true
		d.Affected = append(d.Affected, id)
	}
	for id := range d.exclusions {
		d.Exclusions = append(d.Exclusions, id)
	}
	slices.Sort(d.Affected)
	slices.Sort(d.Exclusions)
	d.RemovalOnly = true
	return d
}

// removal is how a candidate touches a baseline rule; whole wins.
type removal uint8

const (
	narrowed removal = iota + 1 // targets taken away
	whole                       // the rule taken away
)

func (d *Difference) read(base, cand *Ruleset, touched map[int]removal) string {
	if !sameData(base, cand) {
		return "a data file read by an operator differs"
	}
	bc, cc := Chains(significant(base.Directives())), Chains(significant(cand.Directives()))
	added, removed := changes(bc, cc)
	if !slices.Equal(kept(bc, removed), kept(cc, added)) {
		return "the directives both have are in another order"
	}
	touch := func(ids []int, how removal) {
		for _, id := range ids {
			touched[id] = max(touched[id], how)
		}
	}
	for _, r := range removed {
		first := r[0]
		id, ok := first.ID()
		if !ok {
			return fmt.Sprintf("%s:%d: deletes %s", first.File, first.Line, first.Name)
		}
		if _, loaded := base.Rule(id); loaded {
			touch([]int{id}, whole)
		}
		d.Static = true
	}
	for _, r := range added {
		first := r[0]
		where := fmt.Sprintf("%s:%d", first.File, first.Line)
		if isRule(first) {
			id, why := d.exclusion(base, r, touch)
			if why != "" {
				return where + ": " + why
			}
			d.exclusions[id] = true
			continue
		}
		es := ExclusionsOf(r)
		switch {
		case len(es) == 0 || es[0].Kind.By() == ByMsg:
			return fmt.Sprintf("%s: adds %s", where, first.Name)
		case !es[0].Kind.Targets():
			touch(base.RulesOf(es[0]), whole)
		case !onlyNegations(es[0].Targets):
			return where + ": " + first.Name + " that does not only take targets away"
		default:
			touch(base.RulesOf(es[0]), narrowed)
		}
		d.Static = true
	}
	return ""
}

// exclusion checks an added rule: an exclusion that changes nothing until
// it matches and then only takes rules or targets away.
func (d *Difference) exclusion(base *Ruleset, links []Directive, touch func([]int, removal)) (int, string) {
	id, ok := links[0].ID()
	if !ok {
		return 0, "adds a rule without an id"
	}
	if !links[0].HasAction("nolog") {
		return 0, fmt.Sprintf("adds rule %d without nolog: its matches would be in the candidate's verdict", id)
	}
	for _, c := range Conditions(links) {
		if !sideEffectFree[c.Operator] {
			return 0, fmt.Sprintf("rule %d: operator %s is not known to be free of side effects", id, c.Operator)
		}
	}
	for _, l := range links {
		for _, a := range l.Actions() {
			name, value := SplitAction(a)
			if name != "ctl" {
				if !inert[name] {
					return 0, fmt.Sprintf("rule %d: action %s", id, name)
				}
				continue
			}
			// Only removals by ID or tag: a message is not read, and
			// every other ctl changes more than which rules run.
			option, _ := SplitCtl(value)
			if k := kindNamed[strings.ToLower(option)]; !k.Ctl() || k.By() == ByMsg {
				return 0, fmt.Sprintf("rule %d: ctl:%s", id, option)
			}
		}
	}
	for _, e := range ExclusionsOf(links) {
		how := whole
		if e.Kind.Targets() {
			how = narrowed
		}
		touch(base.RulesOf(e), how)
		if !e.Last {
			// Coraza runs it when this link matches, whether or not
			// the chain does: the candidate's matches cannot show it.
			d.Static = true
		}
	}
	return id, ""
}

// removable says why taking rule id away (how) may change a verdict on a
// request where it did not match, or "" when it cannot.
func removable(base *Ruleset, id int, how removal) string {
	r, ok := base.Rule(id)
	switch {
	case !ok:
		return ""
	case r.Chain:
		return fmt.Sprintf("rule %d is a chain: Coraza runs a link's actions when that link matches, even if the chain fails, and no verdict shows it", id)
	case r.NegatedCapture:
		return fmt.Sprintf("rule %d captures on a negated operator: it writes TX:0-9 when it does not match", id)
	case how == narrowed && r.Counts:
		return fmt.Sprintf("rule %d reads a count (&...), which a removed target changes", id)
	case how == whole && skippedBy(base, r) != 0:
		return fmt.Sprintf("rule %d is passed over by rule %d's skip: without it the skip lands on the next rule", id, skippedBy(base, r))
	}
	return ""
}

// skippedBy returns the rule whose skip:N can pass over r, or 0.
func skippedBy(base *Ruleset, r Rule) int {
	inOrder := slices.Clone(base.Rules)
	slices.SortFunc(inOrder, func(a, b Rule) int { return a.Order - b.Order })
	for i, s := range inOrder {
		if s.Skip <= 0 {
			continue
		}
		n := 0
		for _, next := range inOrder[i+1:] {
			if next.Phase != s.Phase && next.Phase != 0 {
				continue
			}
			if next.ID == r.ID {
				return s.ID
			}
			if n++; n >= s.Skip {
				break
			}
		}
	}
	return 0
}

// inert are the actions an added exclusion rule may carry: they describe
// the rule, or shape only its own matching.
var inert = map[string]bool{
	"id": true, "phase": true, "pass": true, "nolog": true, "noauditlog": true, "auditlog": true,
	"msg": true, "tag": true, "ver": true, "rev": true, "maturity": true, "accuracy": true,
	"logdata": true, "chain": true, "multimatch": true, "t": true,
}

// sideEffectFree are the operators an added exclusion rule may test with:
// without a capture action they only answer.
var sideEffectFree = map[string]bool{
	"@streq": true, "@beginswith": true, "@endswith": true, "@contains": true, "@containsword": true,
	"@rx": true, "@pm": true, "@pmf": true, "@pmfromfile": true, "@within": true, "@strmatch": true,
	"@eq": true, "@ge": true, "@gt": true, "@le": true, "@lt": true,
	"@ipmatch": true, "@ipmatchf": true, "@ipmatchfromfile": true, "@unconditionalmatch": true, "@nomatch": true,
	"@validatebyterange": true, "@validateurlencoding": true, "@validateutf8encoding": true,
	"@detectsqli": true, "@detectxss": true,
}

// onlyNegations reports whether a target list only takes targets away.
func onlyNegations(ts []Target) bool {
	for _, t := range ts {
		if !t.Not {
			return false
		}
	}
	return len(ts) > 0
}

// significant drops the Include lines of local files: the walk lists the
// included directives in their place, which is what is compared. An
// Include of the embedded CRS stays, as its files are not listed.
func significant(ds []Directive) []Directive {
	out := make([]Directive, 0, len(ds))
	for _, d := range ds {
		if strings.EqualFold(d.Name, "Include") && !strings.Contains(d.Args, "@") {
			continue
		}
		out = append(out, d)
	}
	return out
}

// kept lists the keys of rs without those in drop (a multiset), in order.
func kept(rs, drop [][]Directive) []string {
	n := map[string]int{}
	for _, r := range drop {
		n[chainKey(r)]++
	}
	var out []string
	for _, r := range rs {
		k := chainKey(r)
		if n[k] > 0 {
			n[k]--
			continue
		}
		out = append(out, k)
	}
	return out
}

// sameData reports whether the local files that are not SecLang (data
// files of @pmFromFile and the like) are the same in both rulesets.
func sameData(base, cand *Ruleset) bool {
	data := func(r *Ruleset) map[string][]byte {
		seclang := map[string]bool{}
		for _, d := range r.Directives() {
			seclang[d.File] = true
		}
		out := map[string][]byte{}
		for _, f := range r.Files {
			if !f.Embedded && !seclang[f.Name] {
				out[f.Name] = f.Content
			}
		}
		return out
	}
	a, b := data(base), data(cand)
	if len(a) != len(b) {
		return false
	}
	for name, content := range a {
		if other, ok := b[name]; !ok || !bytes.Equal(content, other) {
			return false
		}
	}
	return true
}
