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
	ctlRemoveByID  = regexp.MustCompile(`(?i)ctl:ruleRemoveById=([0-9,\-\s]+)`)
	ctlRemoveByTag = regexp.MustCompile(`(?i)ctl:ruleRemoveByTag=([^,'"]+)`)
	ctlEngine      = regexp.MustCompile(`(?i)ctl:ruleEngine=(\w+)`)
	threshold      = regexp.MustCompile(`(?i)setvar:'?tx\.inbound_anomaly_score_threshold=(\d+)`)
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
	for _, d := range cand.Directives() {
		switch strings.ToLower(d.Name) {
		case "include":
			if strings.Contains(d.Args, "@coraza.conf-recommended") {
				engine, engineAt = "DetectionOnly", d
			}
		case "secruleengine":
			engine, engineAt = strings.Trim(d.Args, `"`), d
		case "secruleremovebyid":
			for _, p := range hitIDs(strings.Fields(strings.ReplaceAll(d.Args, ",", " "))) {
				add(d, "removes %d, %s", p.id, p.what)
			}
		case "secruleremovebytag":
			for _, id := range matchTags(strings.Trim(d.Args, `"`), tags) {
				add(d, "removes %d (by tag), %s", id, whatOf(id))
			}
		case "secruleupdateactionbyid", "secruleupdatetargetbyid", "secruleupdatetargetbytag":
			first, _, _ := strings.Cut(d.Args, " ")
			if strings.EqualFold(d.Name, "SecRuleUpdateTargetByTag") {
				for _, id := range matchTags(strings.Trim(first, `"`), tags) {
					add(d, "changes what %d inspects, %s", id, whatOf(id))
				}
				continue
			}
			for _, p := range hitIDs([]string{first}) {
				add(d, "changes %d, %s", p.id, p.what)
			}
		case "secrule", "secaction":
			for _, m := range ctlRemoveByID.FindAllStringSubmatch(d.Args, -1) {
				for _, p := range hitIDs(strings.FieldsFunc(m[1], func(r rune) bool { return r == ',' || r == ' ' })) {
					add(d, "removes %d at run time (ctl:ruleRemoveById), %s", p.id, p.what)
				}
			}
			for _, m := range ctlRemoveByTag.FindAllStringSubmatch(d.Args, -1) {
				for _, id := range matchTags(m[1], tags) {
					add(d, "removes %d at run time (ctl:ruleRemoveByTag=%s), %s", id, m[1], whatOf(id))
				}
			}
			for _, m := range ctlEngine.FindAllStringSubmatch(d.Args, -1) {
				if !strings.EqualFold(m[1], "On") {
					add(d, "switches the rule engine to %s at run time (ctl:ruleEngine): matching requests would not be blocked", m[1])
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
	for _, p := range protected {
		if loads(base, p.id) && !loads(cand, p.id) {
			out = append(out, Violation{File: main, Line: 0, Directive: "Include", Why: fmt.Sprintf("does not load %d, which the baseline does: %s", p.id, p.what)})
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

// hitIDs returns the protected rules named by IDs or ranges ("949000-949999").
func hitIDs(tokens []string) []protectedRule {
	var out []protectedRule
	for _, p := range protected {
		for _, t := range tokens {
			t = strings.Trim(t, `"' `)
			lo, hi, isRange := strings.Cut(t, "-")
			a, errA := strconv.Atoi(lo)
			b := a
			var errB error
			if isRange {
				b, errB = strconv.Atoi(hi)
			}
			if errA == nil && errB == nil && a <= p.id && p.id <= b {
				out = append(out, p)
				break
			}
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
