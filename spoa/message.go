package spoa

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/wafcanary/wafcanary/spop"
	"github.com/wafcanary/wafcanary/verdict"
)

// incoming is what a coraza-req message says of a request.
type incoming struct {
	req     verdict.Request // ID and client address filled in by the agent
	id      string          // HAProxy's unique-id, "" if not sent
	client  string          // the sticky key's value, "" if not sent
	src     netip.Addr
	srcPort uint16
	body    string // shares the frame's memory, read without a copy
	// bodySize is the advertised length (req.body_size, else
	// Content-Length); -1 when unknown.
	bodySize int64
}

// truncated reports whether less body arrived than was announced: the
// rest would reach the application unjudged.
func (in *incoming) truncated() bool { return in.bodySize > int64(len(in.body)) }

func (in *incoming) bodyReader() io.Reader {
	if len(in.body) == 0 {
		return nil
	}
	return strings.NewReader(in.body)
}

// maxArgText bounds the method, version and IDs an argument may carry;
// the path, query, headers and body are bounded by the frame.
const maxArgText = 256

// readRequest reads coraza-spoa's request arguments by name (their order
// does not matter). What must be there: src-ip, method, path, version and
// headers; the rest is optional.
func readRequest(msg spop.Message) (*incoming, error) {
	in := &incoming{bodySize: -1}
	var path, query string
	var hasQuery, hasHeaders bool
	var headers spop.Value
	for _, kv := range msg.Args {
		v := kv.Value
		switch kv.Name {
		case "src-ip":
			in.src = v.Addr().Unmap()
		case "src-port":
			in.srcPort = uint16(v.Uint())
		case "dst-ip":
			if a := v.Addr(); a.IsValid() {
				in.req.ServerIP = a.Unmap().String()
			}
		case "dst-port":
			in.req.ServerPort = int(uint16(v.Uint()))
		case "method":
			in.req.Method = v.Text()
		case "path":
			path = v.Text()
		case "query":
			query, hasQuery = v.Text(), !v.IsNull()
		case "version":
			in.req.Proto = "HTTP/" + v.Text()
		case "headers":
			headers, hasHeaders = v, !v.IsNull()
		case "body":
			in.body = v.Text()
		case "body-size", "body_size":
			if !v.IsNull() {
				in.bodySize = int64(v.Uint())
			}
		case "id":
			in.id = v.Text()
		case "client":
			in.client = v.Text()
		}
	}
	switch {
	case !in.src.IsValid():
		return nil, errors.New("argument src-ip: missing or not an address (args ... src-ip=src)")
	case in.req.Method == "" || len(in.req.Method) > maxArgText:
		return nil, errors.New("argument method: missing or too long (args ... method=method)")
	case path == "":
		return nil, errors.New("argument path: missing (args ... path=path)")
	case !hasHeaders:
		return nil, errors.New("argument headers: missing (args ... headers=req.hdrs_bin, or req.hdrs)")
	case len(in.req.Proto) > maxArgText || len(in.id) > maxArgText:
		return nil, errors.New("argument version or id: too long")
	}
	if in.req.Proto == "HTTP/" {
		in.req.Proto = "HTTP/1.1"
	}
	in.req.URI = path
	if hasQuery {
		in.req.URI += "?" + query
	}
	var err error
	if headers.Type() == spop.TypeBinary {
		in.req.Header, err = binaryHeaders(headers.Text())
	} else {
		in.req.Header, err = textHeaders(headers.Text())
	}
	if err != nil {
		return nil, fmt.Errorf("argument headers: %w", err)
	}
	// As net/http does for the HTTP proxy: Host and Transfer-Encoding out
	// of the map (verdict gives them back to Coraza), the Host kept as the
	// client sent it.
	if hosts, ok := in.req.Header["Host"]; ok {
		in.req.Host = hosts[0]
		in.req.EmptyHost = hosts[0] == ""
		delete(in.req.Header, "Host")
	}
	if te, ok := in.req.Header["Transfer-Encoding"]; ok {
		in.req.TransferEncoding = te
		delete(in.req.Header, "Transfer-Encoding")
	}
	if in.bodySize < 0 {
		if cl := in.req.Header.Get("Content-Length"); cl != "" {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
				in.bodySize = n
			}
		}
	}
	return in, nil
}

// binaryHeaders reads req.hdrs_bin (spop.ParseHdrsBin), which is exact:
// a value may hold any byte HAProxy let through.
func binaryHeaders(s string) (http.Header, error) {
	hs, err := spop.ParseHdrsBin(s)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(hs))
	for _, f := range hs {
		k := http.CanonicalHeaderKey(f.Name)
		h[k] = append(h[k], f.Value)
	}
	return h, nil
}

// textHeaders reads req.hdrs: "name: value" lines, CRLF-ended, then an
// empty line (which says the block is whole).
func textHeaders(s string) (http.Header, error) {
	h := http.Header{}
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.TrimSpace(name) != name {
			return nil, fmt.Errorf("req.hdrs: not a header line: %.64q", line)
		}
		k := http.CanonicalHeaderKey(name)
		h[k] = append(h[k], strings.Trim(value, " \t"))
	}
	return h, nil
}
