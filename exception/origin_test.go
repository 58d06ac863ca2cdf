package exception

import (
	"fmt"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
)

// directives reads text as a ruleset's main file, uncompiled.
func directives(text string) []ruleset.Directive {
	return (&ruleset.Ruleset{Files: []ruleset.File{{Name: "main.conf", Content: []byte(text)}}}).Directives()
}

// TestTrace names, for each exception, the earliest kept baseline that
// holds it and who brought it: for a promotion, the rollout's start;
// before the kept history when the oldest kept baseline has it already.
// Lines moved and metadata renewed do not make an exception new.
func TestTrace(t *testing.T) {
	const (
		old    = "SecRuleRemoveById 920100\n"
		ticket = `SecRule REQUEST_FILENAME "@streq /support/tickets" "id:10000,phase:1,pass,nolog,tag:'wafcanary/expires=%s',ctl:ruleRemoveTargetById=930120;ARGS:message"` + "\n"
		legacy = `SecRule REQUEST_HEADERS:Host "@streq legacy.example" "id:10001,phase:1,pass,nolog,ctl:ruleRemoveById=942100"` + "\n"
	)
	t0 := now.Add(-72 * time.Hour)
	ticketAt := func(date string) string { return fmt.Sprintf(ticket, date) }
	kept := []Kept{
		{Version: "v1", Since: t0, By: "reload", Directives: directives("SecRuleEngine On\n" + old)},
		{Version: "v2", Since: t0.Add(time.Hour), By: "promote", Directives: directives("SecRuleEngine On\n" + old + ticketAt("2026-06-01"))},
		// Served: lines moved, the ticket exception renewed, and legacy
		// added by a reload of an edited file.
		{Version: "v3", Since: t0.Add(2 * time.Hour), By: "reload", Directives: directives("SecRuleEngine On\n\n\n" + ticketAt("2026-09-01") + old + legacy)},
	}
	journal := []Change{
		{Time: t0, Actor: "startup", Action: "reload", Reason: "baseline v1", Baseline: "v1"},
		{Time: t0.Add(30 * time.Minute), Actor: "alice", Action: "start", Reason: "ticket FP, OPS-12", Baseline: "v1", Candidate: "v2"},
		{Time: t0.Add(40 * time.Minute), Actor: "controller", Action: "advance", Reason: "step 2", Baseline: "v1", Candidate: "v2"},
		{Time: t0.Add(time.Hour), Actor: "bob", Action: "promote", Reason: "looks fine", Baseline: "v2"},
		{Time: t0.Add(2 * time.Hour), Actor: "sighup", Action: "reload", Reason: "rulesets.baseline changed", Baseline: "v3"},
	}
	served := &ruleset.Ruleset{Files: []ruleset.File{{Name: "main.conf", Content: []byte("SecRuleEngine On\n\n\n" + ticketAt("2026-09-01") + old + legacy)}}}
	list := List(served, now)
	if len(list) != 3 {
		t.Fatalf("%d exceptions", len(list))
	}
	Trace(list, kept, journal)
	ticketOrigin, oldOrigin, legacyOrigin := list[0].Origin, list[1].Origin, list[2].Origin
	if o := ticketOrigin; o == nil || o.Baseline != "v2" || o.By != "promote" || o.Actor != "alice" || o.Reason != "ticket FP, OPS-12" ||
		!o.Time.Equal(t0.Add(30*time.Minute)) || o.PromotedBy != "bob" || o.BeforeHistory {
		t.Errorf("the ticket exception: %+v, want v2's rollout started by alice, promoted by bob", o)
	}
	if o := oldOrigin; o == nil || o.Baseline != "v1" || !o.BeforeHistory || o.Actor != "" {
		t.Errorf("the old exception: %+v, want before the kept history", o)
	}
	if o := legacyOrigin; o == nil || o.Baseline != "v3" || o.By != "reload" || o.Actor != "sighup" || o.PromotedBy != "" {
		t.Errorf("the legacy exception: %+v, want v3's reload", o)
	}

	// Not in any kept baseline (an offline file): no origin. An unreadable
	// bundle is passed over.
	list = List(served, now)
	Trace(list, []Kept{{Version: "v0"}, kept[0]}, journal)
	if list[0].Origin != nil || list[2].Origin != nil || list[1].Origin == nil || !list[1].Origin.BeforeHistory {
		t.Errorf("origins %+v %+v %+v", list[0].Origin, list[1].Origin, list[2].Origin)
	}
}
