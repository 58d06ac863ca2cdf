// Package capture keeps blocked requests, redacted, in a bounded store
// under state_dir, so that an operator can see what was blocked, explain
// it and turn it into a case. It is off unless capture.enabled is set.
package capture

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wafcanary/wafcanary/verdict"
)

// Placeholder replaces every redacted value.
const Placeholder = "[redacted]"

// Record is one blocked request as kept: what Coraza saw, with the values
// of cookies, credentials and the configured sensitive names replaced by
// Placeholder, and the verdict with its rules.
type Record struct {
	ID       string      `json:"id"`
	Time     time.Time   `json:"time"`
	Arm      string      `json:"arm"`
	Version  string      `json:"version"`
	Method   string      `json:"method"`
	Host     string      `json:"host"`
	URI      string      `json:"uri"` // path and query, sensitive values redacted
	Proto    string      `json:"proto"`
	ClientIP string      `json:"client_ip"`
	Header   http.Header `json:"header"`
	// Body is the body as kept (see Of): any bytes, not only text. In
	// JSON it is "body" when it is UTF-8 and "body_base64" otherwise, so
	// that an image reads back byte for byte.
	Body     string          `json:"body,omitempty"`
	BodyNote string          `json:"body_note,omitempty"` // why the body is partial or absent
	Status   int             `json:"status"`
	Verdict  verdict.Verdict `json:"verdict"`
	// Signature is the block's signature, sig: and 16 hex digits
	// (Shape.Signature).
	Signature string `json:"signature,omitempty"`
	// Shadow is set for a block that did not happen: the candidate
	// (Arm) judged the request in shadow and would have blocked it, and
	// the baseline served it. Status is then what the candidate would
	// have answered.
	Shadow bool `json:"shadow,omitempty"`
}

// recordJSON is a Record as written: Body moves to BodyBase64 when it is
// not UTF-8 (encoding/json would replace its invalid bytes).
type recordJSON struct {
	plainRecord
	BodyBase64 string `json:"body_base64,omitempty"`
}

type plainRecord Record

