package replay

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/router"
	"github.com/wafcanary/wafcanary/verdict"
)

// benchEntries are traffic()'s requests as replay feeds them to Coraza.
func benchEntries() []Entry {
	var out []Entry
	for _, r := range traffic() {
		h := [][2]string{{"Host", "shop.example.com"}, {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}, {"Accept", "text/html"}}
		for k, vs := range r.Header {
			for _, v := range vs {
				h = append(h, [2]string{k, v})
			}
		}
		e := Entry{Request: request("", r.Method, r.Path, "HTTP/1.1", h)}
		if r.Body != "" {
			e.Body = []byte(r.Body)
		}
		out = append(out, e)
	}
	return out
}

// onCores runs judge over entries on GOMAXPROCS workers and returns the
// requests per second.
func onCores(b *testing.B, entries []Entry, judge func(*Entry) error) float64 {
	var wg sync.WaitGroup
	next := make(chan *Entry)
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range next {
				if err := judge(e); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range entries {
		next <- &entries[i]
	}
	close(next)
	wg.Wait()
	return float64(len(entries)) / time.Since(start).Seconds()
}

// BenchmarkReplay compares, on the same cores and requests (the demo's
// traffic, as the tests send it), judging each request once with the
// baseline alone, replaying the pair with the shipped exclusion (derived
// pairs), and replaying it with full evaluation of both rulesets; it
// reports each one's requests/s and the ratios to one ruleset.
func BenchmarkReplay(b *testing.B) {
	base, cand := shippedRuleset(b, "baseline.conf"), shippedRuleset(b, "candidate-exclusion.conf")
	entries := benchEntries()
	ctx := context.Background()
	derived, err := newEngine(base, cand, false)
	if err != nil {
		b.Fatal(err)
	}
	full, err := newEngine(base, cand, true)
	if err != nil {
		b.Fatal(err)
	}
	pair := func(e *router.Engine) func(*Entry) error {
		return func(en *Entry) error {
			req := en.Request.Clone()
			_, err := e.Pair(ctx, &req, en.Body)
			return err
		}
	}
	one := func(en *Entry) error {
		req := en.Request.Clone()
		req.Header = req.Header.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		_, err := verdict.Judge(ctx, base, &req, reader(en.Body))
		return err
	}
	var sOne, sDerived, sFull float64
	for b.Loop() {
		sOne += onCores(b, entries, one)
		sDerived += onCores(b, entries, pair(derived))
		sFull += onCores(b, entries, pair(full))
	}
	b.ReportMetric(sOne/float64(b.N), "one-ruleset-req/s")
	b.ReportMetric(sDerived/float64(b.N), "replay-exclusion-req/s")
	b.ReportMetric(sFull/float64(b.N), "replay-full-req/s")
	b.ReportMetric(sDerived/sOne, "exclusion/one")
	b.ReportMetric(sFull/sOne, "full/one")
}

func reader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}
