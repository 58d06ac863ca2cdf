package main

import (
	"context"
	"strings"
	"testing"
)

// The rollout verbs as an operator types them against a live node:
// promote, then rollback (refused, exit 4, naming undo), undo (the old
// baseline back), history (the undo, and the versions kept).
func TestUndoCommands(t *testing.T) {
	clearEnv(t)
	tn := startNode(t, quietLogger(), nil)
	n, adm := tn.n, tn.admin
	original := n.Status().Baseline.Version

	run := func(args ...string) (string, error) {
		out, _, err := runRoot(t, context.Background(), append(args, "--admin", adm)...)
		return out, err
	}
	if out, err := run("start", "--candidate", "embedded:candidate-exclusion.conf", "--reason", "TICKET-123"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if out, err := run("promote", "--full", "--reason", "looks good"); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	promoted := n.Status().Baseline.Version

	out, err := run("rollback", "--reason", "FP is back")
	if exitCode(err) != exitConflict || !strings.Contains(err.Error(), "use `wafcanary undo`") || strings.Contains(out, "rolled back") {
		t.Fatalf("rollback after promotion: exit %d, %v\n%s", exitCode(err), err, out)
	}
	if _, err := run("undo"); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--reason is required") {
		t.Fatalf("undo without a reason: exit %d, %v", exitCode(err), err)
	}
	out, err = run("undo", "--reason", "TICKET-123 was the wrong fix")
	if err != nil || !strings.Contains(out, "undone: baseline "+original+" judges every request from now on") {
		t.Fatalf("undo: %v\n%s", err, out)
	}
	// Run twice (a retry, a second operator), undo succeeds and changes
	// nothing: it does not undo the undo.
	out, err = run("undo", "--reason", "TICKET-123 was the wrong fix")
	if err != nil || !strings.Contains(out, "nothing to undo: baseline "+original+" serves again since ") || strings.Contains(out, "undone:") {
		t.Fatalf("undo again: %v\n%s", err, out)
	}
	if v := n.Status().Baseline.Version; v != original {
		t.Fatalf("after a second undo the baseline is %s, want %s", v, original)
	}
	if _, err := run("undo", "--reason", "again", "--to", "ffffffff"); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "not among the baselines kept") {
		t.Fatalf("undo to a version never kept: exit %d, %v", exitCode(err), err)
	}
	out, err = run("history")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"undo      idle        by ",
		"baseline " + original + "  TICKET-123 was the wrong fix (baseline " + promoted + " -> " + original + ")",
		"baselines kept (wafcanary undo --to VERSION), oldest first:",
		"  " + promoted + "  embedded:candidate-exclusion.conf since ",
		"  " + original + "  embedded:baseline.conf since ",
		"(serving)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, promoted+"  embedded"), strings.Index(out, original+"  embedded"); i < 0 || j < i {
		t.Errorf("history lists the kept baselines out of order:\n%s", out)
	}
}
