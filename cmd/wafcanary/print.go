package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/rollout"
)

// printJSON writes v as indented JSON when format is json, and reports
// text when the caller is to print text instead; any other format is a
// usage error. encoding/json escapes C0 controls but writes DEL, C1
// controls and bidirectional overrides as they are: those are escaped too
// (\u202e), so JSON piped to a terminal or a file shows every character
// from a request and stays the same JSON.
func printJSON(out io.Writer, format string, v any) (text bool, err error) {
	switch format {
	case "json":
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return false, err
		}
		_, err := io.WriteString(out, jsonVisible(b.String()))
		return false, err
	case "text":
		return true, nil
	}
	return false, errUsage{fmt.Errorf("--output: want text or json, got %q", format)}
}

// printHistory renders the journal, then the baselines undo can go back
// to, as text or JSON.
func printHistory(out io.Writer, entries []rollout.Entry, baselines []rollout.RulesetRef, format string) error {
	if text, err := printJSON(out, format, entries); !text {
		return err
	}
	for _, e := range entries {
		by := e.Actor
		if e.Claimed != "" {
			by += " (sent as " + visible(e.Claimed) + ")"
		}
		line := fmt.Sprintf("%s  %-9s %-11s by %-10s step %d at %g%%", e.Time.Local().Format("2006-01-02 15:04:05"), e.Action, e.State, by, e.Step+1, e.Percent)
		if e.Emergency {
			line += "  EMERGENCY"
		}
		if e.Ticket != "" {
			line += "  ticket " + visible(e.Ticket)
		}
		if e.Action == rollout.ActionUndo || e.Action == rollout.ActionReload || e.Action == rollout.ActionPromote {
			line += "  baseline " + e.Baseline
		}
		fmt.Fprintf(out, "%s  %s\n", line, e.Reason)
	}
	if len(baselines) > 0 {
		fmt.Fprintln(out, "\nbaselines kept (wafcanary undo --to VERSION), oldest first:")
		for i, b := range baselines {
			mark := ""
			if i == len(baselines)-1 {
				mark = "  (serving)"
			}
			since := ""
			if !b.Since.IsZero() {
				since = " since " + b.Since.Format(time.RFC3339)
			}
			fmt.Fprintf(out, "  %s  %s%s%s\n", b.Version, b.Path, since, mark)
		}
	}
	return nil
}

// printStatus renders a status document as text or JSON.
func printStatus(out io.Writer, st admin.Status, format string) error {
	if text, err := printJSON(out, format, st); !text {
		return err
	}
	fmt.Fprintf(out, "state       %s", st.State)
	if st.State == "shadow" || st.State == "progressing" || st.State == "paused" {
		fmt.Fprintf(out, " (step %d of %d)", st.Step+1, st.Steps)
	}
	fmt.Fprintf(out, "\nshare       candidate on %g%% of clients, shadow on %g%% of requests\n", st.CandidatePercent, st.ShadowSamplePercent)
	if p := progress(st); p != "" {
		fmt.Fprintf(out, "progress    %s\n", p)
	}
	if st.Awaiting && st.Step+1 < len(st.Plan) {
		fmt.Fprintf(out, "approval    step %d (%g%%) waits for `wafcanary promote`; the evidence says go on\n", st.Step+2, st.Plan[st.Step+1].Percent)
	}
	if st.StartedBy != "" && st.Candidate != nil {
		line := "started by " + visible(st.StartedBy)
		if st.Ticket != "" {
			line += ", ticket " + visible(st.Ticket)
		}
		fmt.Fprintf(out, "people      %s\n", line)
	}
	if st.FourEyes != "" {
		who := "approvers   " + strings.Join(st.Approvers, ", ")
		if len(st.Approvers) == 0 {
			who = "approvers   nobody named"
		}
		fmt.Fprintf(out, "%s; four-eyes %s\n", who, visible(st.FourEyes))
	}
	if st.Baseline != nil {
		fmt.Fprintf(out, "baseline    %s  %s%s\n", st.Baseline.Version, st.Baseline.Path, crsOf(st.Baseline))
	}
	if st.Candidate != nil {
		fmt.Fprintf(out, "candidate   %s  %s%s\n", st.Candidate.Version, st.Candidate.Path, crsOf(st.Candidate))
		if c := st.Composed; c != nil && c.Base != "" {
			fmt.Fprintf(out, "base        %s\n", visible(c.Base))
		}
		if sc := st.Scope; !sc.Empty() {
			from := ""
			if sc.Inferred {
				from = " (inferred from the candidate)"
			}
			fmt.Fprintf(out, "scope       a disagreement is expected when: %s%s\n", visible(sc.String()), from)
		}
		if st.Scope.Empty() && st.ScopeNote != "" {
			// Said at start, where the operator can still declare it,
			// and for the whole rollout: every lost block counts.
			fmt.Fprintf(out, "scope       none inferred: %s; declare it with --scope-rule, --scope-path, --scope-host\n", visible(st.ScopeNote))
		}
		if c := st.Composed; c != nil && c.ScopeFrom == admin.ScopeInferred {
			for _, l := range c.ScopeLeft {
				fmt.Fprintf(out, "            not in the scope, its lost blocks count: %s\n", visible(l))
			}
		}
		if len(st.Hosts) > 0 {
			fmt.Fprintf(out, "hosts       the candidate judges only %s; the baseline serves every other host\n", strings.Join(st.Hosts, ", "))
		}
		if st.Preset != "" {
			why := st.Preset
			if c := st.Composed; c != nil && c.Preset != "" {
				why = c.Preset
			}
			fmt.Fprintf(out, "preset      %s; %s\n", visible(why), planText(st.Plan))
		}
	}
	if f := st.Fleet; f != nil {
		store := "etcd up"
		if !f.StoreUp {
			store = "etcd UNREACHABLE (" + f.StoreError + "): serving the last routing, no decisions"
		}
		fmt.Fprintf(out, "fleet       replica %s, leader %s; %s\n", f.Replica, f.Leader, store)
		for _, r := range f.Replicas {
			cand := "-"
			if r.Candidate != "" {
				cand = fmt.Sprintf("%s at %g%%", r.Candidate, r.CandidatePercent)
			}
			lead := ""
			if r.Leader {
				lead = " (leader)"
			}
			fmt.Fprintf(out, "  %-20s baseline %s, candidate %s, state revision %d%s\n", r.ID, r.Baseline, cand, r.StateRevision, lead)
		}
	}
	if d := st.LastDecision; d != nil {
		fmt.Fprintf(out, "last        %s by %s, %s ago: %s\n", d.Action, d.Actor, time.Since(d.Time).Round(time.Second), d.Reason)
		if d.Analysis != nil {
			fmt.Fprintln(out, "evidence")
			for _, oc := range d.Analysis.Outcomes {
				req := " "
				if oc.Required {
					req = "*"
				}
				fmt.Fprintf(out, "  %s %-16s %-12s %-8s %s\n", req, oc.Check, oc.Status, oc.Window, oc.Reason)
			}
			fmt.Fprintln(out, "  (* must pass to advance; window: rollout = since the rollout started, step = since the step started)")
		}
	}
	return nil
}

