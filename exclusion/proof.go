package exclusion

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Proof is what sending attacks in the excluded variables found: for
// every removed rule and variable, the rule's own CRS regression-test
// payloads; for every variable, the hand-picked attacks of the removed
// rules' families and of SQL injection and XSS. Only attacks the baseline
// blocks count: the others test nothing about the change.
type Proof struct {
	Rules    []RuleCheck   `json:"rules"`
	Families []FamilyCheck `json:"families"`
	// MustBlock are the cases worth writing: per rule and variable up to
	// maxCasesPerRule of its payloads, those held by a single remaining
	// rule first, and every family attack that stays blocked.
	MustBlock []gates.Case `json:"-"`
	// Notes say what could not be checked.
	Notes []string `json:"notes,omitempty"`
}

// RuleCheck is one removed rule's CRS regression-test payloads, sent in
// the variable it no longer inspects.
type RuleCheck struct {
	Rule   int    `json:"rule"`
	Target string `json:"target"`
	// Tests is how many of the rule's CRS tests expect it to match and
	// carry a value to try.
	Tests int `json:"tests"`
	// Checked are the payloads the baseline blocks with the rule matching
	// Target; Blocked of them the candidate blocks too; Thin of those are
	// held by a single remaining rule, the ones to watch.
	Checked int `json:"checked"`
	Blocked int `json:"blocked"`
	Thin    int `json:"thin,omitempty"`
	// Opened are payloads the candidate lets through (case names) that
	// a removed rule the requests do not need caught: the exclusion opens
	// more than the requests need, and is refused unless --accept-opened.
	Opened []string `json:"opened,omitempty"`
	// Inherent are payloads the candidate lets through that, in this
	// variable, only removed rules the requests trip there too caught: to
	// the baseline's rules they look like the requests, and no exclusion
	// that lets the requests through keeps them blocked. They are the
	// exclusion's price, listed, not refused.
	Inherent []string `json:"inherent,omitempty"`
}

func (c RuleCheck) String() string {
	s := fmt.Sprintf("rule %d in %s: %d CRS test payload(s) checked, %d stay blocked", c.Rule, c.Target, c.Checked, c.Blocked)
	if c.Thin > 0 {
		s += fmt.Sprintf(" (%d by one rule only)", c.Thin)
	}
	s += fmt.Sprintf(", %d let through", len(c.Opened)+len(c.Inherent))
	if len(c.Inherent) > 0 {
		s += fmt.Sprintf(" (%d caught there only by rules the requests trip too)", len(c.Inherent))
	}
	return s
}

// FamilyCheck is one family's hand-picked attacks in one variable.
type FamilyCheck struct {
	Family string `json:"family"`
	Target string `json:"target"`
	// Own is set when an excluded rule is of this family: one attack let
	// through is then enough to refuse.
	Own     bool     `json:"own,omitempty"`
	Checked int      `json:"checked"`
	Blocked int      `json:"blocked"`
	Opened  []string `json:"opened,omitempty"`
}

func (c FamilyCheck) String() string {
	return fmt.Sprintf("%s in %s: %d hand-picked attack(s) checked, %d stay blocked, %d let through", c.Family, c.Target, c.Checked, c.Blocked, len(c.Opened))
}

// Opened lists every attack the baseline blocks and the candidate lets
// through but Inherent's, rules' payloads first.
func (p Proof) Opened() []string {
	var out []string
	for _, c := range p.Rules {
		out = append(out, c.Opened...)
	}
	for _, c := range p.Families {
		out = append(out, c.Opened...)
	}
	return out
}

// Inherent lists the rules' payloads let through as the requests are
// (RuleCheck.Inherent).
func (p Proof) Inherent() []string {
	var out []string
	for _, c := range p.Rules {
		out = append(out, c.Inherent...)
	}
	return out
}

// Summary is one line per rule and family checked, for the candidate's
// comment and tune's output.
func (p Proof) Summary() []string {
	var out []string
	for _, c := range p.Rules {
		out = append(out, c.String())
	}
	for _, c := range p.Families {
		if c.Checked > 0 {
			out = append(out, c.String())
		}
	}
	return out
}

