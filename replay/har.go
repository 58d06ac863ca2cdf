package replay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// harEntry is the part of a HAR 1.2 entry replay reads.
type harEntry struct {
	Request *struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		HTTPVersion string `json:"httpVersion"`
		Headers     []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
		PostData *struct {
			MimeType string `json:"mimeType"`
			Text     string `json:"text"`
			Params   []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"params"`
			// Encoding is not HAR 1.2's, but some exporters mark a
			// binary body "base64" here (or as _encoding).
			Encoding  string `json:"encoding"`
			XEncoding string `json:"_encoding"`
		} `json:"postData"`
	} `json:"request"`
}

// countingReader counts the newlines read through it, so that a HAR
// entry's line can be told without keeping the file.
type countingReader struct {
	r     io.Reader
	lines int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.lines += bytes.Count(p[:n], []byte("\n"))
	return n, err
}

// har streams a HAR file's log.entries, one entry at a time.
func (s *scanner) har(ctx context.Context, name string, r io.Reader) error {
	cr := &countingReader{r: io.LimitReader(r, 1<<62)}
	dec := json.NewDecoder(cr)
	fail := func(line int, err error) {
		s.problem(Problem{Pos: Position{File: name, Line: line, Entry: -1}, Err: "not a HAR file: " + err.Error()})
	}
	line := func() int {
		rest, _ := io.ReadAll(dec.Buffered())
		return 1 + cr.lines - bytes.Count(rest, []byte("\n"))
	}
	if err := enter(dec, "log"); err != nil {
		fail(line(), err)
		return nil
	}
	if err := enter(dec, "entries"); err != nil {
		fail(line(), err)
		return nil
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		fail(line(), errors.New("log.entries is not an array"))
		return nil
	}
	for i := 0; dec.More(); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		pos := Position{File: name, Line: line(), Entry: i}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			s.problem(Problem{Pos: pos, Err: "entry cut short or not JSON: " + err.Error()})
			return nil // the decoder cannot find the next entry
		}
		if len(raw) > s.max {
			s.problem(Problem{Pos: pos, Err: fmt.Sprintf("%v (%d bytes): skipped", errLineTooLong, s.max)})
			continue
		}
		e, err := parseHAREntry(raw)
		if err != nil {
			s.problem(Problem{Pos: pos, Err: "not a HAR entry: " + err.Error()})
			continue
		}
		e.Pos, e.Format = pos, HAR
		if err := s.yield(e); err != nil {
			return err
		}
	}
	return nil
}

// enter reads dec into the value of key in the object that starts next,
// skipping the values of the other keys.
func enter(dec *json.Decoder, key string) error {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("no object holding %q", key)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if t == key {
			return nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return fmt.Errorf("no %q", key)
}

func parseHAREntry(raw []byte) (Entry, error) {
	var he harEntry
	if err := json.Unmarshal(raw, &he); err != nil {
		return Entry{}, err
	}
	q := he.Request
	if q == nil || q.Method == "" || q.URL == "" {
		return Entry{}, errors.New("no request with a method and a url")
	}
	u, err := url.Parse(q.URL)
	if err != nil {
		return Entry{}, fmt.Errorf("url: %w", err)
	}
	var headers [][2]string
	authority := ""
	hasHost := false
	for _, h := range q.Headers {
		switch {
		case h.Name == ":authority":
			authority = h.Value
		case strings.HasPrefix(h.Name, ":"): // HTTP/2 pseudo-headers: not headers
		default:
			hasHost = hasHost || strings.EqualFold(h.Name, "Host")
			headers = append(headers, [2]string{h.Name, h.Value})
		}
	}
	if !hasHost {
		host := authority
		if host == "" {
			host = u.Host
		}
		headers = append([][2]string{{"Host", host}}, headers...)
	}
	// The target as sent: the URL without scheme and authority.
	uri := q.URL
	if u.Scheme != "" {
		uri = strings.TrimPrefix(uri, u.Scheme+"://"+u.Host)
		if uri == "" || uri[0] != '/' {
			uri = "/" + uri
		}
	}
	uri, _, _ = strings.Cut(uri, "#")
	e := Entry{Request: request("", q.Method, uri, protoOf(harProto(q.HTTPVersion)), headers)}
	if p := q.PostData; p != nil {
		var body []byte
		switch {
		case p.Encoding == "base64" || p.XEncoding == "base64":
			if body, err = base64.StdEncoding.DecodeString(p.Text); err != nil {
				return Entry{}, fmt.Errorf("postData.text: %w", err)
			}
		case p.Text != "":
			body = []byte(p.Text)
		case len(p.Params) > 0:
			v := url.Values{}
			for _, kv := range p.Params {
				v.Add(kv.Name, kv.Value)
			}
			body = []byte(v.Encode())
		}
		if len(body) > 0 {
			e.Body = body
		}
	}
	if e.Body == nil {
		e.BodyMissing = hadBody(&e.Request)
	}
	return e, nil
}

// harProto maps a HAR httpVersion (HTTP/1.1, http/2.0, h2, h3) to one
// protoOf reads.
func harProto(v string) string {
	switch l := strings.ToLower(v); {
	case l == "h2" || l == "http/2" || l == "http/2.0":
		return "2.0"
	case l == "h3" || l == "http/3" || l == "http/3.0":
		return "3.0"
	case strings.HasPrefix(l, "http/"):
		return v[5:]
	}
	return ""
}
