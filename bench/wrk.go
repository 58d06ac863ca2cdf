package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what mix.lua's done() prints on its WAFBENCH line.
type wrkResult struct {
	Requests      int64 `json:"requests"`
	DurationUS    int64 `json:"duration_us"`
	StatusErrors  int64 `json:"status_errors"` // non-2xx/3xx: blocked attacks, or false positives
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	Timeouts      int64 `json:"timeouts"`
	P50US         int64 `json:"p50_us"`
	P99US         int64 `json:"p99_us"`
}

func (r wrkResult) rps() float64 {
	if r.DurationUS == 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

func (r wrkResult) socketErrors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts
}

// parseWrk finds the WAFBENCH line in wrk's output.
func parseWrk(out []byte) (wrkResult, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "WAFBENCH "); ok {
			var r wrkResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return r, fmt.Errorf("wrk summary: %w", err)
			}
			if r.Requests == 0 {
				return r, fmt.Errorf("wrk completed no requests")
			}
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("no WAFBENCH line in wrk output:\n%s", out)
}

// load is one bounded wrk run's shape.
type load struct {
	threads, connections int
	duration             time.Duration
	// think is a pause before each request on a connection (mix.lua's
	// delay); zero drives the connections flat out.
	think time.Duration
}

func (l load) args(script, url string) []string {
	args := []string{
		"-t" + strconv.Itoa(l.threads), "-c" + strconv.Itoa(l.connections),
		"-d" + strconv.Itoa(int(l.duration.Seconds())) + "s",
		"--timeout", "5s", "-s", script, url,
	}
	if l.think > 0 {
		args = append(args, "--", strconv.FormatInt(l.think.Milliseconds(), 10))
	}
	return args
}

// runWrk drives url with the mix for l.duration. The context bounds it
// too, in case wrk hangs.
func runWrk(ctx context.Context, script, url string, l load) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, l.duration+15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", l.args(script, url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	return parseWrk(out)
}
