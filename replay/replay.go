// Package replay judges recorded traffic by a baseline and a candidate
// ruleset, before anyone is exposed to the candidate: it reads the
// requests of audit logs (libmodsecurity v3 and mod_security2 JSON,
// Coraza's JSON), browser exports (HAR 1.2) and wafcanary's own captures,
// pairs each through router.Engine.Pair on every core, and holds the
// pairs against the controller's own checks (new_blocks, lost_blocks)
// with the scope start would infer. Where the log recorded what the WAF
// that wrote it decided, it also measures how often the baseline, on
// wafcanary, decides the same: the migration check.
//
// Logs are streamed, never loaded whole: a record is at most
// Options.MaxRecordBytes. A record that cannot be read is counted and
// reported with its file and line, and reading goes on.
package replay

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/wafcanary/wafcanary/verdict"
)

// Format names a kind of recorded traffic.
type Format string

// The formats replay reads. Auto detects each file's from its first
// bytes.
const (
	Auto Format = "auto"
	// ModSec3 is libmodsecurity v3's JSON audit log (nginx): serial, one
	// transaction a line, or the files of a concurrent log.
	ModSec3 Format = "modsec3-json"
	// ModSec2 is mod_security2's JSON audit log (Apache).
	ModSec2 Format = "modsec2-json"
	// Coraza is Coraza's JSON audit log (SecAuditLogFormat JSON).
	Coraza Format = "coraza-json"
	// HAR is an HTTP Archive 1.2, as browsers export it.
	HAR Format = "har"
	// Captures are wafcanary's captured blocks (state_dir/captures).
	Captures Format = "captures"
	// concurrentIndex is a concurrent audit log's index (either
	// ModSecurity): a line per transaction naming its file.
	concurrentIndex Format = "modsec-concurrent-index"
	// capturesIndex is the captures store's index of signatures: no
	// requests.
	capturesIndex Format = "captures-index"
)

// Formats lists the formats a user may name, for flags and messages.
var Formats = []Format{Auto, ModSec3, ModSec2, Coraza, HAR, Captures}

// ParseFormat reads a format's name.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("must be one of %s, got %q", strings.Join(names, ", "), s)
}

// Position is where a record sits in its file: the line it starts on
// (from 1), and for a HAR file the entry's index too.
type Position struct {
	File string `json:"file"`
	Line int    `json:"line"`
	// Entry is a HAR entry's index in log.entries, from 0; -1 otherwise.
	Entry int `json:"entry,omitempty"`
}

func (p Position) String() string {
	if p.Entry >= 0 && p.Line > 0 {
		return fmt.Sprintf("%s:%d (entry %d)", p.File, p.Line, p.Entry)
	}
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// Entry is one recorded request, ready to be judged.
type Entry struct {
	Pos     Position
	Format  Format
	Request verdict.Request
	// Body is the request body as recorded (nil for none).
	Body []byte
	// BodyMissing is set when the request had a body the record does not
	// hold (ModSecurity without audit part C, a body it did not read, a
	// capture that kept none): it is judged without it.
	BodyMissing bool
	// Lossy is set when the record could not keep the request byte for
	// byte (Coraza's JSON replaces bytes that are not UTF-8; captures are
	// redacted).
	Lossy bool
	// Logged is what the WAF that wrote the record decided in the request
	// phases; nil when the record does not say.
	Logged *Logged
}

// Logged is a recorded verdict.
type Logged struct {
	Blocked bool
	// Rules are the rules the record names (its messages).
	Rules []int
	// InResponse is set when the recorded block came from a response
	// phase (959100, outbound): replay judges the request phases only,
	// so such a record is not compared.
	InResponse bool
	// Unjudged is set when the WAF never reached a request verdict: the
	// server refused the request before its request-body phase ran
	// (mod_security2's stopwatch shows no phase 2), so there is nothing
	// to compare.
	Unjudged bool
}

// Problem is a record or a file that could not be read.
type Problem struct {
	Pos Position `json:"position"`
	Err string   `json:"error"`
}

func (p Problem) String() string { return p.Pos.String() + ": " + p.Err }

// request builds the verdict.Request of a recorded request whose headers
// are given in order, names as logged: Host and Transfer-Encoding move to
// their fields, as net/http moves them on the live path, repeated names
// are kept.
func request(id, method, uri, proto string, headers [][2]string) verdict.Request {
	r := verdict.Request{ID: id, Method: method, URI: uri, Proto: proto, Header: http.Header{}, ClientIP: "127.0.0.1", ClientPort: 40000}
	hostSeen := false
	for _, h := range headers {
		switch {
		case strings.EqualFold(h[0], "Host"):
			if !hostSeen {
				r.Host, hostSeen = h[1], true
				r.EmptyHost = h[1] == ""
				continue
			}
		case strings.EqualFold(h[0], "Transfer-Encoding"):
			r.TransferEncoding = append(r.TransferEncoding, h[1])
			continue
		}
		r.Header[h[0]] = append(r.Header[h[0]], h[1])
	}
	return r
}

// hadBody reports whether r's headers announce a body.
func hadBody(r *verdict.Request) bool {
	if len(r.TransferEncoding) > 0 {
		return true
	}
	for k, vs := range r.Header {
		if strings.EqualFold(k, "Content-Length") && len(vs) > 0 && vs[0] != "0" && vs[0] != "" {
			return true
		}
	}
	return false
}

// protoOf turns a logged HTTP version (1.1, 2, 2.0, HTTP/1.1) into the
// protocol Coraza is fed (HTTP/1.1, HTTP/2.0).
func protoOf(v string) string {
	v = strings.TrimPrefix(v, "HTTP/")
	if v == "" {
		return "HTTP/1.1"
	}
	if !strings.Contains(v, ".") {
		v += ".0"
	}
	return "HTTP/" + v
}