// Prove sends, in every variable rms exclude, the removed rules' own CRS
// regression-test payloads and the families' hand-picked attacks, each
// through base and cand; pass are the requests the exclusion is for, the
// first that has a value in a variable carries the attacks in it; where
// names the path in the cases' names. It measures and does not judge:
// Refusal says whether what it found refuses the exclusion. cand may be
// any ruleset, tune's candidate or one written by hand.
func Prove(ctx context.Context, base, cand *ruleset.Ruleset, pass []gates.Case, rms []Removal, where string) (Proof, error) {
	var p Proof
	// A payload goes into the cases once, whichever rule's tests or
	// family brought it.
	written := map[string]bool{}
	write := func(c gates.Case, payload string) bool {
		k := c.Method + " " + c.Path + "\x00" + c.Body + "\x00" + payload
		if written[k] {
			return false
		}
		written[k] = true
		p.MustBlock = append(p.MustBlock, c)
		return true
	}
	targets, own, fams := familiesOf(rms)
	needed, err := trips(ctx, base, pass)
	if err != nil {
		return Proof{}, err
	}
	for _, target := range targets {
		// The request that carries the target: the first one may not.
		carrier, ok := gates.Case{}, false
		for _, c := range pass {
			if _, ok = inject(c, target, "x"); ok {
				carrier = c
				break
			}
		}
		if !ok {
			return Proof{}, fmt.Errorf("%w: no request has a value in %s that an attack can be sent in, so the exclusion of %s from it cannot be tested; tune such requests apart, or write the exclusion by hand",
				ErrRefused, target, rulesOf(rms, target))
		}
		for _, rm := range rms {
			if rm.Target != target {
				continue
			}
			probes, tests, err := sampleCRS(ctx, base, carrier, rm.Rule, target, where)
			if err != nil {
				return Proof{}, fmt.Errorf("rule %d in %s: %w", rm.Rule, target, err)
			}
			rc := RuleCheck{Rule: rm.Rule, Target: target, Tests: tests, Checked: len(probes)}
			var kept, thin []probe
			for _, pr := range probes {
				v, err := judge(ctx, cand, pr.c)
				if err != nil {
					return Proof{}, err
				}
				switch {
				case !v.Blocked && inherent(pr.caughtBy, rms, target, needed[strings.ToLower(target)]):
					rc.Inherent = append(rc.Inherent, pr.c.Name)
				case !v.Blocked:
					rc.Opened = append(rc.Opened, pr.c.Name)
				case detections(v) == 1:
					rc.Blocked++
					rc.Thin++
					thin = append(thin, pr)
				default:
					rc.Blocked++
					kept = append(kept, pr)
				}
			}
			// The cases file keeps a representative few: the ones held by
			// a single rule first, since a later change to that rule opens
			// them, then the rest in test order. The check used them all.
			n := 0
			for _, pr := range slices.Concat(thin, kept) {
				if n < maxCasesPerRule && write(pr.c, pr.payload) {
					n++
				}
			}
			p.Rules = append(p.Rules, rc)
			switch {
			case tests == 0:
				p.Notes = append(p.Notes, fmt.Sprintf("rule %d has no CRS regression tests: its removal from %s is checked with the families' attacks only", rm.Rule, target))
			case rc.Checked == 0:
				p.Notes = append(p.Notes, fmt.Sprintf("none of rule %d's CRS test payloads (%d tests) is caught by it in %s: its removal from %s is checked with the families' attacks only", rm.Rule, tests, target, target))
			}
		}
		for _, fam := range fams[target] {
			fc := FamilyCheck{Family: fam.name, Target: target, Own: own[target][fam.name]}
			for _, payload := range fam.attacks {
				if !sendable(target, payload) {
					continue
				}
				c, _ := inject(carrier, target, payload)
				c.Name = fmt.Sprintf("%s in %s on %s: %s", fam.name, target, where, clip(payload))
				v, err := judge(ctx, base, c)
				if err != nil {
					return Proof{}, err
				}
				if !v.Blocked {
					continue // the baseline lets it through too: no test of the change
				}
				fc.Checked++
				if v, err = judge(ctx, cand, c); err != nil {
					return Proof{}, err
				}
				if !v.Blocked {
					fc.Opened = append(fc.Opened, c.Name)
					continue
				}
				fc.Blocked++
				write(c, payload)
			}
			if fc.Checked == 0 {
				p.Notes = append(p.Notes, fmt.Sprintf("no %s attack in %s is blocked by the baseline either: no must_block case for it", fam.name, target))
			}
			p.Families = append(p.Families, fc)
		}
	}
	return p, nil
}

// trips lists, per variable (lower-cased), the rules that match it in
// the requests at the baseline: what an exclusion for them needs removed.
func trips(ctx context.Context, base *ruleset.Ruleset, pass []gates.Case) (map[string][]int, error) {
	out := map[string][]int{}
	for _, c := range pass {
		v, err := judge(ctx, base, c)
		if err != nil {
			return nil, err
		}
		for _, m := range v.Rules {
			for _, t := range m.Targets {
				k := strings.ToLower(t)
				if !slices.Contains(out[k], m.ID) {
					out[k] = append(out[k], m.ID)
				}
			}
		}
	}
	return out, nil
}

