package router

import (
	"errors"
	"fmt"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Snapshot is the complete routing state: both compiled rulesets, the
// candidate's share and the shadow sample. It is immutable once installed;
// a change is a new Snapshot swapped in whole, so no request sees half of it.
type Snapshot struct {
	Baseline *ruleset.Ruleset
	// Candidate is nil when no rollout is under way.
	Candidate *ruleset.Ruleset
	// Share is the candidate's share of sticky keys.
	Share Share
	// ShadowSample is the fraction of requests also evaluated by the
	// ruleset that did not enforce on them.
	ShadowSample Share
	// Hosts, when set, are the only hosts the candidate judges, enforcing
	// or in shadow; the baseline serves every other host.
	Hosts *Hosts

	// diff is how Candidate differs from Baseline, set by Router.Swap.
	diff *difference
}

// difference is a ruleset.Difference and the pair it was computed for.
type difference struct {
	baseline, candidate *ruleset.Ruleset
	*ruleset.Difference
}

// agrees reports whether the arm that did not enforce is certain to reach
// the enforcing arm's verdict, given the rules that matched on the
// enforcing side.
func (s *Snapshot) agrees(enforcing verdict.Arm, matched []types.MatchedRule) bool {
	if s.diff == nil {
		return false
	}
	if enforcing == verdict.Baseline {
		return s.diff.CandidateAgrees(matched)
	}
	return s.diff.BaselineAgrees(matched)
}

// Same reports whether s and o serve alike: the same rulesets, shares and
// hosts.
func (s *Snapshot) Same(o *Snapshot) bool {
	return s.Baseline == o.Baseline && s.Candidate == o.Candidate && s.Share == o.Share &&
		s.ShadowSample == o.ShadowSample && s.Hosts.Equal(o.Hosts)
}

// arm is the assignment rule with the host list, the one place both are
// applied: a bucket below the share is the candidate's (armOf), on a host
// the candidate judges; on any other host the baseline serves, outside
// the rollout. A snapshot's share is above zero only with a candidate
// (Validate).
func (s *Snapshot) arm(bucket Share, host string) (arm verdict.Arm, outside bool) {
	if s.Candidate != nil && !s.judges(host) {
		return verdict.Baseline, true
	}
	return armOf(bucket, s.Share), false
}

// judges reports whether the candidate may judge a request for host.
func (s *Snapshot) judges(host string) bool { return s.Candidate != nil && s.Hosts.Judges(host) }

// Validate checks the snapshot can serve.
func (s *Snapshot) Validate() error {
	switch {
	case s == nil || s.Baseline == nil:
		return errors.New("snapshot has no baseline ruleset")
	case s.Share > MaxShare:
		return fmt.Errorf("candidate share %d exceeds %d", s.Share, MaxShare)
	case s.ShadowSample > MaxShare:
		return fmt.Errorf("shadow sample %d exceeds %d", s.ShadowSample, MaxShare)
	case s.Candidate == nil && s.Share > 0:
		return errors.New("candidate share above zero without a candidate ruleset")
	case s.Baseline.Closed() || (s.Candidate != nil && s.Candidate.Closed()):
		return errors.New("snapshot refers to a closed ruleset")
	}
	return nil
}

// Ruleset returns the ruleset of arm, nil for a missing candidate.
func (s *Snapshot) Ruleset(a verdict.Arm) *ruleset.Ruleset {
	if a == verdict.Candidate {
		return s.Candidate
	}
	return s.Baseline
}

// Serving describes what the snapshot serves, for observers.
func (s *Snapshot) Serving() verdict.Serving {
	return verdict.Serving{Baseline: s.Baseline, Candidate: s.Candidate,
		CandidateShare: s.Share.Ratio(), ShadowShare: s.ShadowSample.Ratio(), Hosts: s.Hosts.List()}
}

// WithShare returns a copy with the candidate share replaced.
func (s *Snapshot) WithShare(share Share) *Snapshot {
	c := *s
	c.Share = share
	return &c
}

// retiredBy lists the rulesets of s that next no longer uses.
func (s *Snapshot) retiredBy(next *Snapshot) []*ruleset.Ruleset {
	if s == nil {
		return nil
	}
	var out []*ruleset.Ruleset
	for _, rs := range []*ruleset.Ruleset{s.Baseline, s.Candidate} {
		if rs != nil && rs != next.Baseline && rs != next.Candidate {
			out = append(out, rs)
		}
	}
	return out
}
