package main

import (
	"bufio"
	"context"
	_ "embed"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// shadowCounts are read from wafcanary's metrics after the rounds.
type shadowCounts struct {
	pairs, dropped, derived float64
	arms                    map[string]float64 // requests by enforcing arm
}

func scrapeShadow(ctx context.Context, url string) (shadowCounts, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return shadowCounts{}, err
	}
	defer resp.Body.Close()
	return parseShadowMetrics(resp.Body)
}

// parseShadowMetrics sums the shadow pair, drop and per-arm request
// counters in Prometheus text format.
func parseShadowMetrics(r io.Reader) (shadowCounts, error) {
	c := shadowCounts{arms: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		switch name, labels, _ := strings.Cut(series, "{"); name {
		case "wafcanary_shadow_verdicts_total":
			c.pairs += v
		case "wafcanary_shadow_dropped_total":
			c.dropped += v
		case "wafcanary_shadow_derived_total":
			c.derived += v
		case "wafcanary_requests_total":
			if _, arm, ok := strings.Cut(labels, `arm="`); ok {
				arm, _, _ = strings.Cut(arm, `"`)
				c.arms[arm] += v
			}
		}
	}
	return c, sc.Err()
}
