package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/capture"
)

// tuneRecords resolves tune's arguments to the captures it replays: a
// request ID to its capture, a signature (sig:...) to every capture it
// keeps (they share host, path, rules and variables, so one exclusion
// serves them all, and each is a must_pass case). A request ID given
// twice, or also kept by a signature given, is replayed once.
func tuneRecords(ctx context.Context, c *admin.Client, args []string) ([]capture.Record, error) {
	var recs []capture.Record
	seen := map[string]bool{}
	add := func(rec capture.Record) {
		if !seen[rec.ID] {
			seen[rec.ID] = true
			recs = append(recs, rec)
		}
	}
	for _, arg := range args {
		if strings.HasPrefix(arg, "sig:") {
			g, err := c.Block(ctx, arg)
			if err != nil {
				return nil, exitError(err)
			}
			if len(g.Captures) == 0 {
				return nil, errUsage{fmt.Errorf("%s: %d blocks, no capture left (past capture.max_age, or not written: see wafcanary_captures_not_written_total): tune replays requests, so it needs one", g.Summary.Sig, g.Summary.Count)}
			}
			for _, rec := range g.Captures {
				add(rec)
			}
			continue
		}
		e, err := c.Explain(ctx, arg)
		if err != nil {
			return nil, exitError(err)
		}
		if e.Exception != "" {
			// Kept with its request (capture.enabled) for retire's cases:
			// the baseline lets it through, there is nothing to tune.
			return nil, errUsage{fmt.Errorf("request %s was not blocked: exception %s lets it through (a would-be block); wafcanary exceptions retire %s makes a case of it", visible(arg), e.Exception, e.Exception)}
		}
		if e.Capture == nil {
			if g := e.Group; g != nil && len(g.Captures) > 0 {
				return nil, errUsage{fmt.Errorf("request %s was not kept: its signature %s keeps its first %s, of the same host, path, rules and variables; tune %s uses them", visible(arg), g.Sig, plural(len(g.Captures), "capture"), g.Sig)}
			}
			return nil, fmt.Errorf("request %s: no capture (capture.enabled is off, or the capture is past capture.max_age, or its signature was evicted): tune replays the request, so it needs one", visible(arg))
		}
		add(*e.Capture)
	}
	return recs, nil
}
