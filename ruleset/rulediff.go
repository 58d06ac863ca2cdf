package ruleset

import (
	"fmt"
	"strconv"
	"strings"
)

// RuleDiff is how a candidate's rules differ from its baseline's, rule by
// rule, read from the two compiled inventories: what a CRS upgrade
// changes, and which of the baseline's exclusions it leaves pointing at
// nothing or at a rule that changed. It is cheap (no request is
// evaluated): a CRS has about 600 rules.
type RuleDiff struct {
	Baseline  CRS `json:"baseline_crs"`
	Candidate CRS `json:"candidate_crs"`
	// Added are the rules only the candidate loads, Removed those only
	// the baseline loads, ordered by ID.
	Added   []RuleRef `json:"added"`
	Removed []RuleRef `json:"removed"`
	// Changed are the rules both load whose paranoia level, disruptive
	// action, phase, severity, targets or operator (of the first link) or
	// chained links differ, ordered by ID.
	Changed []RuleChange `json:"changed"`
	// Exclusions are the baseline's exclusions that dangle in the
	// candidate or cover a rule that is new or changed there, in the
	// baseline's order.
	Exclusions []ExclusionChange `json:"exclusions"`
}

// RuleRef names a rule where it is defined, with what the diff compares.
type RuleRef struct {
	ID       int    `json:"id"`
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Paranoia int    `json:"paranoia_level,omitempty"`
	Phase    int    `json:"phase"`
	Action   string `json:"action,omitempty"`
}

func refOf(r Rule) RuleRef {
	return RuleRef{ID: r.ID, File: r.File, Line: r.Line, Paranoia: r.Paranoia, Phase: r.Phase, Action: r.Action}
}

// RuleChange is one rule both rulesets load, changed.
type RuleChange struct {
	ID int `json:"id"`
	// File and Line are where the candidate defines it.
	File    string        `json:"file"`
	Line    int           `json:"line,omitempty"`
	Changes []FieldChange `json:"changes"`
}

// FieldChange is one compared property of a rule, before and after.
type FieldChange struct {
	// Field is paranoia_level, action, phase, severity, targets,
	// operator or chain (the links after the first, one per line).
	Field  string `json:"field"`
	Before string `json:"before"`
	After  string `json:"after"`
}

func (f FieldChange) String() string {
	before, after := f.Before, f.After
	if f.Field == "targets" || f.Field == "operator" || f.Field == "chain" {
		if len(before) > 60 || len(after) > 60 {
			return f.Field + " changed"
		}
		before, after = strconv.Quote(before), strconv.Quote(after)
	}
	return fmt.Sprintf("%s %s -> %s", f.Field, before, after)
}

// ExclusionChange is one of the baseline's exclusions an upgrade
// affects.
type ExclusionChange struct {
	File string `json:"file"`
	Line int    `json:"line"`
	// Kind is the exclusion's directive or ctl option
	// (SecRuleRemoveById, ctl:ruleRemoveTargetByTag).
	Kind string `json:"kind"`
	// Dangles are the IDs, ranges or tag it names that the baseline loads
	// rules for and the candidate does not: there it takes nothing away.
	Dangles []string `json:"dangles,omitempty"`
	// Changed and Added are the candidate's rules it covers that changed
	// or are new: it now takes those away too.
	Changed []int `json:"covers_changed,omitempty"`
	Added   []int `json:"covers_added,omitempty"`
}

func (e ExclusionChange) String() string {
	var parts []string
	if len(e.Dangles) > 0 {
		parts = append(parts, "dangles: the candidate has no rule for "+strings.Join(e.Dangles, ", "))
	}
	if len(e.Changed) > 0 {
		parts = append(parts, "covers changed "+joinIDs(e.Changed))
	}
	if len(e.Added) > 0 {
		parts = append(parts, "covers new "+joinIDs(e.Added))
	}
	return fmt.Sprintf("%s:%d %s %s", e.File, e.Line, e.Kind, strings.Join(parts, "; "))
}

func joinIDs(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// Empty reports whether the two rulesets load the same rules alike and
// no exclusion is affected.
func (d RuleDiff) Empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0 && len(d.Exclusions) == 0
}

// Summary is the diff in one line: "CRS 4.22.0 -> 4.25.0: 25 rules
// added, 1 removed, 40 changed (3 paranoia level, 5 action); 1
// exclusion affected".
func (d RuleDiff) Summary() string {
	var b strings.Builder
	if d.Baseline.Version != d.Candidate.Version {
		fmt.Fprintf(&b, "CRS %s -> %s: ", orNone(d.Baseline.Version), orNone(d.Candidate.Version))
	} else if d.Baseline.Version != "" {
		fmt.Fprintf(&b, "CRS %s on both: ", d.Baseline.Version)
	}
	rules := "rules"
	if len(d.Added) == 1 {
		rules = "rule"
	}
	fmt.Fprintf(&b, "%d %s added, %d removed, %d changed", len(d.Added), rules, len(d.Removed), len(d.Changed))
	counts := map[string]int{}
	for _, c := range d.Changed {
		for _, f := range c.Changes {
			counts[f.Field]++
		}
	}
	var by []string
	for _, f := range diffFields {
		if n := counts[f]; n > 0 {
			by = append(by, fmt.Sprintf("%d %s", n, strings.ReplaceAll(f, "_", " ")))
		}
	}
	if len(by) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(by, ", "))
	}
	switch n := len(d.Exclusions); n {
	case 0:
	case 1:
		b.WriteString("; 1 exclusion affected")
	default:
		fmt.Fprintf(&b, "; %d exclusions affected", n)
	}
	return b.String()
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// diffFields are the properties Diff compares, in the order it reports them.
var diffFields = []string{"paranoia_level", "action", "phase", "severity", "targets", "operator", "chain"}