// inherent reports whether a payload the candidate lets through was
// caught in target, at the baseline, only by removed rules that the
// requests trip there too (needed), or by rules still in force (which no
// longer block it alone): then any exclusion that lets the requests
// through lets it through. One removed rule the requests do not need
// that caught it makes it the exclusion's doing.
func inherent(caughtBy []int, rms []Removal, target string, needed []int) bool {
	for _, id := range caughtBy {
		removed := slices.ContainsFunc(rms, func(rm Removal) bool { return rm.Rule == id && strings.EqualFold(rm.Target, target) })
		if removed && !slices.Contains(needed, id) {
			return false
		}
	}
	return true
}

// detections counts the rules that matched v and detect something: the
// anomaly evaluation is not one.
func detections(v verdict.Verdict) int {
	n := 0
	for _, m := range v.Rules {
		if !evaluation(m.ID) {
			n++
		}
	}
	return n
}

// Refusal is nil when what p found lets the exclusion be written, and
// otherwise an ErrRefused that lists, per variable, the attacks let
// through. Any of a removed rule's own CRS payloads, or of the hand-picked
// attacks of a removed rule's family, refuses it unless acceptOpened; a
// family every checked attack of which gets through refuses it always:
// the variable would be open to that family. Attacks of another family
// let through while others of it stay blocked are only listed (Opened).
func (p Proof) Refusal(rms []Removal, acceptOpened bool) error {
	var targets []string
	for _, c := range p.Rules {
		if !slices.Contains(targets, c.Target) {
			targets = append(targets, c.Target)
		}
	}
	for _, c := range p.Families {
		if !slices.Contains(targets, c.Target) {
			targets = append(targets, c.Target)
		}
	}
	var lines []string
	hardAll := false
	for _, target := range targets {
		var hard, soft []string
		for _, c := range p.Rules {
			if c.Target == target && len(c.Opened) > 0 {
				soft = append(soft, fmt.Sprintf("rule %d's own CRS test payloads, %d of the %d checked:", c.Rule, len(c.Opened), c.Checked))
				soft = append(soft, indent(c.Opened)...)
			}
		}
		for _, c := range p.Families {
			switch {
			case c.Target != target || len(c.Opened) == 0:
			case c.Blocked == 0 && c.Own:
				hard = append(hard, fmt.Sprintf("every %s attack checked (%d): the variable would be open to it:", c.Family, c.Checked))
				hard = append(hard, indent(c.Opened)...)
			case c.Blocked == 0:
				hard = append(hard, fmt.Sprintf("every %s attack checked (%d), a family none of the excluded rules is of: the variable would be open to it:", c.Family, c.Checked))
				hard = append(hard, indent(c.Opened)...)
			case c.Own:
				soft = append(soft, fmt.Sprintf("%s, the excluded rules' family, %d of the %d hand-picked attacks checked:", c.Family, len(c.Opened), c.Checked))
				soft = append(soft, indent(c.Opened)...)
			}
		}
		if len(hard) == 0 && (len(soft) == 0 || acceptOpened) {
			continue
		}
		hardAll = hardAll || len(hard) > 0
		lines = append(lines, fmt.Sprintf("excluding %s from %s lets through what the baseline blocks:", rulesOf(rms, target), target))
		for _, f := range slices.Concat(hard, soft) {
			lines = append(lines, "  "+f)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	msg := strings.Join(lines, "\n")
	if !hardAll {
		msg += "\ngive --accept-opened to write it anyway"
	}
	return fmt.Errorf("%w: %s", ErrRefused, msg)
}

func indent(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "  " + n
	}
	return out
}

// familiesOf lists the excluded targets in order and, for each, the
// families of the rules that lose it (own) and every family to try: those,
// then SQL injection and XSS.
func familiesOf(rms []Removal) (targets []string, own map[string]map[string]bool, fams map[string][]family) {
	own, fams = map[string]map[string]bool{}, map[string][]family{}
	for _, rm := range rms {
		if _, ok := own[rm.Target]; !ok {
			targets = append(targets, rm.Target)
			own[rm.Target] = map[string]bool{}
		}
		if f, ok := families[rm.Rule/1000]; ok {
			own[rm.Target][f.name] = true
		}
		for _, f := range familiesFor(rm.Rule) {
			if !slices.ContainsFunc(fams[rm.Target], func(g family) bool { return g.name == f.name }) {
				fams[rm.Target] = append(fams[rm.Target], f)
			}
		}
	}
	return targets, own, fams
}
