// Package gates holds the checks a candidate ruleset must pass before it
// may judge real traffic. The forbidden-edit guard refuses edits that turn
// protection off wholesale, whatever they were meant to fix.
package gates

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/wafcanary/wafcanary/ruleset"
)

// protected are the CRS rules that turn scores into verdicts; without
// them the rest of the rule set still scores, but nothing is blocked.
var protected = []protectedRule{
	{949110, "the inbound anomaly evaluation: without it no request is blocked on its score"},
	{949111, "the early (phase 1) inbound anomaly evaluation"},
	{959100, "the outbound anomaly evaluation: without it no response is blocked"},
	{980170, "the anomaly score report"},
	// What Coraza leaves open, closed by the shipped baseline's limits
	// (docs/RATIONALE.md, "The shipped baseline's limits").
	{200002, "the request body parse check: without it a body Coraza cannot parse is forwarded unjudged"},
	{200003, "the multipart strictness check: without it a multipart body parsers read differently is forwarded"},
	{9100, "early blocking: without it a body of a refused Content-Type is parsed and judged at great cost before the verdict"},
	{9101, "the query argument limit: without it the arguments past SecArgumentsLimit reach the application unjudged"},
	{9102, "the body argument limit: without it the arguments past SecArgumentsLimit reach the application unjudged"},
	{9103, "UTF-8 query arguments: without it binary arguments cost CRS five to ten times their length in CPU"},
	{9104, "UTF-8 body arguments: without it binary arguments cost CRS five to ten times their length in CPU"},
	{9105, "the bound on all arguments' size: without it a multipart field of megabytes is judged at seconds of CPU"},
	{9106, "the bound on multipart parts: Coraza's multipart parser ignores SecArgumentsLimit"},
	{9107, "the refusal of filename* in multipart: parsers disagree whether such a part is a file or a field"},
}

// SecRuleRemoveByMsg is not checked: Coraza v3.8.1 cannot compile it next
// to CRS (it panics on rules without msg), so ruleset.Load refuses such a
// candidate before any guard runs.
type protectedRule struct {
	id   int
	what string
}

// Violation is one forbidden edit: where it is and why it is refused.
type Violation struct {
	File      string `json:"file"`
	Line      int    `json:"line"`
	Directive string `json:"directive"`
	Why       string `json:"why"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", v.File, v.Line, v.Directive, v.Why)
}

var (
	ctlEngine     = regexp.MustCompile(`(?i)ctl:ruleEngine=(\w+)`)
	threshold     = regexp.MustCompile(`(?i)setvar:'?tx\.inbound_anomaly_score_threshold=(\d+)`)
	ctlBodyAccess = regexp.MustCompile(`(?i)ctl:requestBodyAccess=(\w+)`)
	paranoia      = regexp.MustCompile(`(?i)setvar:'?tx\.(blocking_paranoia_level|paranoia_level)=(-?\d+)`)
	// An assignment (not an increment, =+) to a score or a severity's
	// weight: tx.blocking_inbound_anomaly_score=0 forgets every match
	// before it, tx.critical_anomaly_score=0 makes critical matches worth
	// nothing. Thresholds have their own ceiling.
	scoreSet  = regexp.MustCompile(`(?i)setvar:'?(tx\.\w*anomaly_score\w*)=([^+',"][^',"]*)?(?:['",]|$)`)
	skipAfter = regexp.MustCompile(`(?i)skipAfter:'?([^,'"\s]+)`)
	// The CRS markers a skip may go to: those before the blocking
	// evaluation of their phase (REQUEST-949, RESPONSE-959).
	earlyMarker = regexp.MustCompile(`^(?:END-REQUEST-9(?:[0-3][0-9]|4[0-8])-[A-Z-]+|END-RESPONSE-95[0-6]-[A-Z-]+|END-HOST-CHECK|END-SAMPLING|END-SQL-ERROR-MATCH-PL1)$`)
)

