package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// recentBlocks remembers the verdicts of the last blocked requests, with
// no request content, so that explain works with capture off.
type recentBlocks struct {
	mu    sync.Mutex
	max   int
	order []string
	byID  map[string]admin.Explanation
}

func newRecentBlocks(max int) *recentBlocks {
	return &recentBlocks{max: max, byID: map[string]admin.Explanation{}}
}

// BlockBody implements router.BlockObserver: verdicts only, no body.
func (r *recentBlocks) BlockBody() int { return 0 }

// ObserveBlock implements router.BlockObserver.
func (r *recentBlocks) ObserveBlock(b verdict.Block) {
	q := b.Request
	path, _, _ := strings.Cut(q.URI, "?")
	e := admin.Explanation{
		ID: q.ID, Time: b.Time.UTC(), Arm: b.Record.Arm.String(), Version: b.Version,
		Method: q.Method, Host: q.Host, Path: path, ClientIP: q.ClientIP, Status: b.Record.Status, Shadow: b.Shadow,
		InterruptedBy: b.Record.Verdict.RuleID, Score: b.Record.Verdict.InboundScore,
	}
	for _, m := range b.Record.Verdict.Rules {
		e.Rules = append(e.Rules, admin.ExplainedRule{ID: m.ID, Message: m.Message, Targets: m.Targets, Omitted: m.Omitted})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[q.ID]; !ok {
		r.order = append(r.order, q.ID)
	}
	r.byID[q.ID] = e
	for len(r.order) > r.max {
		delete(r.byID, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recentBlocks) get(id string) (admin.Explanation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[id]
	e.Rules = slices.Clone(e.Rules) // Explain annotates its copy
	return e, ok
}

// Explain implements admin.Explainer: the verdict of a recent block, its
// capture if kept, its signature's counts and signals, and what the
// ruleset that judged it says of each rule (while that ruleset still
// serves). id is a request ID, or a signature (sig:...): then the newest
// capture of it answers, and Chosen says so.
func (s *Node) Explain(id string) (admin.Explanation, error) {
	if strings.HasPrefix(id, "sig:") {
		return s.explainSignature(id)
	}
	e, known := s.blocks.get(id)
	if s.capture != nil {
		rec, err := s.capture.Get(id)
		switch {
		case err == nil:
			if !known {
				e = explanationOf(rec)
				known = true
			}
			e.Capture = &rec
		case !errors.Is(err, capture.ErrNotFound):
			return admin.Explanation{}, err
		}
		if sum, ok := s.capture.SignatureOfRequest(id); ok {
			if !known {
				// Neither in memory nor kept: its signature had its
				// captures, and a flood of blocks since pushed its
				// verdict out of memory.
				return admin.Explanation{}, fmt.Errorf("request %q: blocked, but neither kept nor remembered: its signature %s had its %d captures already (%d blocks of it, last at %s); wafcanary explain %s shows the newest, and wafcanary tune %s uses them: %w",
					id, sum.Sig, len(sum.Captures), sum.Count, sum.Last.Format(time.RFC3339), sum.Sig, sum.Sig, admin.ErrNotFound)
			}
			e.Group = &sum
		}
	}
	if !known {
		// A request an exception let through: not a block, so neither in
		// the blocks' memory nor captured (tune would write the exception
		// again from it).
		if sg, ok := s.exceptions.Sighting(id); ok {
			e, known = explainSighting(sg), true
		}
	}
	if !known {
		hint := "the last 1,000 blocks are kept in memory"
		if s.capture == nil {
			hint += "; turn capture.enabled on to keep them across restarts, with the requests"
		} else {
			hint += ", and the first captures of each signature: wafcanary blocks lists them"
		}
		return admin.Explanation{}, fmt.Errorf("request %q: no blocked request with that ID (%s): %w", id, hint, admin.ErrNotFound)
	}
	return s.annotated(e), nil
}

// explainSignature explains the newest capture of the signature ref.
func (s *Node) explainSignature(ref string) (admin.Explanation, error) {
	if s.capture == nil {
		return admin.Explanation{}, errCaptureOff
	}
	sum, err := s.capture.Signature(ref)
	if err != nil {
		return admin.Explanation{}, signatureError(err)
	}
	for i := len(sum.Captures) - 1; i >= 0; i-- {
		rec, err := s.capture.Get(sum.Captures[i].ID)
		if errors.Is(err, capture.ErrNotFound) {
			continue // evicted meanwhile
		}
		if err != nil {
			return admin.Explanation{}, err
		}
		e := explanationOf(rec)
		e.Capture, e.Group = &rec, &sum
		e.Chosen = fmt.Sprintf("%s: request %s, the newest of its %d captures (blocked %d times since %s)", sum.Sig, rec.ID, len(sum.Captures), sum.Count, sum.First.Format(time.RFC3339))
		return s.annotated(e), nil
	}
	return admin.Explanation{}, fmt.Errorf("%s: %d blocks, no capture left (past capture.max_age, or not written: wafcanary_captures_not_written_total says why): %w", sum.Sig, sum.Count, admin.ErrNotFound)
}

// annotated adds to e's rules what the ruleset that judged it says of
// them, while that ruleset serves.
func (s *Node) annotated(e admin.Explanation) admin.Explanation {
	snap := s.router.Snapshot()
	for _, rs := range []*ruleset.Ruleset{snap.Baseline, snap.Candidate} {
		if rs == nil || rs.Version != e.Version {
			continue
		}
		for i := range e.Rules {
			if r, ok := rs.Rule(e.Rules[i].ID); ok {
				e.Rules[i].Tags, e.Rules[i].Paranoia, e.Rules[i].File, e.Rules[i].Line = r.Tags, r.Paranoia, r.File, r.Line
			}
		}
	}
	return e
}

// explanationOf rebuilds a block's explanation from its capture, after a
// restart emptied the memory.
func explanationOf(rec capture.Record) admin.Explanation {
	path, _, _ := strings.Cut(rec.URI, "?")
	e := admin.Explanation{ID: rec.ID, Time: rec.Time, Arm: rec.Arm, Version: rec.Version, Method: rec.Method,
		Host: rec.Host, Path: path, ClientIP: rec.ClientIP, Status: rec.Status, Shadow: rec.Shadow,
		InterruptedBy: rec.Verdict.RuleID, Score: rec.Verdict.InboundScore}
	for _, m := range rec.Verdict.Rules {
		e.Rules = append(e.Rules, admin.ExplainedRule{ID: m.ID, Message: m.Message, Targets: m.Targets, Omitted: m.Omitted})
	}
	return e
}

// Ruleset implements admin.Rulesets: a version in service from the
// router's snapshot, else a bundle the store keeps (the baselines undo can
// return to, and the last rollout's candidate).
func (s *Node) Ruleset(ctx context.Context, version string) (ruleset.Bundle, error) {
	snap := s.router.Snapshot()
	for _, rs := range []*ruleset.Ruleset{snap.Baseline, snap.Candidate} {
		if rs != nil && rs.Version == version {
			return rs.Bundle()
		}
	}
	st := s.rollout.State()
	kept := st.Candidate != nil && st.Candidate.Version == version ||
		slices.ContainsFunc(st.Baselines, func(b rollout.RulesetRef) bool { return b.Version == version })
	if !kept {
		return ruleset.Bundle{}, fmt.Errorf("ruleset %s is not kept here: the baselines (wafcanary history) and the last rollout's candidate are: %w", version, admin.ErrNotFound)
	}
	rs, err := s.store.LoadRuleset(ctx, version)
	if err != nil {
		return ruleset.Bundle{}, err
	}
	defer rs.Retire()
	return rs.Bundle()
}

// ServedBaseline implements admin.Rulesets: the bundle of the baseline in
// service, from which `wafcanary tune` writes a candidate.
func (s *Node) ServedBaseline() (ruleset.Bundle, error) {
	snap := s.router.Snapshot()
	if snap.Baseline == nil {
		return ruleset.Bundle{}, errors.New("no baseline in service")
	}
	return snap.Baseline.Bundle()
}
