// Package capture keeps blocked requests, redacted, in a bounded store
// under state_dir, so that an operator can see what was blocked, explain
// it and turn it into a case. It is off unless capture.enabled is set.
package capture

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

// Placeholder replaces every redacted value.
const Placeholder = "[redacted]"

// Record is one blocked request as kept: what Coraza saw, with the values
// of cookies, credentials and the configured sensitive names replaced by
// Placeholder, and the verdict with its rules.
type Record struct {
	ID       string          `json:"id"`
	Time     time.Time       `json:"time"`
	Arm      string          `json:"arm"`
	Version  string          `json:"version"`
	Method   string          `json:"method"`
	Host     string          `json:"host"`
	URI      string          `json:"uri"` // path and query, sensitive values redacted
	Proto    string          `json:"proto"`
	ClientIP string          `json:"client_ip"`
	Header   http.Header     `json:"header"`
	Body     string          `json:"body,omitempty"`
	BodyNote string          `json:"body_note,omitempty"` // why the body is partial or absent
	Status   int             `json:"status"`
	Verdict  verdict.Verdict `json:"verdict"`
}

// alwaysRedacted are the headers whose values are credentials whatever
// the configuration says.
var alwaysRedacted = []string{"Cookie", "Authorization", "Proxy-Authorization", "X-Api-Key", "X-Auth-Token"}

// redactor decides which names are sensitive.
type redactor []string

func (r redactor) sensitive(name string) bool {
	n := strings.ToLower(name)
	for _, s := range r {
		if strings.Contains(n, strings.ToLower(s)) {
			return true
		}
	}
	return false
}

// Of makes the record of b under cfg's redaction and body limit.
func Of(b verdict.Block, cfg Config) Record {
	red := redactor(cfg.Redact)
	q := b.Request
	rec := Record{
		ID: q.ID, Time: b.Time.UTC(), Arm: b.Record.Arm.String(), Version: b.Version,
		Method: q.Method, Host: q.Host, URI: red.uri(q.URI), Proto: q.Proto, ClientIP: q.ClientIP,
		Header: http.Header{}, Status: b.Record.Status, Verdict: b.Record.Verdict,
	}
	for k, vs := range q.Header {
		for _, v := range vs {
			if red.sensitive(k) || slicesContainsFold(alwaysRedacted, k) {
				v = Placeholder
			}
			rec.Header[k] = append(rec.Header[k], v)
		}
	}
	rec.Body, rec.BodyNote = red.body(q.Header.Get("Content-Type"), b.Body, b.BodyTruncated, cfg.MaxBodyBytes)
	return rec
}

func slicesContainsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

// uri redacts the values of sensitive query parameters.
func (r redactor) uri(uri string) string {
	path, q, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	return path + "?" + r.form(q)
}

// form redacts the sensitive values of a urlencoded string, keeping its
// order; a pair that does not parse is kept as a name only.
func (r redactor) form(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		switch {
		case err != nil:
			parts[i] = k + "=" + Placeholder
		case hasValue && r.sensitive(name):
			parts[i] = k + "=" + url.QueryEscape(Placeholder)
		}
	}
	return strings.Join(parts, "&")
}

// body keeps a form or JSON body with its sensitive values redacted, cut
// at max bytes. Any other body could hold anything, so only its size and
// type are kept.
func (r redactor) body(contentType string, body []byte, truncated bool, max int) (string, string) {
	if len(body) == 0 {
		return "", ""
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	var out string
	switch {
	case mt == "application/x-www-form-urlencoded":
		out = r.form(string(body))
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return "", "a JSON body that does not parse (truncated, or not JSON): not kept"
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(r.json(v))
		out = strings.TrimSuffix(b.String(), "\n")
	default:
		return "", fmt.Sprintf("a %s body of %d bytes: only form and JSON bodies are kept (redacted)", orUnknown(mt), len(body))
	}
	note := ""
	if truncated {
		note = "the body was longer than the proxy copies; cut"
	}
	if len(out) > max {
		out, note = out[:max], fmt.Sprintf("cut at capture.max_body_bytes (%d)", max)
	}
	return out, note
}

// json redacts the values under sensitive keys, at any depth.
func (r redactor) json(v any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if r.sensitive(k) {
				x[k] = Placeholder
			} else {
				x[k] = r.json(x[k])
			}
		}
		return x
	case []any:
		for i := range x {
			x[i] = r.json(x[i])
		}
		return x
	}
	return v
}

func orUnknown(mt string) string {
	if mt == "" {
		return "untyped"
	}
	return mt
}