// Guard checks cand's own directives (the embedded CRS is trusted) for
// forbidden edits: removing or changing the protected rules, leaving the
// rule engine off or in detection-only mode, or raising the inbound
// anomaly threshold above the ceiling. A protected rule the baseline
// loads and the candidate does not is refused too.
func Guard(base, cand *ruleset.Ruleset, cfg Config) []Violation {
	var out []Violation
	add := func(d ruleset.Directive, why string, args ...any) {
		out = append(out, Violation{File: d.File, Line: d.Line, Directive: d.Name, Why: fmt.Sprintf(why, args...)})
	}
	var engine string
	var engineAt ruleset.Directive
	tags := protectedTags(cand)
	ds := cand.Directives()
	markers := localMarkers(ds)
	// What each directive takes away, read by ruleset's one reader: a
	// ctl written 'ruleRemoveById=949110' or with a space after ctl: is
	// read as Coraza reads it.
	type place struct {
		file string
		line int
	}
	exclusions := map[place][]ruleset.Exclusion{}
	for _, e := range ruleset.Exclusions(ds) {
		exclusions[place{e.File, e.Line}] = append(exclusions[place{e.File, e.Line}], e)
	}
	for _, d := range ds {
		for _, e := range exclusions[place{d.File, d.Line}] {
			why, ok := removes[e.Kind]
			if !ok {
				continue
			}
			var ids []int
			switch e.Kind.By() {
			case ruleset.ByID:
				for _, p := range hitIDs(e.IDs) {
					ids = append(ids, p.id)
				}
			case ruleset.ByTag:
				ids = matchTags(e.Tag, tags)
			}
			for _, id := range ids {
				if e.Kind.Ctl() && e.Kind.Targets() && isLimit(id) {
					continue
				}
				add(d, why, id, whatOf(id), e.Tag)
			}
		}
		switch strings.ToLower(d.Name) {
		case "secrequestbodyaccess":
			if !strings.EqualFold(strings.Trim(d.Args, `"'`), "On") {
				add(d, "turns request body access off: every body would reach the upstream unjudged")
			}
		case "include":
			if strings.Contains(d.Args, "@coraza.conf-recommended") {
				engine, engineAt = "DetectionOnly", d
			}
		case "secruleengine":
			engine, engineAt = strings.Trim(d.Args, `"`), d
		case "secruleupdateactionbyid":
			first, _, _ := strings.Cut(d.Args, " ")
			if r, ok := ruleset.ParseIDRange(strings.Trim(first, `"`)); ok {
				for _, p := range hitIDs([]ruleset.IDRange{r}) {
					add(d, "changes %d, %s", p.id, p.what)
				}
			}
		case "secrule", "secaction":
			for _, m := range ctlEngine.FindAllStringSubmatch(d.Args, -1) {
				if !strings.EqualFold(m[1], "On") {
					add(d, "switches the rule engine to %s at run time (ctl:ruleEngine): matching requests would not be blocked", m[1])
				}
			}
			for _, m := range ctlBodyAccess.FindAllStringSubmatch(d.Args, -1) {
				if !strings.EqualFold(m[1], "On") {
					add(d, "turns request body access off at run time (ctl:requestBodyAccess=%s): matching bodies would reach the upstream unjudged", m[1])
				}
			}
			for _, m := range paranoia.FindAllStringSubmatch(d.Args, -1) {
				if n, _ := strconv.Atoi(m[2]); n < 1 {
					add(d, "sets tx.%s to %d: no CRS rule would block", m[1], n)
				}
			}
			for _, m := range scoreSet.FindAllStringSubmatch(d.Args, -1) {
				if strings.HasSuffix(strings.ToLower(m[1]), "_threshold") {
					continue
				}
				add(d, "assigns %s=%s: a score or weight set rather than added to lets matches go uncounted", m[1], m[2])
			}
			for _, m := range skipAfter.FindAllStringSubmatch(d.Args, -1) {
				if !earlyMarker.MatchString(m[1]) && !markers[m[1]] {
					add(d, "skips to %s, past the blocking evaluation or to no marker before it (skipAfter): the requests it matches would not be blocked", m[1])
				}
			}
			for _, m := range threshold.FindAllStringSubmatch(d.Args, -1) {
				if n, _ := strconv.Atoi(m[1]); n > cfg.MaxInboundThreshold {
					add(d, "raises the inbound anomaly threshold to %d, above the ceiling of %d (gates.max_inbound_threshold)", n, cfg.MaxInboundThreshold)
				}
			}
		}
	}
	if engine != "" && !strings.EqualFold(engine, "On") {
		why := "leaves the rule engine %s: the candidate would block nothing"
		if strings.EqualFold(engineAt.Name, "Include") {
			why += " (set by the included file; add SecRuleEngine On after it)"
		}
		add(engineAt, why, engine)
	}
	main := ""
	if len(cand.Files) > 0 {
		main = cand.Files[0].Name
	}
	var limits []string
	for _, p := range protected {
		if !loads(base, p.id) || loads(cand, p.id) {
			continue
		}
		if isLimit(p.id) {
			limits = append(limits, strconv.Itoa(p.id))
			continue
		}
		out = append(out, Violation{File: main, Line: 0, Directive: "Include", Why: fmt.Sprintf("does not load %d, which the baseline does: %s", p.id, p.what)})
	}
	// A candidate written before the limits, or from another baseline,
	// lacks them all: one violation that says what to do, not eight.
	if len(limits) > 0 {
		out = append(out, Violation{File: main, Line: 0, Directive: "Include", Why: fmt.Sprintf(
			"does not load %s, which the baseline does: wafcanary's limits, which close what Coraza leaves open (arguments past SecArgumentsLimit, binary and oversized bodies, multipart filename*); copy them from the baseline (rules 9100-9107, docs/RATIONALE.md)",
			strings.Join(limits, ", "))})
	}
	return out
}

