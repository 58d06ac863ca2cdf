package suite

import "slices"

// Change is a case whose outcome differs between two reports.
type Change struct {
	Case   string `json:"case"`
	RuleID int    `json:"rule_id"`
	// Before and After are "pass" or "fail".
	Before string `json:"before"`
	After  string `json:"after"`
	// Why is the failing side's reason.
	Why string `json:"why"`
	// Lost are rules that fired before and not after; Gained the reverse.
	Lost   []int `json:"lost,omitempty"`
	Gained []int `json:"gained,omitempty"`
}

// Regression reports whether the case passed before and fails after.
func (c Change) Regression() bool { return c.Before == "pass" && c.After == "fail" }

// Diff lists the cases whose outcome differs between before and after,
// which must come from one Run. Left-out cases are not compared: their
// expectations cannot hold on either side.
func Diff(before, after Report) []Change {
	var out []Change
	for i, b := range before.Results {
		a := after.Results[i]
		if b.Ignored != "" || b.Pass == a.Pass {
			continue
		}
		c := Change{Case: b.Case, RuleID: b.RuleID, Before: outcome(b.Pass), After: outcome(a.Pass),
			Lost: minus(b.Fired, a.Fired), Gained: minus(a.Fired, b.Fired)}
		c.Why = a.Why
		if a.Pass {
			c.Why = b.Why
		}
		out = append(out, c)
	}
	return out
}

func outcome(pass bool) string {
	if pass {
		return "pass"
	}
	return "fail"
}

// minus returns the IDs in a and not in b; both are sorted.
func minus(a, b []int) []int {
	var out []int
	for _, id := range a {
		if _, found := slices.BinarySearch(b, id); !found {
			out = append(out, id)
		}
	}
	return out
}
