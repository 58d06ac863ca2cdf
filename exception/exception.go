// Package exception keeps the inventory of a ruleset's exceptions: every
// rule or directive of its own files that takes rules or targets away
// (ctl:ruleRemove*, SecRuleRemove*, SecRuleUpdateTarget*), with where it
// is, what it removes and when, who owns it until when, where it came
// from (Trace), and whether it still names rules the ruleset loads.
//
// It reads exclusions with the one reader there is (ruleset.ExclusionsOf)
// and measures nothing: what an exception still lets through is judged
// from traffic, elsewhere, later.
package exception

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
)

// Status is what the inventory says of an exception; the worst applies.
type Status string

// Statuses, worst first.
const (
	// Dangling names a rule ID, range or tag the ruleset does not load:
	// it removes nothing today, and would remove whatever a later release
	// gives that ID.
	Dangling Status = "dangling"
	// Expired is past its wafcanary/expires date.
	Expired Status = "expired"
	// Stale let nothing through over the configured thresholds of
	// requests judged without it and time (Config.StaleAfterRequests,
	// Config.StaleAfter): measured by a Monitor.
	Stale  Status = "stale"
	Active Status = "active"
)

// Metadata tags: tag:'wafcanary/owner=alice' on a rule, or, for a
// directive, which has no actions, a comment line right above it:
// # wafcanary/owner=alice.
const (
	MetaPrefix = "wafcanary/"
	MetaOwner  = "owner"
	MetaExpiry = "expires" // YYYY-MM-DD: in force through that day, UTC
	MetaTicket = "ticket"
)

// Exception is one rule or directive of a ruleset's own files that takes
// rules or targets away. Its JSON field names are what scripts and alerts
// read: keep them.
type Exception struct {
	// ID is the rule's id for a SecRule or SecAction; for a directive,
	// which has none, "d" and 10 hex digits of a hash of its text
	// (metadata tags aside), -2, -3... for copies of the same text. The
	// text, not file:line, so that lines added above it do not rename it
	// (a metric label, an argument to retire).
	ID   string `json:"id"`
	File string `json:"file"`
	Line int    `json:"line"`
	// Kinds are the exclusions it holds, as SecLang spells them
	// (ctl:ruleRemoveTargetById, SecRuleRemoveById), in order.
	Kinds []string `json:"kinds"`
	// Rules are the rules it names: IDs and ranges (942100-942199),
	// tag:TAG, msg:MSG, in order.
	Rules []string `json:"rules"`
	// Targets are the targets it changes, as written: ARGS:message for a
	// ctl, !ARGS:foo (taken away) or ARGS (added) for an update.
	Targets []string `json:"targets"`
	// Conditions are the tests of the rule's chain links that hold when
	// its ctl runs; empty for a directive, which holds on every request.
	Conditions []Condition `json:"conditions"`
	// Origin is the rollout that brought it, when the node knows it.
	Origin  *Origin `json:"origin"`
	Owner   string  `json:"owner"`
	Expires string  `json:"expires"`
	Ticket  string  `json:"ticket"`
	// Dangling are the rules it names that the ruleset does not load.
	Dangling []string `json:"dangling"`
	Expired  bool     `json:"expired"`
	Status   Status   `json:"status"`
	// Notes say what could not be read: a date that is not one, an
	// unknown wafcanary/ key.
	Notes []string `json:"notes,omitempty"`

	// What it still lets through, measured by a Monitor: Measured while
	// sampled traffic is judged without it (exceptions.sample_percent);
	// Judged requests, Evaluated of them in full (the others could not
	// differ), WouldBlock of them blocked without it, the rules behind
	// those (most first), the last one, and Stale.
	Measured        bool        `json:"measured"`
	Judged          uint64      `json:"judged"`
	Evaluated       uint64      `json:"evaluated"`
	WouldBlock      uint64      `json:"would_block"`
	WouldBlockRules []RuleCount `json:"would_block_rules"`
	LastWouldBlock  *Sighting   `json:"last_would_block"`
	// WouldBlockRequests are the request IDs of its would-be blocks the
	// server still keeps (MaxSightings, all exceptions together), newest
	// first, at most MaxWouldBlockRequests: explain shows each, and
	// exceptions retire makes a must_pass case of each kept with its
	// request.
	WouldBlockRequests []string `json:"would_block_requests"`
	Stale              bool     `json:"stale"`

	directive bool   // a directive, not a rule: metadata in comments
	text      string // its text without metadata, for Trace
	// links are its directives (a chain's links), for Without.
	links []ruleset.Directive
	// quiet is how many requests were judged without it since quietSince
	// (its last would-be block, or when it was first judged), none of
	// which it let through.
	quiet      uint64
	quietSince time.Time
}

