package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/rollout"
)

// status says, for each check, which window of evidence it judged.
func TestStatusShowsEachChecksWindow(t *testing.T) {
	a := rollout.Analysis{Status: rollout.Inconclusive, Outcomes: []rollout.Outcome{
		{Check: "new_blocks", Status: rollout.Pass, Required: true, Window: rollout.RolloutWindow, Reason: "new blocks outside scope since the rollout started: 0 of 9000 paired requests"},
		{Check: "waf_time_p99", Status: rollout.Inconclusive, Required: true, Window: rollout.StepWindow, Reason: "WAF time p99 at this step: fewer than 200 samples on an arm"},
	}}
	st := admin.Status{State: "progressing", Step: 1, Steps: 3, CandidatePercent: 50,
		LastDecision: &rollout.Decision{Time: time.Now(), Action: "hold", Actor: "controller", Reason: a.Reason(), Analysis: &a}}
	var b strings.Builder
	if err := printStatus(&b, st, "text"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  * new_blocks       pass         rollout  new blocks outside scope since the rollout started",
		"  * waf_time_p99     inconclusive step     WAF time p99 at this step",
		"window: rollout = since the rollout started, step = since the step started",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

// Right after an advance, the new step has judged nothing yet: the
// advancing analysis counted the step before (issue 27, item 9).
func TestProgressCountsOnlyThisStep(t *testing.T) {
	began := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	st := admin.Status{State: "progressing", Step: 1, StepStarted: began, Now: began.Add(30 * time.Second),
		Plan:         []admin.StepPlan{{Percent: 0, MinRequests: 300}, {Percent: 50, MinDurationSeconds: 600, MinRequests: 5000}},
		LastDecision: &rollout.Decision{Time: began, Action: rollout.ActionAdvance, Judged: 300}}
	if got := progress(st); !strings.Contains(got, "step 2 of 2: 30s of 10m0s, 0 of 5000 requests") {
		t.Errorf("right after the advance: %q", got)
	}
	st.LastDecision = &rollout.Decision{Time: began.Add(15 * time.Second), Action: rollout.ActionHold, Judged: 120}
	if got := progress(st); !strings.Contains(got, "120 of 5000 requests") {
		t.Errorf("after an analysis at this step: %q", got)
	}
}

// --watch under -o json prints one JSON object a line, no terminal codes,
// and ends with the rollout; --wait gives up at --timeout with exit 9 and
// refuses to wait on no rollout.
func TestStatusFollow(t *testing.T) {
	clearEnv(t)
	tn := startNode(t, quietLogger(), nil)
	if _, _, err := runRoot(t, context.Background(), "status", "--wait", "--admin", tn.admin); exitCode(err) != exitConflict {
		t.Errorf("--wait with no rollout: exit %d, %v", exitCode(err), err)
	}
	if out, _, err := runRoot(t, context.Background(), "start", "--candidate", "embedded:candidate-exclusion.conf", "--reason", "follow", "--admin", tn.admin); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	start := time.Now()
	if _, _, err := runRoot(t, context.Background(), "status", "--wait", "--timeout", "400ms", "--interval", "100ms", "--admin", tn.admin); exitCode(err) != exitWaitTimeout || time.Since(start) > 5*time.Second {
		t.Errorf("--wait past --timeout: exit %d after %s, %v", exitCode(err), time.Since(start), err)
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := runRoot(t, context.Background(), "status", "--watch", "-o", "json", "--interval", "100ms", "--admin", tn.admin)
		done <- result{out, err}
	}()
	time.Sleep(350 * time.Millisecond)
	if _, _, err := runRoot(t, context.Background(), "rollback", "--reason", "enough", "--admin", tn.admin); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("--watch did not end with the rollout")
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if r.err != nil || len(lines) < 3 || strings.Contains(r.out, "\033") || !strings.Contains(lines[len(lines)-1], `"state":"rolled_back"`) {
		t.Fatalf("--watch -o json: %v, %d lines:\n%s", r.err, len(lines), r.out)
	}
	for _, l := range lines {
		var st map[string]any
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			t.Errorf("not a JSON line: %q", l)
		}
	}
}
