package ruleset

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is how an exclusion is written: a ctl: action, which takes rules
// or targets away from the one transaction whose request its rule
// matched, or a directive, which takes them away from the ruleset for
// every request.
type Kind uint8

// The kinds of exclusion, as SecLang spells them.
const (
	CtlRuleRemoveByID        Kind = iota + 1 // ctl:ruleRemoveById=ID|RANGE
	CtlRuleRemoveByTag                       // ctl:ruleRemoveByTag=TAG
	CtlRuleRemoveByMsg                       // ctl:ruleRemoveByMsg=MSG
	CtlRuleRemoveTargetByID                  // ctl:ruleRemoveTargetById=ID|RANGE;TARGET
	CtlRuleRemoveTargetByTag                 // ctl:ruleRemoveTargetByTag=TAG;TARGET
	CtlRuleRemoveTargetByMsg                 // ctl:ruleRemoveTargetByMsg=MSG;TARGET
	SecRuleRemoveByID                        // SecRuleRemoveById ID|RANGE ...
	SecRuleRemoveByTag                       // SecRuleRemoveByTag TAG
	SecRuleRemoveByMsg                       // SecRuleRemoveByMsg MSG
	SecRuleUpdateTargetByID                  // SecRuleUpdateTargetById ID|RANGE ... TARGETS
	SecRuleUpdateTargetByTag                 // SecRuleUpdateTargetByTag TAG TARGETS
	SecRuleUpdateTargetByMsg                 // SecRuleUpdateTargetByMsg MSG TARGETS (Coraza v3.8 accepts it and does nothing)
)

// By is what an exclusion names rules by.
type By uint8

// What an exclusion names rules by.
const (
	ByID  By = iota + 1 // IDs and ranges (Exclusion.IDs)
	ByTag               // a tag, compared whole and case-sensitively (Exclusion.Tag)
	ByMsg               // a message, compared whole (Exclusion.Msg)
)

var kinds = [...]struct {
	name    string
	by      By
	targets bool
}{
	CtlRuleRemoveByID:        {"ctl:ruleRemoveById", ByID, false},
	CtlRuleRemoveByTag:       {"ctl:ruleRemoveByTag", ByTag, false},
	CtlRuleRemoveByMsg:       {"ctl:ruleRemoveByMsg", ByMsg, false},
	CtlRuleRemoveTargetByID:  {"ctl:ruleRemoveTargetById", ByID, true},
	CtlRuleRemoveTargetByTag: {"ctl:ruleRemoveTargetByTag", ByTag, true},
	CtlRuleRemoveTargetByMsg: {"ctl:ruleRemoveTargetByMsg", ByMsg, true},
	SecRuleRemoveByID:        {"SecRuleRemoveById", ByID, false},
	SecRuleRemoveByTag:       {"SecRuleRemoveByTag", ByTag, false},
	SecRuleRemoveByMsg:       {"SecRuleRemoveByMsg", ByMsg, false},
	SecRuleUpdateTargetByID:  {"SecRuleUpdateTargetById", ByID, true},
	SecRuleUpdateTargetByTag: {"SecRuleUpdateTargetByTag", ByTag, true},
	SecRuleUpdateTargetByMsg: {"SecRuleUpdateTargetByMsg", ByMsg, true},
}

// kindNamed maps a ctl option or a directive name, lower case, to its
// kind. Coraza reads directive names in any case; a ctl option in
// another case than its own does not compile, so reading it in any case
// changes nothing.
var kindNamed = func() map[string]Kind {
	m := map[string]Kind{}
	for k := CtlRuleRemoveByID; k <= SecRuleUpdateTargetByMsg; k++ {
		m[strings.ToLower(strings.TrimPrefix(k.String(), "ctl:"))] = k
	}
	return m
}()

