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
	"regexp"
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

// keptHeaders are the headers whose values are kept as sent: they
// describe the request, never a credential. Every other header's value is
// redacted (api-key, X-Goog-Api-Key, a vendor's session header: the names
// credentials travel under are too many to list). Referer and Origin are
// kept with their query redacted as the request's own.
var keptHeaders = map[string]bool{
	"Accept": true, "Accept-Charset": true, "Accept-Encoding": true, "Accept-Language": true,
	"Cache-Control": true, "Connection": true, "Content-Encoding": true, "Content-Length": true,
	"Content-Type": true, "Dnt": true, "Expect": true, "If-Match": true, "If-Modified-Since": true,
	"If-None-Match": true, "If-Range": true, "If-Unmodified-Since": true, "Max-Forwards": true,
	"Pragma": true, "Range": true, "Te": true, "Transfer-Encoding": true, "Upgrade": true,
	"Upgrade-Insecure-Requests": true, "User-Agent": true, "Via": true, "X-Forwarded-For": true,
	"X-Forwarded-Host": true, "X-Forwarded-Proto": true, "X-Request-Id": true, "X-Requested-With": true,
	"Sec-Fetch-Dest": true, "Sec-Fetch-Mode": true, "Sec-Fetch-Site": true, "Sec-Fetch-User": true,
	"Sec-Ch-Ua": true, "Sec-Ch-Ua-Mobile": true, "Sec-Ch-Ua-Platform": true,
}

// urlHeaders hold URLs, kept with their query redacted.
var urlHeaders = map[string]bool{"Referer": true, "Origin": true}

// redactor decides which names are sensitive: a name contains one of
// the configured words, both compared in lower case without - and _
// (api_key, api-key and apikey alike).
type redactor []string

func fold(s string) string {
	return strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(s))
}

func (r redactor) sensitive(name string) bool {
	n := fold(name)
	for _, s := range r {
		if strings.Contains(n, fold(s)) {
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
		ck := http.CanonicalHeaderKey(k)
		for _, v := range vs {
			switch {
			case urlHeaders[ck]:
				v = red.url(v)
			case !keptHeaders[ck] || red.sensitive(ck):
				v = Placeholder
			}
			rec.Header[k] = append(rec.Header[k], v)
		}
	}
	rec.Body, rec.BodyNote = red.body(q.Header.Get("Content-Type"), b.Body, b.BodyTruncated, cfg.MaxBodyBytes)
	return rec
}

// url redacts a URL-valued header's query; one that does not parse as a
// URL is redacted whole.
func (r redactor) url(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User != nil {
		return Placeholder
	}
	if u.RawQuery != "" {
		u.RawQuery = r.form(u.RawQuery)
	}
	u.Fragment = ""
	return u.String()
}

// uri redacts the values of sensitive query parameters.
func (r redactor) uri(uri string) string {
	path, q, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	return path + "?" + r.form(q)
}

// plainName is a parameter name as forms and query strings write them;
// anything else (a JSON document sent as a form, a bare token) is not a
// name=value pair and is not kept.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_.\[\]-]{1,128}$`)

// form redacts a urlencoded string, keeping its order: a name=value pair
// with a plain name keeps its value unless the name is sensitive; any
// other part is replaced whole.
func (r redactor) form(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, v, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		switch {
		case err != nil || !hasValue || !plainName.MatchString(name):
			parts[i] = url.QueryEscape(Placeholder)
		case r.sensitive(name) || strings.ContainsAny(v, "=;"): // a=1;pin=... hides a pair in a value
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