// MarshalJSON writes a body that is not UTF-8 as body_base64.
func (r Record) MarshalJSON() ([]byte, error) {
	w := recordJSON{plainRecord: plainRecord(r)}
	if !utf8.ValidString(r.Body) {
		w.Body, w.BodyBase64 = "", base64.StdEncoding.EncodeToString([]byte(r.Body))
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w recordJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Record(w.plainRecord)
	if w.BodyBase64 != "" {
		body, err := base64.StdEncoding.DecodeString(w.BodyBase64)
		if err != nil {
			return fmt.Errorf("body_base64: %w", err)
		}
		r.Body = string(body)
	}
	return nil
}

// BinaryBody reports whether the body is not UTF-8 text: shown by its
// size, never printed or logged.
func (r Record) BinaryBody() bool { return !utf8.ValidString(r.Body) }

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

// redactor decides which names are sensitive. Names are compared as
// words (see words), not as substrings: "pin" is in ping_status and
// "auth" in post_author, and redacting those made tune refuse the very
// field that blocked (issue 27). A word of minLong letters or more is
// rare inside another word and still matches anywhere, so run-together
// names (newpassword, accesstoken) stay redacted.
type redactor struct {
	long  []string        // folded words of minLong letters or more
	short []string        // folded shorter words: whole words of the name only
	names map[string]bool // redact_names, lower-cased: whole names
}

// minLong is the length from which a listed word matches anywhere in a
// name. Every shorter word of the default list is a piece of common
// words (key: keyword, monkey; pin: shipping; auth: author; sig: design).
const minLong = 5

func newRedactor(cfg Config) redactor {
	r := redactor{names: map[string]bool{}}
	for _, w := range cfg.Redact {
		f := strings.Join(words(w), "")
		switch {
		case f == "":
		case len(f) >= minLong:
			r.long = append(r.long, f)
		default:
			r.short = append(r.short, f)
		}
	}
	for _, n := range cfg.RedactNames {
		r.names[strings.ToLower(strings.TrimSpace(n))] = true
	}
	return r
}

// words splits a name into lower-case words: at every character that is
// not a letter or a digit, between letters and digits, and at camelCase
// (apiKey and APIKey are api, key).
func words(name string) []string {
	var out []string
	rs := []rune(name)
	start := -1
	flush := func(end int) {
		if start >= 0 {
			out = append(out, strings.ToLower(string(rs[start:end])))
			start = -1
		}
	}
	for i, c := range rs {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) {
			flush(i)
			continue
		}
		if start >= 0 {
			prev := rs[i-1]
			switch {
			case unicode.IsDigit(c) != unicode.IsDigit(prev):
				flush(i)
			case unicode.IsUpper(c) && (unicode.IsLower(prev)):
				flush(i)
			case unicode.IsUpper(c) && unicode.IsUpper(prev) && i+1 < len(rs) && unicode.IsLower(rs[i+1]):
				flush(i) // the K of APIKey
			}
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(rs))
	return out
}

// sensitive reports whether a value under name is redacted: name is one
// of redact_names, holds a long listed word anywhere, or a short one as
// one or more whole words (api_key holds "apikey" as api + key).
func (r redactor) sensitive(name string) bool {
	if r.names[strings.ToLower(name)] {
		return true
	}
	ws := words(name)
	folded := strings.Join(ws, "")
	for _, l := range r.long {
		if strings.Contains(folded, l) {
			return true
		}
	}
	for _, s := range r.short {
		for i := range ws {
			run := ""
			for j := i; j < len(ws) && len(run) < len(s); j++ {
				run += ws[j]
				if run == s {
					return true
				}
			}
		}
	}
	return false
}

// Of makes the record of b under cfg's redaction and body limit: the
// values of sensitive names (query, form, JSON, XML, multipart), of every
// header not known to be harmless, of cookies and credentials, replaced
// by Placeholder; a body of another type kept as its bytes.
func Of(b verdict.Block, cfg Config) Record { return newRedactor(cfg).record(b, cfg.MaxBodyBytes) }

// record makes the record of b with its body cut at maxBody bytes.
func (r redactor) record(b verdict.Block, maxBody int) Record {
	q := b.Request
	rec := Record{
		ID: q.ID, Time: b.Time.UTC(), Arm: b.Record.Arm.String(), Version: b.Version,
		Method: q.Method, Host: q.Host, URI: r.uri(q.URI), Proto: q.Proto, ClientIP: q.ClientIP,
		Header: http.Header{}, Status: b.Record.Status, Verdict: b.Record.Verdict, Shadow: b.Shadow,
	}
	if len(q.TransferEncoding) > 0 {
		// net/http moves the header out of the map; Coraza saw it (920180
		// and 920640 read it), so a replay must send the body as it came.
		rec.Header["Transfer-Encoding"] = slices.Clone(q.TransferEncoding)
	}
	for k, vs := range q.Header {
		ck := http.CanonicalHeaderKey(k)
		for _, v := range vs {
			switch {
			case urlHeaders[ck]:
				v = r.url(v)
			case !keptHeaders[ck] || r.sensitive(ck):
				v = Placeholder
			}
			rec.Header[k] = append(rec.Header[k], v)
		}
	}
	rec.Body, rec.BodyNote = r.body(q.Header.Get("Content-Type"), b.Body, b.BodyTruncated, maxBody)
	if len(b.Body) == 0 && (len(q.TransferEncoding) > 0 || q.Header.Get("Content-Length") != "" && q.Header.Get("Content-Length") != "0") {
		// Blocked in phase 1 (CRS's early blocking): Coraza never read
		// it. Said, so a replay without it is not taken for the request.
		rec.BodyNote = "the body was not read: the request was blocked before its body phase"
	}
	rec.Signature = shapeOfBlock(b).Signature()
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

// body keeps a body of any type, cut at max bytes, so that a replay
// sends what was blocked: a form, JSON, XML or multipart body with the
// values under sensitive names redacted, any other body (an image, a
// text) as its bytes. A body of a parsed type that does not parse is not
// kept: its values could not be told apart, so none could be redacted.
// The note says why a body is partial or absent.
func (r redactor) body(contentType string, body []byte, truncated bool, max int) (string, string) {
	if len(body) == 0 {
		return "", ""
	}
	mt, params, _ := mime.ParseMediaType(contentType)
	note := ""
	if truncated {
		note = "the body was longer than the proxy copies; cut"
	}
	var out string
	switch {
	case mt == "application/x-www-form-urlencoded":
		out = r.form(string(body))
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return "", "a JSON body that does not parse (truncated, or not JSON): not kept, as its values cannot be redacted"
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(r.json(v))
		out = strings.TrimSuffix(b.String(), "\n")
	case mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml"):
		x, err := r.xml(body)
		if err != nil {
			return "", "an XML body that does not parse (truncated, or not XML): not kept, as its values cannot be redacted"
		}
		out = x
	case mt == "multipart/form-data":
		m, cut, err := r.multipart(body, params["boundary"])
		if err != nil {
			return "", fmt.Sprintf("a multipart body that does not parse (%v): not kept, as its values cannot be redacted", err)
		}
		out = m
		if cut != "" {
			note = cut
		}
	default:
		// Kept as sent, so that the replay of an upload is that upload,
		// not a body-less POST; unless it is a form or JSON under another
		// type (sendBeacon sends text/plain) with a value to redact.
		out = string(body)
		if red, ok := r.sniffed(body); ok {
			out, note = red, describe(mt)+" that reads as a form or JSON: its sensitive values redacted"
		}
	}
	if len(out) > max {
		out, note = out[:max], fmt.Sprintf("cut at capture.max_body_bytes (%d)", max)
	}
	return out, note
}

// sniffed redacts a body of another type that is a form or JSON
// document, and reports whether it had anything to redact: a body with
// nothing to redact is kept byte for byte.
func (r redactor) sniffed(body []byte) (string, bool) {
	if looksLikeForm(body) {
		red := r.form(string(body))
		return red, red != string(body)
	}
	if !json.Valid(body) {
		return "", false
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return "", false
	}
	before, _ := json.Marshal(v)
	after, _ := json.Marshal(r.json(v))
	if bytes.Equal(before, after) {
		return "", false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n"), true
}

// looksLikeForm reports whether body is name=value pairs joined by &,
// every name plain: text that is not would be mangled by form.
func looksLikeForm(body []byte) bool {
	if !utf8.Valid(body) || !bytes.Contains(body, []byte("=")) {
		return false
	}
	for _, p := range strings.Split(string(body), "&") {
		k, _, ok := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if !ok || err != nil || !plainName.MatchString(name) {
			return false
		}
	}
	return true
}

// describe names a body by its media type.
func describe(mt string) string {
	if mt == "" {
		return "a body with no Content-Type"
	}
	return "a " + mt + " body"
}

// multipart redacts the values of a multipart form's sensitive fields
// (files too: a key file is a credential), writing the parts again with
// the same boundary. A body cut short keeps its whole parts and what the
// last one had; cut says so.
func (r redactor) multipart(body []byte, boundary string) (out, cut string, err error) {
	if boundary == "" {
		return "", "", errors.New("no boundary")
	}
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	if err := w.SetBoundary(boundary); err != nil {
		return "", "", err
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for n := 0; ; n++ {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n == 0 {
				return "", "", err
			}
			cut = fmt.Sprintf("the multipart body ends inside part %d: kept up to there", n+1)
			break
		}
		data, rerr := io.ReadAll(p)
		if r.sensitive(p.FormName()) {
			data = []byte(Placeholder)
		}
		pw, err := w.CreatePart(p.Header)
		if err != nil {
			return "", "", err
		}
		pw.Write(data)
		if rerr != nil {
			cut = fmt.Sprintf("the multipart body ends inside part %d (%q): kept up to there", n+1, p.FormName())
			break
		}
	}
	if err := w.Close(); err != nil {
		return "", "", err
	}
	return b.String(), cut, nil
}

// xml redacts the text of elements and the values of attributes with
// sensitive names, at any depth, writing the document again token by
// token (namespaces kept as prefixes, as sent).
func (r redactor) xml(body []byte) (string, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	var b bytes.Buffer
	enc := xml.NewEncoder(&b)
	var open []bool // whether each open element's text is redacted
	for {
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			t = t.Copy()
			sensitive := r.sensitive(t.Name.Local)
			t.Name = asSent(t.Name)
			for i := range t.Attr {
				if r.sensitive(t.Attr[i].Name.Local) {
					t.Attr[i].Value = Placeholder
				}
				t.Attr[i].Name = asSent(t.Attr[i].Name)
			}
			open = append(open, sensitive || (len(open) > 0 && open[len(open)-1]))
			tok = t
		case xml.EndElement:
			if len(open) == 0 {
				return "", errors.New("an end element with no start")
			}
			open = open[:len(open)-1]
			tok = xml.EndElement{Name: asSent(t.Name)}
		case xml.CharData:
			if len(open) > 0 && open[len(open)-1] && len(bytes.TrimSpace(t)) > 0 {
				tok = xml.CharData(Placeholder)
			}
		}
		if err := enc.EncodeToken(tok); err != nil {
			return "", err
		}
	}
	if len(open) != 0 {
		return "", errors.New("the document ends inside an element")
	}
	if err := enc.Flush(); err != nil {
		return "", err
	}
	return b.String(), nil
}

// asSent is a raw token's name written back as sent: RawToken leaves a
// prefix in Space, which the encoder would turn into a namespace
// declaration of its own.
func asSent(n xml.Name) xml.Name {
	if n.Space == "" {
		return n
	}
	return xml.Name{Local: n.Space + ":" + n.Local}
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
