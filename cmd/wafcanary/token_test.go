package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/node"
)

// token new prints a fresh token and the admin.users line with its hash;
// the line, pasted into a configuration, lets the token in under its
// name and role; a bad name or role is a usage error naming the key.
func TestTokenNew(t *testing.T) {
	out, _, err := runRoot(t, context.Background(), "token", "new", "alice", "--role", "approver")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)token for alice .*\n\n  ([0-9a-f]{64})\n\n.*\n\n  - \{name: alice, role: approver, token_sha256: ([0-9a-f]{64})\}\n$`).FindStringSubmatch(out)
	if m == nil || admin.HashToken(m[1]) != m[2] {
		t.Fatalf("token new printed:\n%s", out)
	}
	if again, _, _ := runRoot(t, context.Background(), "token", "new", "alice"); strings.Contains(again, m[1]) || !strings.Contains(again, "role: operator") {
		t.Errorf("a second token is the first, or the default role is not operator:\n%s", again)
	}
	for _, tc := range []struct{ args, want string }{
		{"token new alice --role root", `admin.users[0].role: want viewer, operator, approver or admin, got "root"`},
		{"token new bob/smith", `admin.users[0].name: want letters, digits`},
	} {
		if _, _, err := runRoot(t, context.Background(), strings.Fields(tc.args)...); exitCode(err) != exitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: exit %d, %v; want a usage error with %q", tc.args, exitCode(err), err, tc.want)
		}
	}

	clearEnv(t)
	tn := startNode(t, quietLogger(), func(c *node.Config) {
		c.Admin.Users = []admin.User{{Name: "alice", Role: admin.Approver, TokenSHA256: m[2]}}
	})
	t.Setenv("WAFCANARY_ADMIN_TOKEN", m[1])
	if out, _, err := runRoot(t, context.Background(), "status", "-o", "json", "--admin", tn.admin); err != nil || !strings.Contains(out, `"state"`) {
		t.Errorf("status with the new token: %v\n%s", err, out)
	}
}

// Through the CLI: carol, a viewer, is refused a start with the exit code
// of a refused credential and her role named; alice starts with a ticket,
// and status and history say who started, under which ticket, and who
// may approve; the actor the CLI sends ($USER) is kept beside the
// identity only.
func TestCLIPeople(t *testing.T) {
	clearEnv(t)
	tokens := map[string]string{"alice": "alice-cli-token-0123456789", "bob": "bob-cli-token-0123456789", "carol": "carol-cli-token-0123456789"}
	tn := startNode(t, quietLogger(), func(c *node.Config) {
		c.Admin.Token = ""
		for name, role := range map[string]admin.Role{"alice": admin.Operator, "bob": admin.Approver, "carol": admin.Viewer} {
			c.Admin.Users = append(c.Admin.Users, admin.User{Name: name, Role: role, TokenSHA256: admin.HashToken(tokens[name])})
		}
	})
	t.Setenv("USER", "someone-else")
	run := func(who string, args ...string) (string, error) {
		t.Helper()
		t.Setenv("WAFCANARY_ADMIN_TOKEN", tokens[who])
		out, _, err := runRoot(t, context.Background(), append(args, "--admin", tn.admin)...)
		return out, err
	}
	start := []string{"start", "--candidate", "embedded:candidate-exclusion.conf", "--reason", "930120 FP", "--ticket", "CHG-42"}
	if _, err := run("carol", start...); exitCode(err) != exitUnauthorized || !strings.Contains(err.Error(), "carol (role viewer) may not POST /api/v1/rollout/start: it needs the operator role") {
		t.Fatalf("carol's start: exit %d, %v", exitCode(err), err)
	}
	if _, err := run("alice", start...); err != nil {
		t.Fatal(err)
	}
	out, err := run("carol", "status")
	if err != nil || !strings.Contains(out, "people      started by alice, ticket CHG-42\n") || !strings.Contains(out, "approvers   bob; four-eyes distinct: not alice") {
		t.Errorf("status: %v\n%s", err, out)
	}
	if _, err := run("alice", "promote", "--reason", "mine"); exitCode(err) != exitUnauthorized || !strings.Contains(err.Error(), "needs the approver role") {
		t.Errorf("alice's promote: exit %d, %v", exitCode(err), err)
	}
	if _, err := run("bob", "promote", "--reason", "checked", "--ticket", "CHG-42"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("alice", "rollback", "--reason", "pager"); err != nil {
		t.Fatal(err)
	}
	out, err = run("carol", "history")
	for _, want := range []string{"by alice (sent as someone-else)", "ticket CHG-42", "by bob (sent as someone-else)"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("history lacks %q: %v\n%s", want, err, out)
		}
	}
	// bob's promote put the candidate before clients: its rollback is a
	// change that reached production.
	out, err = run("carol", "changelog")
	for _, want := range []string{": rollback of ", "- **Proposed by** alice: 930120 FP ", "- **Approved by** bob\n", "- **Rolled back by** alice: pager\n", "- **Ticket** CHG-42\n"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("changelog lacks %q: %v\n%s", want, err, out)
		}
	}
	if out, err := run("carol", "changelog", "-o", "json", "--since", "1h"); err != nil || !strings.Contains(out, `"approved_by": [`) {
		t.Errorf("changelog -o json: %v\n%s", err, out)
	}
	if _, err := run("carol", "changelog", "--since", "last tuesday"); exitCode(err) != exitUsage {
		t.Errorf("--since last tuesday: exit %d, %v", exitCode(err), err)
	}
}