// Condition is one chain link's test, as an exception's condition.
type Condition struct {
	// On says what the variable is of a request: host, path, uri,
	// basename or other.
	On       string `json:"on"`
	Variable string `json:"variable"`
	Operator string `json:"operator"`
	Argument string `json:"argument"`
	Negated  bool   `json:"negated,omitempty"`
}

func (c Condition) String() string {
	op := c.Operator
	if c.Negated {
		op = "!" + op
	}
	return fmt.Sprintf("%s %s %s", c.Variable, op, c.Argument)
}

var subjects = map[ruleset.Subject]string{ruleset.OnOther: "other", ruleset.OnHost: "host",
	ruleset.OnPath: "path", ruleset.OnURI: "uri", ruleset.OnBasename: "basename"}

// List reads the exceptions of rs's own files, in file order, and judges
// each against rs's rules and, unless now is zero, its expiry date.
func List(rs *ruleset.Ruleset, now time.Time) []Exception {
	out := []Exception{}
	seen := map[string]int{}
	for _, rule := range ruleset.Chains(rs.Directives()) {
		exs := ruleset.ExclusionsOf(rule)
		if len(exs) == 0 {
			continue
		}
		e := read(rs, rule, exs)
		if e.directive {
			sum := sha256.Sum256([]byte(e.text))
			e.ID = "d" + hex.EncodeToString(sum[:])[:10]
			if seen[e.ID]++; seen[e.ID] > 1 {
				e.ID += "-" + strconv.Itoa(seen[e.ID])
			}
		}
		e.judge(now)
		out = append(out, e)
	}
	return out
}

// read makes one exception of a rule (or directive) and its exclusions.
func read(rs *ruleset.Ruleset, rule []ruleset.Directive, exs []ruleset.Exclusion) Exception {
	first := rule[0]
	e := Exception{File: first.File, Line: first.Line, Kinds: []string{}, Rules: []string{}, Targets: []string{}, WouldBlockRules: []RuleCount{}, WouldBlockRequests: []string{},
		Conditions: []Condition{}, Dangling: []string{}, text: textOf(rule), links: rule}
	if id, ok := first.ID(); ok {
		e.ID = strconv.Itoa(id)
	} else {
		e.directive = true
	}
	links := map[int]bool{}
	for _, x := range exs {
		add(&e.Kinds, x.Kind.String())
		for _, t := range x.Targets {
			add(&e.Targets, t.String())
		}
		for _, c := range x.Conditions {
			if !links[c.Link] {
				links[c.Link] = true
				e.Conditions = append(e.Conditions, Condition{On: subjects[c.Subject], Variable: c.Vars,
					Operator: c.Operator, Argument: c.Arg, Negated: c.Negated})
			}
		}
		switch x.Kind.By() {
		case ruleset.ByID:
			if len(x.IDs) == 0 {
				add(&e.Dangling, x.Kind.String()+" with no rule ID Coraza reads")
			}
			for _, r := range x.IDs {
				add(&e.Rules, r.String())
				if !loads(rs, r) {
					add(&e.Dangling, r.String())
				}
			}
		case ruleset.ByTag:
			add(&e.Rules, "tag:"+x.Tag)
			if len(rs.Tagged(x.Tag)) == 0 {
				add(&e.Dangling, "tag:"+x.Tag)
			}
		case ruleset.ByMsg:
			// Not judged: the inventory keeps no message.
			add(&e.Rules, "msg:"+x.Msg)
		}
	}
	e.readMeta(metaOf(rs, rule, e.directive))
	return e
}

// loads reports whether rs loads a rule in r.
func loads(rs *ruleset.Ruleset, r ruleset.IDRange) bool {
	if r.From == r.To {
		_, ok := rs.Rule(r.From)
		return ok
	}
	return slices.ContainsFunc(rs.Rules, func(rule ruleset.Rule) bool { return r.Holds(rule.ID) })
}

func add(list *[]string, s string) {
	if !slices.Contains(*list, s) {
		*list = append(*list, s)
	}
}

