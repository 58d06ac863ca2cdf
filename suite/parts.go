package suite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Where a Part travels in its request.
const (
	InPath      = "path"      // the path, percent-decoded
	InQuery     = "query"     // a query argument's value
	InForm      = "form"      // a urlencoded body argument's value
	InArgName   = "arg name"  // a query or form argument's name
	InJSON      = "json"      // a JSON body's string member, named as Coraza names it (json.a.b)
	InMultipart = "multipart" // a multipart part's content
	InFilename  = "filename"  // a multipart part's file name
	InCookie    = "cookie"    // a cookie's value
	InHeader    = "header"    // a header's value (every header but Cookie)
	InBody      = "body"      // a body of any other type, whole
)

// Part is one value a test request carries, cut the way Coraza collects
// it: an attack of the suite is one of a stage's parts, and which one is
// for the caller to find out (a rule that matches it tells).
type Part struct {
	In    string // InPath, InQuery...
	Name  string // the argument's, cookie's or header's name; "" for the path or a whole body
	Value string // as the WAF decodes it, before any rule's transformations
}

// maxPartBody bounds the body Parts reads; the suite's longer bodies are
// generated padding for size limits, not attacks.
const maxPartBody = 64 << 10

// Parts cuts the request the stage sends into the values rules inspect,
// in request order: path, query arguments, headers and cookies, body. A
// raw request (go-ftw's encoded_request) is bytes on the wire that may
// not even be HTTP: it has no parts.
func (in Input) Parts() []Part {
	if in.Raw != nil {
		return nil
	}
	var out []Part
	p, q, _ := strings.Cut(in.URI, "?")
	if d := lenientUnescape(p, false); d != "" && d != "/" {
		out = append(out, Part{In: InPath, Value: d})
	}
	out = append(out, args(q, InQuery, true)...)
	for _, h := range in.Headers {
		if !strings.EqualFold(h.Name, "Cookie") {
			out = append(out, Part{In: InHeader, Name: h.Name, Value: h.Value})
			continue
		}
		for _, c := range strings.Split(h.Value, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(c), "=")
			if k != "" || v != "" {
				out = append(out, Part{In: InCookie, Name: k, Value: v})
			}
		}
	}
	if in.Data == "" || len(in.Data) > maxPartBody {
		return out
	}
	ct := get(in.Headers, "Content-Type")
	if ct == "" && in.Autocomplete {
		ct = "application/x-www-form-urlencoded" // as Bytes sends it
	}
	mt, params, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "application/x-www-form-urlencoded":
		data := []byte(in.Data)
		if in.Autocomplete {
			data = escapeForm(data) // as Bytes sends it: what the WAF decodes
		}
		out = append(out, args(string(data), InForm, true)...)
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var doc any
		if json.Unmarshal([]byte(in.Data), &doc) == nil {
			out = append(out, jsonParts("json", doc)...)
		} else {
			out = append(out, Part{In: InBody, Value: in.Data})
		}
	case mt == "multipart/form-data" && params["boundary"] != "":
		out = append(out, multipartParts(strings.ReplaceAll(in.Data, "\n", "\r\n"), params["boundary"])...)
	default:
		out = append(out, Part{In: InBody, Value: in.Data})
	}
	return out
}

// args cuts a urlencoded string into its values and names, each value
// before its name.
func args(s, in string, plus bool) []Part {
	var out []Part
	if s == "" {
		return nil
	}
	for _, pair := range strings.Split(s, "&") {
		k, v, hasValue := strings.Cut(pair, "=")
		k, v = lenientUnescape(k, plus), lenientUnescape(v, plus)
		if hasValue && v != "" {
			out = append(out, Part{In: in, Name: k, Value: v})
		}
		if k != "" { // the suite puts attacks in names too (?%20onload%3d=x)
			out = append(out, Part{In: InArgName, Name: k, Value: k})
		}
	}
	return out
}

// jsonParts lists a JSON document's string members, depth first, keys
// sorted, named as Coraza's JSON body processor names them.
func jsonParts(name string, doc any) []Part {
	switch d := doc.(type) {
	case string:
		return []Part{{In: InJSON, Name: name, Value: d}}
	case map[string]any:
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []Part
		for _, k := range keys {
			out = append(out, jsonParts(name+"."+k, d[k])...)
		}
		return out
	case []any:
		var out []Part
		for i, v := range d {
			out = append(out, jsonParts(name+"."+strconv.Itoa(i), v)...)
		}
		return out
	}
	return nil
}

// multipartParts lists each part's content and file name; a body that
// stops parsing keeps what was read before.
func multipartParts(body, boundary string) []Part {
	var out []Part
	r := multipart.NewReader(strings.NewReader(body), boundary)
	for {
		p, err := r.NextRawPart()
		if err != nil {
			return out
		}
		if fn := p.FileName(); fn != "" {
			out = append(out, Part{In: InFilename, Name: p.FormName(), Value: fn})
		}
		b, err := io.ReadAll(io.LimitReader(p, maxPartBody))
		if err == nil && len(b) > 0 {
			out = append(out, Part{In: InMultipart, Name: p.FormName(), Value: string(b)})
		}
	}
}

// lenientUnescape decodes %XX and, in arguments, '+' as a space, leaving
// a '%' that starts no escape as it is: what Coraza does with arguments
// (url.QueryUnescape refuses the whole string instead, and the suite's
// attacks are full of stray '%').
func lenientUnescape(s string, plus bool) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		case c == '+' && plus:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// LoadRule reads the cases of rule's own file in fsys (the CRS tests are
// laid out as REQUEST-9xx-NAME/RULE.yaml); none when the rule has no file.
func LoadRule(fsys fs.FS, rule int) ([]Case, error) {
	names, err := fs.Glob(fsys, path.Join("*", strconv.Itoa(rule)+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("tests of rule %d: %w", rule, err)
	}
	var out []Case
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("tests of rule %d: %w", rule, err)
		}
		cs, err := Parse(n, b)
		if err != nil {
			return nil, fmt.Errorf("tests of rule %d: %w", rule, err)
		}
		out = append(out, cs...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].TestID < out[j].TestID })
	return out, nil
}