// progress is the current step against its minimums, from the server's
// clock and the last analysis; "" when no rollout runs.
func progress(st admin.Status) string {
	active := st.State == "shadow" || st.State == "progressing" || st.State == "paused"
	if !active || st.Step < 0 || st.Step >= len(st.Plan) {
		return ""
	}
	p := st.Plan[st.Step]
	elapsed := st.Now.Sub(st.StepStarted).Round(time.Second)
	judged := int64(0)
	// The analysis that advanced into this step counted the step before:
	// only one taken since the step began counts this one.
	if d := st.LastDecision; d != nil && d.Time.After(st.StepStarted) {
		judged = d.Judged
	}
	return fmt.Sprintf("step %d of %d: %s of %s, %d of %d requests judged by the candidate at the last analysis",
		st.Step+1, len(st.Plan), elapsed, time.Duration(p.MinDurationSeconds*float64(time.Second)), judged, p.MinRequests)
}

// visible is s with every character a terminal would act on rather than
// show written as a Go string literal writes it (\x1b, \n, \u202e), and
// every byte that is not UTF-8 as \xff: C0 and C1 controls, DEL, the
// bidirectional overrides and isolates, line separators and other format
// characters. Everything explain and tune print that a client wrote (its
// host, path, headers, body, the names of its variables, a rule's message
// with what it matched) goes through it, so a request cannot rewrite or
// hide the lines an operator reads. A backslash is left as it is: the
// escapes are for reading, not for decoding.
func visible(s string) string {
	if shows(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// visibleAll is visible over a list.
func visibleAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = visible(s)
	}
	return out
}

// shows reports whether s is UTF-8 of printable characters only.
func shows(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// jsonVisible escapes, in JSON that encoding/json wrote, every rune that
// is not printable but the newlines and spaces of its indentation. Outside
// its strings encoding/json writes only those and printable ASCII, so each
// such rune is in a string, where \uXXXX is the same character.
func jsonVisible(js string) string {
	var b strings.Builder
	for _, r := range js {
		if r == '\n' || strconv.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// crsOf is ", CRS 4.25.0 (embedded)" for a ruleset whose status names
// its CRS, "" for one from a server that does not.
func crsOf(r *rollout.RulesetRef) string {
	if r.CRS == "" {
		return ""
	}
	return ", " + r.CRS
}

// planText says a plan's steps with their minimums: "shadow 168h/20000
// requests -> 1% 24h/5000 requests -> ...".
func planText(plan []admin.StepPlan) string {
	parts := make([]string, len(plan))
	for i, p := range plan {
		share := fmt.Sprintf("%g%%", p.Percent)
		if p.Percent == 0 {
			share = "shadow"
		}
		parts[i] = fmt.Sprintf("%s %s/%d requests", share, time.Duration(p.MinDurationSeconds*float64(time.Second)), p.MinRequests)
		if p.Approval {
			parts[i] += " (approval)"
		}
	}
	return strings.Join(parts, " -> ")
}