// isLimit reports whether id is one of wafcanary's limits in the shipped
// baseline (9100-9199).
func isLimit(id int) bool { return 9100 <= id && id < 9200 }

// localMarkers are the markers a ruleset's own files define before the
// CRS rules include: a skip to one of them stays before every blocking
// evaluation. A marker after it, or one defined nowhere (Coraza then
// skips the rest of the phase), does not.
func localMarkers(ds []ruleset.Directive) map[string]bool {
	out := map[string]bool{}
	for _, d := range ds {
		switch {
		case strings.EqualFold(d.Name, "Include") && strings.Contains(d.Args, "@owasp_crs"):
			return out
		case strings.EqualFold(d.Name, "SecMarker"):
			out[strings.Trim(d.Args, `"'`)] = true
		}
	}
	return out
}

func loads(rs *ruleset.Ruleset, id int) bool {
	return rs != nil && slices.ContainsFunc(rs.Rules, func(r ruleset.Rule) bool { return r.ID == id })
}

func whatOf(id int) string {
	for _, p := range protected {
		if p.id == id {
			return p.what
		}
	}
	return ""
}

// removes says, per kind of exclusion the guard checks, what one does to
// a protected rule: %[1]d is the rule, %[2]s what it does, %[3]s the tag.
// Exclusions by message are not checked (see protectedRule).
var removes = map[ruleset.Kind]string{
	ruleset.SecRuleRemoveByID:        "removes %[1]d, %[2]s",
	ruleset.SecRuleRemoveByTag:       "removes %[1]d (by tag), %[2]s",
	ruleset.SecRuleUpdateTargetByID:  "changes %[1]d, %[2]s",
	ruleset.SecRuleUpdateTargetByTag: "changes what %[1]d inspects, %[2]s",
	ruleset.CtlRuleRemoveByID:        "removes %[1]d at run time (ctl:ruleRemoveById), %[2]s",
	ruleset.CtlRuleRemoveByTag:       "removes %[1]d at run time (ctl:ruleRemoveByTag=%[3]s), %[2]s",
	// Taking a target away can disarm a rule as well as removing it
	// (949110 without TX:blocking_inbound_anomaly_score blocks nothing).
	// wafcanary's own limits (9100-9199) are the exception: tune narrows
	// them by path and argument like any false positive.
	ruleset.CtlRuleRemoveTargetByID:  "takes a target from %[1]d at run time (ctl:ruleRemoveTargetById), %[2]s",
	ruleset.CtlRuleRemoveTargetByTag: "takes a target from %[1]d at run time (ctl:ruleRemoveTargetByTag=%[3]s), %[2]s",
}

// hitIDs returns the protected rules in IDs and ranges (949000-949999).
func hitIDs(ranges []ruleset.IDRange) []protectedRule {
	var out []protectedRule
	for _, p := range protected {
		if slices.ContainsFunc(ranges, func(r ruleset.IDRange) bool { return r.Holds(p.id) }) {
			out = append(out, p)
		}
	}
	return out
}

// protectedTags maps each protected rule the candidate loads to its tags.
func protectedTags(rs *ruleset.Ruleset) map[int][]string {
	out := map[int][]string{}
	for _, r := range rs.Rules {
		if whatOf(r.ID) != "" {
			out[r.ID] = r.Tags
		}
	}
	return out
}

// matchTags returns the protected rules with a tag the pattern matches;
// SecLang treats the argument as a regular expression.
func matchTags(pattern string, tags map[int][]string) []int {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil
	}
	var out []int
	for _, p := range protected {
		if slices.ContainsFunc(tags[p.id], re.MatchString) {
			out = append(out, p.id)
		}
	}
	return out
}
