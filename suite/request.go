package suite

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
)

// Bytes renders the request as go-ftw would put it on the wire. The suite's
// expectations were written against go-ftw's rendering, so it is followed
// closely, including what it adds when Autocomplete is on:
//   - data without a Content-Type is sent as a form, and form data whose
//     characters are not already escaped is escaped pair by pair;
//   - multipart bodies get CRLF line ends (YAML gives LF);
//   - Connection: close and Content-Length are added when missing.
//
// Raw requests are returned as they are.
func (in Input) Bytes() []byte {
	if in.Raw != nil {
		return in.Raw
	}
	h := append([]Header(nil), in.Headers...)
	data := []byte(in.Data)
	if len(data) > 0 && in.Autocomplete {
		h = addMissing(h, "Content-Type", "application/x-www-form-urlencoded")
		if get(h, "Content-Type") == "application/x-www-form-urlencoded" {
			data = escapeForm(data)
		}
	}
	if strings.HasPrefix(get(h, "Content-Type"), "multipart/form-data;") {
		data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	}
	if in.Autocomplete {
		h = addMissing(h, "Connection", "close")
		switch in.Method {
		case "POST", "PUT", "PATCH", "DELETE":
			h = addMissing(h, "Content-Length", strconv.Itoa(len(data)))
		default:
			if len(data) > 0 {
				h = addMissing(h, "Content-Length", strconv.Itoa(len(data)))
			}
		}
	}
	var b bytes.Buffer
	b.WriteString(in.Method + " " + in.URI + " " + in.Version + "\r\n")
	for _, hh := range h {
		b.WriteString(hh.Name + ": " + hh.Value + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(data)
	return b.Bytes()
}

func get(h []Header, name string) string {
	for _, hh := range h {
		if strings.EqualFold(hh.Name, name) {
			return hh.Value
		}
	}
	return ""
}

func addMissing(h []Header, name, value string) []Header {
	for _, hh := range h {
		if strings.EqualFold(hh.Name, name) {
			return h
		}
	}
	return append(h, Header{name, value})
}

// escapeForm escapes each key and value of unescaped form data. Data that
// unescaping would change is taken to be escaped already and left alone;
// so is data that does not unescape at all (a stray '%').
func escapeForm(data []byte) []byte {
	s := string(data)
	if u, err := url.QueryUnescape(s); err != nil || u != s {
		return data
	}
	var out []string
	// go-ftw drops a trailing '&'; so does this.
	for _, pair := range strings.Split(strings.TrimSuffix(s, "&"), "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			out = append(out, url.QueryEscape(pair))
			continue
		}
		out = append(out, url.QueryEscape(k)+"="+url.QueryEscape(v))
	}
	return []byte(strings.Join(out, "&"))
}