// Diff compares the rules base and cand load, and base's exclusions
// (Exclusions) against cand's rules. Rules are matched by ID; a rule's
// properties are those of its first link (Rule), and its chained links
// are compared as written.
func Diff(base, cand *Ruleset) RuleDiff {
	d, changed, added := diffRules(base, cand)
	d.Exclusions = exclusionChanges(base, cand, changed, added)
	return d
}

// diffRules is Diff without the exclusions, and the IDs it found changed
// and added.
func diffRules(base, cand *Ruleset) (d RuleDiff, changed, added map[int]bool) {
	d = RuleDiff{Baseline: base.CRS, Candidate: cand.CRS, Added: []RuleRef{}, Removed: []RuleRef{}, Changed: []RuleChange{}, Exclusions: []ExclusionChange{}}
	changed, added = map[int]bool{}, map[int]bool{}
	baseLinks, candLinks := base.chainLinks(), cand.chainLinks()
	for _, c := range cand.Rules {
		if c.ID == 0 {
			continue
		}
		b, ok := base.Rule(c.ID)
		if !ok {
			d.Added = append(d.Added, refOf(c))
			added[c.ID] = true
			continue
		}
		var fs []FieldChange
		for _, f := range diffFields {
			before, after := field(b, f), field(c, f)
			if f == "chain" {
				before, after = baseLinks[b.ID], candLinks[c.ID]
			}
			if before != after {
				fs = append(fs, FieldChange{Field: f, Before: before, After: after})
			}
		}
		if len(fs) > 0 {
			d.Changed = append(d.Changed, RuleChange{ID: c.ID, File: c.File, Line: c.Line, Changes: fs})
			changed[c.ID] = true
		}
	}
	for _, b := range base.Rules {
		if _, ok := cand.Rule(b.ID); !ok && b.ID != 0 {
			d.Removed = append(d.Removed, refOf(b))
		}
	}
	return d, changed, added
}

// exclusionChanges reads base's exclusions against cand's rules.
func exclusionChanges(base, cand *Ruleset, changed, added map[int]bool) []ExclusionChange {
	out := []ExclusionChange{}
	for _, e := range base.Exclusions() {
		ec := ExclusionChange{File: e.File, Line: e.Line, Kind: e.Kind.String()}
		switch e.Kind.By() {
		case ByID:
			for _, r := range e.IDs {
				one := Exclusion{Kind: e.Kind, IDs: []IDRange{r}}
				if len(base.RulesOf(one)) > 0 && len(cand.RulesOf(one)) == 0 {
					ec.Dangles = append(ec.Dangles, r.String())
				}
			}
		case ByTag:
			if len(base.RulesOf(e)) > 0 && len(cand.RulesOf(e)) == 0 {
				ec.Dangles = append(ec.Dangles, "tag "+e.Tag)
			}
		}
		for _, id := range cand.RulesOf(e) {
			switch {
			case changed[id]:
				ec.Changed = append(ec.Changed, id)
			case added[id]:
				ec.Added = append(ec.Added, id)
			}
		}
		if len(ec.Dangles)+len(ec.Changed)+len(ec.Added) > 0 {
			out = append(out, ec)
		}
	}
	return out
}

// RuleChanges says, for each rule cand loads that an upgrade from base
// touched, what it did: "new" (base does not load it) or "changed" (its
// paranoia level, action, phase, severity, targets, operator or chained
// links differ, as Diff compares them). Rules it left alone are not in
// the map.
func RuleChanges(base, cand *Ruleset) map[int]string {
	_, changed, added := diffRules(base, cand)
	out := make(map[int]string, len(changed)+len(added))
	for id := range added {
		out[id] = "new"
	}
	for id := range changed {
		out[id] = "changed"
	}
	return out
}

func field(r Rule, name string) string {
	switch name {
	case "paranoia_level":
		if r.Paranoia == 0 {
			return "none"
		}
		return strconv.Itoa(r.Paranoia)
	case "action":
		if r.Action == "" {
			return "default"
		}
		return r.Action
	case "phase":
		return strconv.Itoa(r.Phase)
	case "targets":
		return r.Targets
	case "operator":
		return r.Operator
	case "severity":
		return r.Severity
	}
	return ""
}

// String lists the fields of a change, for printing: "paranoia_level
// 2 -> 1, action pass -> block".
func (c RuleChange) String() string {
	s := make([]string, len(c.Changes))
	for i, f := range c.Changes {
		s[i] = f.String()
	}
	return strings.Join(s, ", ")
}
