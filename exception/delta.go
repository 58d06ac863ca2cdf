package exception

import (
	"fmt"
	"strings"
)

// Delta is what a change of baseline did to the exceptions: those only
// the new one has (Added), only the old one (Removed), and those both have
// under one ID with other text, metadata aside (Altered, as the new one
// has it). A renewal changes only metadata: it is none of these.
type Delta struct {
	Added   []Exception `json:"added"`
	Removed []Exception `json:"removed"`
	Altered []Exception `json:"altered"`
}

// Diff compares the exceptions of an old baseline with a new one's
// (List of each).
func Diff(from, to []Exception) Delta {
	c := Delta{Added: []Exception{}, Removed: []Exception{}, Altered: []Exception{}}
	old := make(map[string]Exception, len(from))
	for _, e := range from {
		old[e.ID] = e
	}
	seen := map[string]bool{}
	for _, e := range to {
		seen[e.ID] = true
		switch o, ok := old[e.ID]; {
		case !ok:
			c.Added = append(c.Added, e)
		case o.text != e.text:
			c.Altered = append(c.Altered, e)
		}
	}
	for _, e := range from {
		if !seen[e.ID] {
			c.Removed = append(c.Removed, e)
		}
	}
	return c
}

// Empty reports whether no exception was added, removed or altered.
func (c Delta) Empty() bool { return len(c.Added)+len(c.Removed)+len(c.Altered) == 0 }

// Summary says an exception in one line, for a changelog: its ID, what
// it removes (rules, targets) and where (its conditions).
func (e Exception) Summary() string {
	s := e.ID + ": " + strings.Join(e.Kinds, ", ") + " " + strings.Join(e.Rules, ", ")
	if len(e.Targets) > 0 {
		s += " on " + strings.Join(e.Targets, ", ")
	}
	if len(e.Conditions) > 0 {
		s += " when " + e.When()
	} else {
		s += " on every request"
	}
	return fmt.Sprintf("%s (%s)", s, e.Where())
}

// When says on which requests the exception acts: its conditions joined
// with "and", or "every request" for one without (a directive).
func (e Exception) When() string {
	if len(e.Conditions) == 0 {
		return "every request"
	}
	cs := make([]string, len(e.Conditions))
	for i, c := range e.Conditions {
		cs[i] = c.String()
	}
	return strings.Join(cs, " and ")
}
