package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/wafcanary/wafcanary/capture"
)

// capture reads one of wafcanary's captures: a blocked request as kept,
// redacted (capture.Record).
func (s *scanner) capture(name string, r io.Reader) error {
	pos := Position{File: name, Line: 1, Entry: -1}
	b, err := io.ReadAll(io.LimitReader(r, int64(s.max)+1))
	if err != nil {
		s.problem(Problem{Pos: pos, Err: "reading: " + err.Error()})
		return nil
	}
	if len(b) > s.max {
		s.problem(Problem{Pos: pos, Err: fmt.Sprintf("%v (%d bytes): skipped", errLineTooLong, s.max)})
		return nil
	}
	var rec capture.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		s.problem(Problem{Pos: pos, Err: "not a capture: " + err.Error()})
		return nil
	}
	if rec.Method == "" || rec.URI == "" {
		s.problem(Problem{Pos: pos, Err: "not a capture: no method or uri"})
		return nil
	}
	var headers [][2]string
	if rec.Host != "" {
		headers = append(headers, [2]string{"Host", rec.Host})
	}
	for k, vs := range rec.Header {
		for _, v := range vs {
			headers = append(headers, [2]string{k, v})
		}
	}
	e := Entry{Pos: pos, Format: Captures, Request: request(rec.ID, rec.Method, rec.URI, rec.Proto, headers), Lossy: true}
	if rec.ClientIP != "" {
		e.Request.ClientIP = rec.ClientIP
	}
	if rec.Body != "" {
		e.Body = []byte(rec.Body)
	}
	e.BodyMissing = rec.BodyNote != "" && (e.Body == nil || strings.Contains(rec.BodyNote, "cut"))
	if e.Body == nil && !e.BodyMissing {
		e.BodyMissing = hadBody(&e.Request)
	}
	return s.yield(e)
}
