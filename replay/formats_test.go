package replay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/verdict"
)

// scanAll reads paths and returns the entries and the problems.
func scanAll(t *testing.T, paths []string, max int) ([]Entry, []Problem) {
	t.Helper()
	var entries []Entry
	var problems []Problem
	err := Scan(context.Background(), paths, Auto, max, func(e Entry) error {
		entries = append(entries, e)
		return nil
	}, func(p Problem) { problems = append(problems, p) })
	if err != nil {
		t.Fatal(err)
	}
	return entries, problems
}

// A v3 log with a binary body written raw, a header repeated, a record
// past the bound and one cut short: every request read, every bad record
// named by its line, nothing else lost.
func TestReplayUnreadableAndBinary(t *testing.T) {
	bin := []byte{0x00, 0xff, 0xfe, '"', '\\', 0x80, 'a', '\n'}
	// yajl writes bytes past 0x7f raw and escapes the rest.
	quoted := `"\u0000` + "\xff\xfe" + `\"\\` + "\x80" + `a\n"`
	line := func(id, body string) string {
		return `{"transaction":{"client_ip":"10.0.0.1","time_stamp":"x","unique_id":"` + id + `","request":{"method":"POST","http_version":1.1,"uri":"/upload","body":` + body +
			`,"headers":{"Host":"shop.example.com","X-Trace":"a","X-Trace":"b","Content-Type":"application/octet-stream"}},"response":{"http_code":200},"messages":[]}}`
	}
	long := line("2", `"`+strings.Repeat("A", 5000)+`"`)
	text := line("1", quoted) + "\n" + long + "\n\n" + line("3", `""`) + "\n" + line("4", `"x"`)[:60]
	f := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, problems := scanAll(t, []string{f}, 4096)
	if len(entries) != 2 || len(problems) != 2 {
		t.Fatalf("entries %d, problems %v", len(entries), problems)
	}
	if got := entries[0].Body; string(got) != string(bin) {
		t.Errorf("binary body %q, want %q", got, bin)
	}
	if got := entries[0].Request.Header["X-Trace"]; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("repeated header kept as %v", got)
	}
	if entries[0].Request.Host != "shop.example.com" || entries[1].Pos.Line != 4 {
		t.Errorf("host %q, second entry at %s", entries[0].Request.Host, entries[1].Pos)
	}
	if problems[0].Pos.Line != 2 || !strings.Contains(problems[0].Err, "longer than the bound") ||
		problems[1].Pos.Line != 5 || !strings.Contains(problems[1].Err, "not a modsec3-json record") {
		t.Errorf("problems %v", problems)
	}
}

// A sparse file of several GB (a log with a hole) is read in bounded
// memory: the hole is one record past the bound, reported, and the
// records on either side are read.
func TestReplaySparseFile(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 3 GB of a hole")
	}
	f := filepath.Join(t.TempDir(), "sparse.log")
	rec := `{"transaction":{"time_stamp":"x","unique_id":"1","request":{"method":"GET","http_version":1.1,"uri":"/","headers":{"Host":"a"}},"response":{"http_code":200},"messages":[]}}` + "\n"
	w, err := os.Create(f)
	if err != nil {
		t.Fatal(err)
	}
	const hole = 3 << 30
	if _, err := w.WriteString(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("\n"+rec), int64(len(rec))+hole); err != nil {
		t.Fatal(err)
	}
	w.Close()
	entries, problems := scanAll(t, []string{f}, 0)
	if len(entries) != 2 || len(problems) != 1 || problems[0].Pos.Line != 2 {
		t.Errorf("entries %d, problems %v", len(entries), problems)
	}
}

