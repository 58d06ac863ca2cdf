package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/rollout"
)

// A promotion reads, pasted into a ticket, as who proposed, approved and
// promoted it, under which ticket, on what evidence and how to back it
// out; what a client or operator wrote cannot add markup or lines.
func TestChangelogMarkdown(t *testing.T) {
	c := rollout.Change{Time: time.Date(2026, 12, 7, 12, 5, 0, 0, time.UTC), Kind: rollout.ActionPromote,
		From: "4e203c2cee89a461", To: "0cafb7d11ed3b20e", Candidate: "0cafb7d11ed3b20e",
		ProposedBy: "alice", Rationale: "930120 FP on *support* tickets\n<!channel>", ApprovedBy: []string{"bob"},
		By: "bob", Reason: "checked", Tickets: []string{"CHG-42"}, BackOut: "4e203c2cee89a461",
		Impact: &rollout.Analysis{Status: rollout.Pass, Outcomes: []rollout.Outcome{
			{Check: "new_blocks", Status: rollout.Pass, Reason: "new blocks outside scope: 0 of 18204 paired requests"},
			{Check: "lost_blocks", Status: rollout.Pass, Reason: "lost blocks in scope: 12", Rules: []evidence.RuleCount{{ID: 930120, Count: 12}}},
		}}}
	var b strings.Builder
	if err := printChangelog(&b, []rollout.Change{c}, "markdown"); err != nil {
		t.Fatal(err)
	}
	want := `## 2026-12-07 12:05 UTC: promotion of 0cafb7d11ed3 (baseline was 4e203c2cee89)

- **Proposed by** alice: 930120 FP on \*support\* tickets &lt;!channel&gt;
- **Approved by** bob
- **Promoted by** bob: checked
- **Ticket** CHG-42
- **Measured impact** (the last analysis before it: pass)
  - new_blocks pass: new blocks outside scope: 0 of 18204 paired requests
  - lost_blocks pass: lost blocks in scope: 12; rules 930120 (12)
- **Back-out** ` + "`wafcanary undo --to 4e203c2cee89a461`" + `
`
	if b.String() != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := printChangelog(&b, nil, "json"); err != nil || b.String() != "[]\n" {
		t.Errorf("no change as JSON: %q, %v", b.String(), err)
	}
}

// A promotion's changelog entry names the exceptions it added, with the
// rules and targets they take away and where, read from the two
// baselines the server keeps; an undo names them removed.
func TestChangelogNamesTheExceptions(t *testing.T) {
	clearEnv(t)
	tn := startNode(t, quietLogger(), nil)
	run := func(args ...string) string {
		t.Helper()
		out, _, err := runRoot(t, context.Background(), append(args, "--admin", tn.admin)...)
		if err != nil {
			t.Fatalf("%s: exit %d, %v\n%s", args[0], exitCode(err), err, out)
		}
		return out
	}
	run("start", "--candidate", "embedded:candidate-exclusion.conf", "--reason", "930120 FP")
	run("promote", "--full", "--reason", "checked")
	run("undo", "--reason", "not yet")
	out := run("changelog")
	added := regexp.MustCompile(`(?m)^  - added 10000: ctl:ruleRemoveTargetById 930120 on ARGS:message when REQUEST\\_FILENAME @streq /support/tickets \(candidate-exclusion\.conf:\d+\)$`)
	removed := regexp.MustCompile(`(?m)^  - removed 10000: ctl:ruleRemoveTargetById 930120 on ARGS:message when REQUEST\\_FILENAME`)
	if !added.MatchString(out) || !removed.MatchString(out) {
		t.Errorf("changelog:\n%s", out)
	}
	if js := run("changelog", "-o", "json"); !strings.Contains(js, `"exceptions": {`) || !strings.Contains(js, `"added": [`) {
		t.Errorf("changelog -o json:\n%s", js)
	}
}