// String is the kind as SecLang spells it: ctl:ruleRemoveById,
// SecRuleUpdateTargetById.
func (k Kind) String() string {
	if int(k) < len(kinds) && kinds[k].name != "" {
		return kinds[k].name
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Ctl reports whether the kind is a ctl: action, which acts only on the
// transaction whose request its rule matched, and only on the rules
// evaluated after it.
func (k Kind) Ctl() bool { return k >= CtlRuleRemoveByID && k <= CtlRuleRemoveTargetByMsg }

// By is what the kind names rules by.
func (k Kind) By() By {
	if int(k) < len(kinds) {
		return kinds[k].by
	}
	return 0
}

// Targets reports whether the kind changes the rules' targets
// (Exclusion.Targets) rather than taking whole rules away.
func (k Kind) Targets() bool { return int(k) < len(kinds) && kinds[k].targets }

// Exclusion is one thing a ruleset's own files take away from its rules:
// a SecRuleRemove* or SecRuleUpdateTarget* directive, or one
// ctl:ruleRemove* action of a rule. It says what is written, read as
// Coraza v3.8 reads it; what that takes away from a loaded ruleset is
// Ruleset.RulesOf's.
type Exclusion struct {
	// File and Line are where the directive that holds it starts: for a
	// ctl action, the chain link whose action it is.
	File string
	Line int
	Kind Kind
	// Rule is the ID of the rule whose ctl action it is; 0 for a
	// directive.
	Rule int
	// Link is the chain link whose action it is, from 0, and Last is set
	// when that is the chain's last link. Coraza runs a link's actions
	// when that link matches, whether or not the links after it do. A
	// directive is its own last link 0.
	Link int
	Last bool
	// IDs are the rule IDs and ranges of a ByID kind, in order. An ID
	// Coraza cannot read is not in it: a directive with one does not
	// compile, and a ctl with one removes nothing (Coraza takes quotes and
	// spaces off the whole ctl value, never off the ID after '=', and a
	// ctl names one ID or one range).
	IDs []IDRange
	// Tag is the tag of a ByTag kind; Msg the message of a ByMsg kind.
	Tag, Msg string
	// Targets are what a Targets kind changes: the one target a ctl takes
	// away (written without '!'), or a SecRuleUpdateTarget*'s list, whose
	// targets with Not set are taken away and the others added.
	Targets []Target
	// Conditions are a ctl's conditions: those of its chain's links up to
	// and including Link, which all hold whenever it runs. Nil for a
	// directive, which holds on every request.
	Conditions []Condition
}

// IDRange is a rule ID (From == To) or an inclusive range of them.
type IDRange struct{ From, To int }

// Holds reports whether id is in the range.
func (r IDRange) Holds(id int) bool { return r.From <= id && id <= r.To }

func (r IDRange) String() string {
	if r.From == r.To {
		return strconv.Itoa(r.From)
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// Target is one variable of a target list: ARGS, !ARGS:foo, &ARGS,
// REQUEST_COOKIES:/^sess/.
type Target struct {
	// Not is set for a target taken away (!ARGS:foo); Count for &ARGS.
	Not, Count bool
	// Name is the variable or collection, as written (ARGS).
	Name string
	// Key is the part after ':', the pattern without its slashes when
	// Regex is set; "" for the whole collection.
	Key   string
	Regex bool
}

func (t Target) String() string {
	s := t.Name
	switch {
	case t.Regex:
		s += ":/" + t.Key + "/"
	case t.Key != "":
		s += ":" + t.Key
	}
	if t.Count {
		s = "&" + s
	}
	if t.Not {
		s = "!" + s
	}
	return s
}

// Subject is what a condition's variable says of a request, where a
// scope has a word for it.
type Subject uint8

// What a condition's variable says of a request.
const (
	OnOther    Subject = iota // any other variable, or more than one
	OnHost                    // REQUEST_HEADERS:Host, SERVER_NAME
	OnPath                    // REQUEST_FILENAME: the path, without the query
	OnURI                     // REQUEST_URI, REQUEST_URI_RAW: the path with the query
	OnBasename                // REQUEST_BASENAME: the path's last segment
)

// Condition is one SecRule link's test: its variables and its operator.
type Condition struct {
	// Link is the chain link, from 0.
	Link int
	// Vars and Op are the link's first two arguments as written, quotes
	// off: REQUEST_HEADERS:Host and @streq shop.example.
	Vars, Op string
	Subject  Subject
	// Operator is Op's operator, lower case, @rx where none is written;
	// Arg its argument; Negated is set for !@streq and the like.
	Operator, Arg string
	Negated       bool
}

// Exclusions reads every exclusion in ds, in order, a rule with its
// chain links at a time (Chains).
func Exclusions(ds []Directive) []Exclusion {
	var out []Exclusion
	for _, rule := range Chains(ds) {
		out = append(out, ExclusionsOf(rule)...)
	}
	return out
}

// Exclusions reads every exclusion in r's own files (Directives): the
// embedded CRS is passed over.
func (r *Ruleset) Exclusions() []Exclusion { return Exclusions(r.Directives()) }

// ExclusionsOf reads the exclusions of one rule, a SecRule or SecAction
// with its chain links (a group from Chains or Added), or of one other
// directive: nil when it takes nothing away.
func ExclusionsOf(rule []Directive) []Exclusion {
	if len(rule) == 0 {
		return nil
	}
	first := rule[0]
	if !isRule(first) {
		e, ok := directiveExclusion(first)
		if !ok {
			return nil
		}
		return []Exclusion{e}
	}
	id, _ := first.ID()
	conds := Conditions(rule)
	var out []Exclusion
	for i, d := range rule {
		for _, a := range d.Actions() {
			name, value := SplitAction(a)
			if name != "ctl" {
				continue
			}
			option, arg := SplitCtl(value)
			k, ok := kindNamed[strings.ToLower(option)]
			if !ok || !k.Ctl() {
				continue
			}
			e := Exclusion{File: d.File, Line: d.Line, Kind: k, Rule: id, Link: i, Last: i == len(rule)-1}
			sel := arg
			if k.Targets() {
				var target string
				sel, target, _ = strings.Cut(arg, ";")
				e.Targets = ctlTarget(target)
			}
			switch k.By() {
			case ByID:
				if r, ok := ParseIDRange(sel); ok {
					e.IDs = []IDRange{r}
				}
			case ByTag:
				e.Tag = sel
			case ByMsg:
				e.Msg = sel
			}
			for _, c := range conds {
				if c.Link <= i {
					e.Conditions = append(e.Conditions, c)
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// directiveExclusion reads a SecRuleRemove* or SecRuleUpdateTarget*
// directive as Coraza does: arguments wholly in double quotes lose them,
// the rest is split at white space; an update's last field is its
// targets, and every field before it an ID or a range.
func directiveExclusion(d Directive) (Exclusion, bool) {
	k, ok := kindNamed[strings.ToLower(d.Name)]
	if !ok || k.Ctl() {
		return Exclusion{}, false
	}
	e := Exclusion{File: d.File, Line: d.Line, Kind: k, Last: true}
	args := d.Args
	if len(args) >= 3 && args[0] == '"' && args[len(args)-1] == '"' {
		args = strings.Trim(args, `"`)
	}
	f := strings.Fields(args)
	if k.Targets() {
		// A message is quoted and holds spaces: read it SecLang's way.
		if k.By() == ByMsg {
			f = d.Fields()
		}
		if len(f) < 2 {
			return e, true
		}
		e.Targets = targets(strings.Trim(f[len(f)-1], `"`))
		f = f[:len(f)-1]
	}
	switch k.By() {
	case ByID:
		for _, s := range f {
			if r, ok := ParseIDRange(s); ok {
				e.IDs = append(e.IDs, r)
			}
		}
	case ByTag:
		if k.Targets() && len(f) > 0 {
			e.Tag = strings.Trim(f[0], `"`)
		} else {
			e.Tag = args
		}
	case ByMsg:
		if k.Targets() && len(f) > 0 {
			e.Msg = Unquote(f[0])
		} else {
			e.Msg = args
		}
	}
	return e, true
}

// RulesOf lists the IDs of the rules r loads that e names, ordered: by
// ID or range, or by tag. A message is not read (the inventory does not
// keep one): nil.
func (r *Ruleset) RulesOf(e Exclusion) []int {
	switch e.Kind.By() {
	case ByID:
		var out []int
		for _, rule := range r.Rules {
			for _, ir := range e.IDs {
				if ir.Holds(rule.ID) {
					out = append(out, rule.ID)
					break
				}
			}
		}
		return out
	case ByTag:
		return r.Tagged(e.Tag)
	}
	return nil
}

// Conditions reads the test of each SecRule link of a rule, in order.
func Conditions(rule []Directive) []Condition {
	var out []Condition
	for i, d := range rule {
		f := d.Fields()
		if !strings.EqualFold(d.Name, "SecRule") || len(f) < 2 {
			continue
		}
		c := Condition{Link: i, Vars: Unquote(f[0]), Op: Unquote(f[1])}
		c.Subject = subjectOf(c.Vars)
		op := strings.TrimSpace(c.Op)
		if rest, ok := strings.CutPrefix(op, "!"); ok {
			c.Negated, op = true, strings.TrimSpace(rest)
		}
		if strings.HasPrefix(op, "@") {
			name, arg, _ := strings.Cut(op, " ")
			c.Operator, c.Arg = strings.ToLower(name), strings.TrimSpace(arg)
		} else {
			c.Operator, c.Arg = "@rx", op
		}
		out = append(out, c)
	}
	return out
}

func subjectOf(vars string) Subject {
	switch strings.ToUpper(strings.TrimSpace(vars)) {
	case "REQUEST_HEADERS:HOST", "SERVER_NAME":
		return OnHost
	case "REQUEST_FILENAME":
		return OnPath
	case "REQUEST_URI", "REQUEST_URI_RAW":
		return OnURI
	case "REQUEST_BASENAME":
		return OnBasename
	}
	return OnOther
}

// SplitAction splits one action (from Directive.Actions) as Coraza does:
// its name, trimmed and lower case, and its value, trimmed and without
// one pair of quotes around it.
func SplitAction(a string) (name, value string) {
	name, value, _ = strings.Cut(a, ":")
	value = strings.TrimSpace(value)
	if len(value) >= 2 && (value[0] == '\'' || value[0] == '"') && value[len(value)-1] == value[0] {
		value = value[1 : len(value)-1]
	}
	return strings.ToLower(strings.TrimSpace(name)), value
}

// SplitCtl splits a ctl action's value (from SplitAction) into its
// option and its argument, as Coraza does: at the first '=', nothing
// trimmed.
func SplitCtl(value string) (option, arg string) {
	option, arg, _ = strings.Cut(value, "=")
	return option, arg
}

// ID is the rule ID a SecRule or SecAction declares (its id action).
func (d Directive) ID() (int, bool) {
	for _, a := range d.Actions() {
		if name, v := SplitAction(a); name == "id" {
			id, err := strconv.Atoi(v)
			return id, err == nil && id > 0
		}
	}
	return 0, false
}

func isRule(d Directive) bool {
	return strings.EqualFold(d.Name, "SecRule") || strings.EqualFold(d.Name, "SecAction")
}

// ParseIDRange reads a rule ID or an inclusive range (942100-942199) as
// Coraza does, nothing trimmed.
func ParseIDRange(s string) (IDRange, bool) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	if err != nil {
		return IDRange{}, false
	}
	if !isRange {
		return IDRange{a, a}, true
	}
	b, err := strconv.Atoi(hi)
	if err != nil || b < a {
		return IDRange{}, false
	}
	return IDRange{a, b}, true
}

// ctlTarget reads the target of a ctl:ruleRemoveTarget* as Coraza does:
// the variable before ':', the key after it trimmed, a key in slashes a
// pattern.
func ctlTarget(s string) []Target {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	name, key, _ := strings.Cut(s, ":")
	t := Target{Name: strings.TrimSpace(name)}
	t.Key, t.Regex = regexKey(strings.TrimSpace(key))
	return []Target{t}
}

// targets reads a target list (ARGS|!ARGS:foo|!REQUEST_COOKIES:/^sess/):
// split at '|' outside a key's pattern.
func targets(list string) []Target {
	var out []Target
	add := func(s string) {
		if t, ok := target(s); ok {
			out = append(out, t)
		}
	}
	start, keyed, inPattern, escaped := 0, false, false, false
	for i := 0; i < len(list); i++ {
		c := list[i]
		switch {
		case inPattern:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '/':
				inPattern = false
			}
		case c == ':' && !keyed:
			keyed = true
			j := i + 1
			if j < len(list) && list[j] == '\'' {
				j++
			}
			if j < len(list) && list[j] == '/' {
				inPattern, i = true, j
			}
		case c == '|':
			add(list[start:i])
			start, keyed = i+1, false
		}
	}
	add(list[start:])
	return out
}

func target(s string) (Target, bool) {
	s = strings.TrimSpace(s)
	var t Target
	for len(s) > 0 && (s[0] == '!' || s[0] == '&') {
		t.Not = t.Not || s[0] == '!'
		t.Count = t.Count || s[0] == '&'
		s = s[1:]
	}
	name, key, _ := strings.Cut(s, ":")
	t.Name = name
	t.Key, t.Regex = regexKey(strings.Trim(key, "'"))
	return t, name != ""
}

// regexKey takes the slashes off a key that is a pattern (/^sess/).
func regexKey(key string) (string, bool) {
	if len(key) >= 2 && key[0] == '/' && closingSlash(key) == len(key)-1 {
		return key[1 : len(key)-1], true
	}
	return key, false
}

// closingSlash is the index of the '/' that closes the pattern s opens
// with, len(s) when none does.
func closingSlash(s string) int {
	escaped := false
	for i := 1; i < len(s); i++ {
		switch {
		case escaped:
			escaped = false
		case s[i] == '\\':
			escaped = true
		case s[i] == '/':
			return i
		}
	}
	return len(s)
}