// harOf writes reqs as a HAR 1.2 file, a binary body base64-encoded.
func harOf(t *testing.T, reqs []sent) string {
	t.Helper()
	type nv struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	var entries []map[string]any
	for _, r := range reqs {
		headers := []nv{{"Host", "shop.example.com"}, {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}, {"Accept", "text/html"}}
		for k, vs := range r.Header {
			for _, v := range vs {
				headers = append(headers, nv{k, v})
			}
		}
		q := map[string]any{"method": r.Method, "url": "https://shop.example.com" + r.Path, "httpVersion": "HTTP/1.1", "headers": headers}
		if r.Body != "" {
			pd := map[string]any{"mimeType": r.Header.Get("Content-Type"), "text": r.Body}
			if r.binary {
				pd["text"], pd["encoding"] = base64.StdEncoding.EncodeToString([]byte(r.Body)), "base64"
			}
			q["postData"] = pd
		}
		entries = append(entries, map[string]any{"startedDateTime": "2026-12-07T14:00:00Z", "request": q, "response": map[string]any{"status": 200}})
	}
	b, err := json.MarshalIndent(map[string]any{"log": map[string]any{"version": "1.2", "creator": map[string]any{"name": "test"}, "entries": entries}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "traffic.har")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestReplayHAR(t *testing.T) {
	reqs := traffic()
	f := harOf(t, reqs)
	rep := replay(t, "candidate-exclusion.conf", []string{f}, Options{})
	if rep.Requests != int64(len(reqs)) || rep.Unreadable != 0 || rep.Agreement.Compared != 0 {
		t.Fatalf("requests %d unreadable %d %v agreement %+v", rep.Requests, rep.Unreadable, rep.Problems, rep.Agreement)
	}
	if rep.NewBlocks.Total != 0 || rep.LostBlocks.OutOfScope != 0 || len(rep.LostBlocks.Paths) != 1 || rep.LostBlocks.Paths[0].Key != fpPaths()[0] {
		t.Errorf("new %+v, lost %+v", rep.NewBlocks, rep.LostBlocks)
	}
	ex := rep.LostBlocks.Rules[0].Examples[0]
	if ex.Pos.Entry != len(traffic())-6 || ex.Pos.Line < 2 {
		t.Errorf("example at %s, want the ticket's entry %d with its line", ex.Pos, len(traffic())-6)
	}
	entries, _ := scanAll(t, []string{f}, 0)
	last := entries[len(entries)-1]
	if string(last.Body) != reqs[len(reqs)-1].Body {
		t.Error("the base64 body did not read back byte for byte")
	}
}

// writeCaptures writes blocks as the capture store keeps them, with its
// index beside them.
func writeCaptures(t *testing.T, dir string, reqs []sent) {
	t.Helper()
	for i, r := range reqs {
		u, _ := url.Parse(r.Path)
		q := verdict.Request{ID: fmt.Sprint("cap-", i), Method: r.Method, URI: u.RequestURI(), Proto: "HTTP/1.1", Host: "shop.example.com", Header: r.Header.Clone(), ClientIP: "192.0.2.1"}
		if q.Header == nil {
			q.Header = http.Header{}
		}
		q.Header.Set("Cookie", "session=s3cret")
		rec := capture.Of(verdict.Block{Request: q, Body: []byte(r.Body), Time: time.Now(), Version: "x",
			Record: verdict.RequestRecord{Action: verdict.Blocked, Status: 403, Verdict: verdict.Verdict{Blocked: true, RuleID: 949110}}}, capture.DefaultConfig)
		b, _ := json.Marshal(rec)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%032x.json", i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"signatures":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A directory of mixed files: a concurrent v3 log (index and storage),
// mod_security2's log, a HAR file, captures, a file in no format and an
// empty one. Each request is read once, each odd file named.
func TestReplayMixedDirectory(t *testing.T) {
	l := auditLogs(t)
	dir := t.TempDir()
	concurrent := filepath.Join(dir, "nginx")
	if err := os.CopyFS(concurrent, os.DirFS(filepath.Dir(l.ConcurrentIndex))); err != nil {
		t.Fatal(err)
	}
	// The index names the storage by absolute path: point it at the copy.
	idx, _ := os.ReadFile(filepath.Join(concurrent, "index.log"))
	_ = os.WriteFile(filepath.Join(concurrent, "index.log"), []byte(strings.ReplaceAll(string(idx), filepath.Dir(l.ConcurrentIndex), concurrent)), 0o644)
	har, _ := os.ReadFile(harOf(t, traffic()[:5]))
	_ = os.WriteFile(filepath.Join(dir, "browser.har"), har, 0o644)
	caps := filepath.Join(dir, "captures")
	_ = os.Mkdir(caps, 0o700)
	writeCaptures(t, caps, []sent{{Request: traffic()[len(traffic())-6].Request}})
	_ = os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a log\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "empty.log"), nil, 0o644)
	want := len(traffic()) - 1 + 5 + 1
	if l.Apache != "" {
		a, _ := os.ReadFile(l.Apache)
		_ = os.WriteFile(filepath.Join(dir, "apache.log"), a, 0o644)
		want += len(traffic()) // Apache lets ModSecurity see the path traversal
	}
	entries, problems := scanAll(t, []string{dir}, 0)
	formats := map[Format]int{}
	for _, e := range entries {
		formats[e.Format]++
	}
	if len(entries) != want || len(problems) != 2 {
		t.Errorf("%d entries (want %d) %v, problems %v", len(entries), want, formats, problems)
	}
	for _, p := range problems {
		if !strings.HasSuffix(p.Pos.File, "notes.txt") && !strings.HasSuffix(p.Pos.File, "empty.log") {
			t.Errorf("unexpected problem %s", p)
		}
	}
	rep := replay(t, "candidate-exclusion.conf", []string{dir}, Options{})
	if rep.NewBlocks.Total != 0 || rep.LostBlocks.OutOfScope != 0 {
		t.Errorf("new %+v lost %+v", rep.NewBlocks, rep.LostBlocks)
	}
	for _, rw := range rep.LostBlocks.Rules {
		for _, ex := range rw.Examples {
			if strings.Contains(fmt.Sprint(ex.Header), "s3cret") {
				t.Errorf("a cookie in an example: %v", ex.Header)
			}
		}
	}
}

// mod_security2's JSON log, from Apache in front of the demo: the same
// outcome as nginx's, and the engine agreement measured.
func TestReplayModSecurityV2Log(t *testing.T) {
	l := auditLogs(t)
	if l.Apache == "" {
		t.Skip("Apache with mod_security2 is not installed (apt-get install apache2 libapache2-mod-security2)")
	}
	rep := replay(t, "candidate-exclusion.conf", []string{l.Apache}, Options{})
	if rep.Requests != int64(len(traffic())) || rep.Unreadable != 0 {
		t.Fatalf("requests %d unreadable %d %v", rep.Requests, rep.Unreadable, rep.Problems)
	}
	if rep.NewBlocks.Total != 0 || rep.LostBlocks.OutOfScope != 0 || rep.LostBlocks.InScope != 1 {
		t.Errorf("new %+v lost %+v", rep.NewBlocks, rep.LostBlocks)
	}
	t.Logf("agreement with mod_security2: %d of %d (%.1f%%), cases %+v", rep.Agreement.Agree, rep.Agreement.Compared, 100*rep.Agreement.Share, rep.Agreement.Cases)
	// Apache refuses the path traversal itself (AH10244, invalid URI
	// path) before ModSecurity's phase 2: not compared.
	if rep.Agreement.Compared != rep.Requests-1 || rep.Agreement.NotCompared != 1 || rep.Agreement.Share < 0.99 {
		t.Errorf("agreement %+v", rep.Agreement)
	}
}

// A Coraza JSON audit record (as Coraza v3.8.1 marshals it) reads with
// its verdict.
func TestReplayCorazaRecord(t *testing.T) {
	rec := `{"transaction":{"timestamp":"2026/12/07 14:00:00","unix_timestamp":1,"id":"c1","client_ip":"10.0.0.1","client_port":1,"host_ip":"10.0.0.2","host_port":80,"server_id":"","request":{"method":"GET","protocol":"HTTP/1.1","uri":"/search?q=1%27+OR+%271%27%3D%271%27+--","http_version":"","headers":{"host":["shop.example.com"],"accept":["a","b"]},"body":"","files":null,"args":{},"length":0},"response":{"protocol":"","status":403,"headers":{},"body":""},"producer":null,"highest_severity":"","is_interrupted":true},"messages":[{"actionset":"","message":"SQL Injection","data":{"id":942100}},{"message":"x","data":{"id":949110}}]}`
	f := filepath.Join(t.TempDir(), "coraza.log")
	_ = os.WriteFile(f, []byte(rec+"\n"), 0o644)
	entries, problems := scanAll(t, []string{f}, 0)
	if len(entries) != 1 || len(problems) != 0 {
		t.Fatalf("%v %v", entries, problems)
	}
	e := entries[0]
	if e.Format != Coraza || e.Request.Host != "shop.example.com" || !slices.Equal(e.Request.Header["accept"], []string{"a", "b"}) || e.Logged == nil || !e.Logged.Blocked {
		t.Errorf("%+v", e)
	}
	rep := replay(t, "candidate-exclusion.conf", []string{f}, Options{})
	if rep.Agreement.Compared != 1 || rep.Agreement.Agree != 1 {
		t.Errorf("agreement %+v", rep.Agreement)
	}
}
