package exclusion

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/gates"
)

// skippedHeaders are not replayed: the case recomputes them, or they
// would describe the original connection rather than the request. A
// chunked Transfer-Encoding is replayed (the case sends the body chunked,
// without a Content-Length): CRS judges the two framings apart.
var skippedHeaders = map[string]bool{"Content-Length": true, "Connection": true, "Host": true}

// replay makes the case that sends rec again as captured, with host as its
// Host. Headers whose values the capture redacted are left out rather
// than sent as placeholders, so a case file never carries even the shape
// of a credential.
func replay(rec capture.Record, name, host string) gates.Case {
	c := gates.Case{Name: name, Method: rec.Method, Path: rec.URI, Body: rec.Body, Headers: map[string]string{"Host": host}}
	for k, vs := range rec.Header {
		ck := http.CanonicalHeaderKey(k)
		if skippedHeaders[ck] {
			continue
		}
		if ck == "Transfer-Encoding" {
			if slices.ContainsFunc(vs, func(v string) bool { return strings.EqualFold(v, "chunked") }) {
				c.Headers[ck] = "chunked"
			}
			continue
		}
		var kept []string
		for _, v := range vs {
			if v != capture.Placeholder {
				kept = append(kept, v)
			}
		}
		if len(kept) > 0 {
			c.Headers[ck] = strings.Join(kept, ", ")
		}
	}
	return c
}

// CaseOf is the case that sends rec again as captured, to its own Host:
// a must_pass case of a request the capture kept. Headers whose values
// were redacted are left out.
func CaseOf(rec capture.Record, name string) gates.Case { return replay(rec, name, rec.Host) }

// inject returns c with the value that target names replaced by payload,
// or false when the request has no such value to replace (a *_NAMES
// target, a JSON path that is not an object member).
func inject(c gates.Case, target, payload string) (gates.Case, bool) {
	v, key, _ := strings.Cut(target, ":")
	out := c
	out.Headers = make(map[string]string, len(c.Headers))
	for k, val := range c.Headers {
		out.Headers[k] = val
	}
	path, query, hasQuery := strings.Cut(c.Path, "?")
	switch v {
	case "ARGS", "ARGS_GET", "ARGS_POST":
		if v != "ARGS_POST" && hasQuery {
			if q, ok := setForm(query, key, payload); ok {
				out.Path = path + "?" + q
				return out, true
			}
		}
		if v == "ARGS_GET" {
			return c, false
		}
		mt, _, _ := mime.ParseMediaType(headerOf(c, "Content-Type"))
		switch {
		case mt == "application/x-www-form-urlencoded":
			b, ok := setForm(c.Body, key, payload)
			out.Body = b
			return out, ok
		case mt == "application/json" || strings.HasSuffix(mt, "+json"):
			b, ok := setJSON(c.Body, key, payload)
			out.Body = b
			return out, ok
		}
	case "REQUEST_HEADERS":
		ck := http.CanonicalHeaderKey(key)
		if skippedHeaders[ck] || ck == "Content-Type" || ck == "Transfer-Encoding" {
			return c, false
		}
		for k := range out.Headers {
			if strings.EqualFold(k, ck) {
				delete(out.Headers, k)
			}
		}
		out.Headers[ck] = payload
		return out, true
	case bodyLength:
		// The attack is the whole body, sent as the request sent its
		// own: without a Content-Type (bodyWithoutType).
		if c.Body == "" || headerOf(c, "Content-Type") != "" {
			return c, false
		}
		out.Body = payload
		return out, true
	case "REQUEST_COOKIES":
		out.Headers["Cookie"] = key + "=" + url.QueryEscape(payload)
		return out, true
	}
	return c, false
}

func headerOf(c gates.Case, name string) string {
	for k, v := range c.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// setForm replaces the value of name in a urlencoded string, keeping the
// order of its pairs. Coraza compares argument names case-insensitively,
// and so does this.
func setForm(form, name, value string) (string, bool) {
	parts := strings.Split(form, "&")
	found := false
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(k); err == nil && strings.EqualFold(n, name) {
			parts[i] = k + "=" + url.QueryEscape(value)
			found = true
		}
	}
	return strings.Join(parts, "&"), found
}

// setJSON replaces the member that Coraza's JSON body processor names
// json.a.b.0.c (objects by key, arrays by index) with value.
func setJSON(body, name, value string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "json.")
	if !ok {
		return body, false
	}
	var doc any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return body, false
	}
	var set func(node any, path []string) (any, bool)
	set = func(node any, path []string) (any, bool) {
		if len(path) == 0 {
			if _, isString := node.(string); !isString {
				return node, false
			}
			return value, true
		}
		switch n := node.(type) {
		case map[string]any:
			child, ok := n[path[0]]
			if !ok {
				return node, false
			}
			v, ok := set(child, path[1:])
			n[path[0]] = v
			return n, ok
		case []any:
			i, err := strconv.Atoi(path[0])
			if err != nil || i < 0 || i >= len(n) {
				return node, false
			}
			v, ok := set(n[i], path[1:])
			n[i] = v
			return n, ok
		}
		return node, false
	}
	doc, ok = set(doc, strings.Split(rest, "."))
	if !ok {
		return body, false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return body, false
	}
	return strings.TrimSuffix(b.String(), "\n"), true
}

// withHost and withPath return c sent to another host, or another path
// with the same query: the exclusion's conditions must keep it blocked.
func withHost(c gates.Case, host string) gates.Case {
	out := c
	out.Headers = map[string]string{}
	for k, v := range c.Headers {
		out.Headers[k] = v
	}
	out.Headers["Host"] = host
	return out
}

func withPath(c gates.Case, p string) gates.Case {
	out := c
	if _, q, ok := strings.Cut(c.Path, "?"); ok {
		p += "?" + q
	}
	out.Path = p
	return out
}

// requestPath is the path of a captured URI as REQUEST_FILENAME holds
// it: without the query, percent-decoded.
func requestPath(uri string) (string, error) {
	p, _, _ := strings.Cut(uri, "?")
	d, err := url.PathUnescape(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return d, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