// metaOf lists the wafcanary/ entries of a rule's tags, or of the comment
// lines above a directive, without the prefix: owner=alice.
func metaOf(rs *ruleset.Ruleset, rule []ruleset.Directive, directive bool) []string {
	var out []string
	if directive {
		for _, l := range rs.CommentsAbove(rule[0]) {
			for _, f := range strings.Fields(l) {
				if m, ok := strings.CutPrefix(f, MetaPrefix); ok {
					out = append(out, m)
				}
			}
		}
		return out
	}
	for _, d := range rule {
		for _, a := range d.Actions() {
			if name, v := ruleset.SplitAction(a); name == "tag" {
				if m, ok := strings.CutPrefix(v, MetaPrefix); ok {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

func (e *Exception) readMeta(meta []string) {
	for _, m := range meta {
		k, v, _ := strings.Cut(m, "=")
		v = strings.TrimSpace(v)
		switch k {
		case MetaOwner:
			e.Owner = v
		case MetaExpiry:
			e.Expires = v
		case MetaTicket:
			e.Ticket = v
		default:
			e.Notes = append(e.Notes, fmt.Sprintf("%s%s: not a key wafcanary reads (%s, %s, %s)", MetaPrefix, k, MetaOwner, MetaExpiry, MetaTicket))
		}
	}
	if e.Expires != "" {
		if _, err := time.Parse(time.DateOnly, e.Expires); err != nil {
			e.Notes = append(e.Notes, fmt.Sprintf("%s%s: want YYYY-MM-DD, got %q: no expiry read", MetaPrefix, MetaExpiry, e.Expires))
		}
	}
}

// expiry is the day after the expiry date, UTC, when the exception stops
// being in force; ok is false without a readable date.
func (e Exception) expiry() (time.Time, bool) {
	d, err := time.Parse(time.DateOnly, e.Expires)
	if err != nil {
		return time.Time{}, false
	}
	return d.AddDate(0, 0, 1), true
}

// judge sets Expired (unless now is zero) and Status.
func (e *Exception) judge(now time.Time) {
	if end, ok := e.expiry(); ok && !now.IsZero() {
		e.Expired = !now.Before(end)
	}
	switch {
	case len(e.Dangling) > 0:
		e.Status = Dangling
	case e.Expired:
		e.Status = Expired
	case e.Stale:
		e.Status = Stale
	default:
		e.Status = Active
	}
}

// textOf is a rule's text for Trace, the same across files and lines:
// each link's name (lower case) and arguments, its wafcanary/ tags left
// out so that renewing an exception does not make it new.
func textOf(rule []ruleset.Directive) string {
	var b strings.Builder
	for _, d := range rule {
		b.WriteString(strings.ToLower(d.Name))
		f := d.Fields()
		actions := d.Actions()
		if actions != nil {
			f = f[:len(f)-1]
		}
		for _, s := range f {
			b.WriteString(" " + s)
		}
		if actions != nil {
			kept := slices.DeleteFunc(actions, func(a string) bool {
				name, v := ruleset.SplitAction(a)
				return name == "tag" && strings.HasPrefix(v, MetaPrefix)
			})
			b.WriteString(" " + strings.Join(kept, ","))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Where is the exception's file:line.
func (e Exception) Where() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

// Audit says what the inventory finds wrong, one line each: problems are
// what a strict policy refuses (a dangling reference, no owner, no
// expiry date); notes are worth a warning only (expired, metadata that
// does not read). An expired exception is not a problem: a date that
// passes must not turn a deploy red on its own.
func Audit(list []Exception) (problems, notes []string) {
	for _, e := range list {
		name := fmt.Sprintf("exception %s (%s)", e.ID, e.Where())
		if len(e.Dangling) > 0 {
			problems = append(problems, fmt.Sprintf("%s names %s, which the ruleset does not load: it removes nothing now, and would remove whatever a later release numbers so (removed by a CRS upgrade?)",
				name, strings.Join(e.Dangling, ", ")))
		}
		how := func(key, example string) string {
			if e.directive {
				return fmt.Sprintf("a comment line right above it: # %s%s=%s", MetaPrefix, key, example)
			}
			return fmt.Sprintf("tag:'%s%s=%s'", MetaPrefix, key, example)
		}
		if e.Owner == "" {
			problems = append(problems, fmt.Sprintf("%s has no owner: add %s", name, how(MetaOwner, "NAME")))
		}
		if _, ok := e.expiry(); !ok {
			problems = append(problems, fmt.Sprintf("%s has no expiry date: add %s", name, how(MetaExpiry, "YYYY-MM-DD")))
		}
		if e.Expired {
			notes = append(notes, fmt.Sprintf("%s has expired: it was in force through %s; renew it or retire it", name, e.Expires))
		}
		for _, n := range e.Notes {
			notes = append(notes, name+": "+n)
		}
	}
	return problems, notes
}
