package gates

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wafcanary/wafcanary/localfile"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Case is one request a candidate must let through or must block.
type Case struct {
	Name    string            `yaml:"name" json:"name"`
	Method  string            `yaml:"method" json:"method"`
	Path    string            `yaml:"path" json:"path"` // request target, query included, sent as written
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	Body    string            `yaml:"body,omitempty" json:"body,omitempty"`
}

// Cases is a candidate's cases file: the false positives it fixes
// (must_pass) and the attacks on the same endpoints it must still block
// (must_block).
type Cases struct {
	MustPass  []Case `yaml:"must_pass" json:"must_pass"`
	MustBlock []Case `yaml:"must_block" json:"must_block"`
}

// MaxCasesBytes bounds a cases file: a path given to the admin API's
// start can name any file on the server.
const MaxCasesBytes = 1 << 20

// LoadCases reads a cases file strictly: an unknown key is an error, so a
// misspelt must_block cannot silently check nothing. "embedded:NAME" reads
// from fsys; any other path through localfile (a regular file of at most
// MaxCasesBytes). Like ParseCases's, its errors never quote the file.
func LoadCases(path string, embedded fs.FS) (Cases, error) {
	var b []byte
	var err error
	if name, ok := strings.CutPrefix(path, "embedded:"); ok {
		if b, err = fs.ReadFile(embedded, name); err != nil {
			return Cases{}, fmt.Errorf("cases %s: %w", path, err)
		}
	} else if b, err = localfile.Read(path, MaxCasesBytes); err != nil {
		return Cases{}, fmt.Errorf("cases %w", err) // localfile's error starts with the path
	}
	return ParseCases(path, b)
}

// ParseCases reads a cases file's content; path names it in errors. Every
// case is checked to make a request here, so that a bad method or path is
// refused when the file is read, not when the gates run. A file that is
// not a cases file is refused with its line and what is wrong, never with
// its content: the path can be any file on the server, and YAML's own
// errors quote the line they fail on (an /etc/shadow entry, whole).
func ParseCases(path string, b []byte) (Cases, error) {
	var cs Cases
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cs); err != nil && !errors.Is(err, io.EOF) { // EOF: empty, no cases
		return Cases{}, fmt.Errorf("cases %s: %w", path, notCases(err))
	}
	for kind, list := range map[string][]Case{"must_pass": cs.MustPass, "must_block": cs.MustBlock} {
		for i, c := range list {
			switch {
			case c.Name == "":
				return Cases{}, fmt.Errorf("cases %s: %s[%d].name: required", path, kind, i)
			case !strings.HasPrefix(c.Path, "/"):
				return Cases{}, fmt.Errorf("cases %s: %s[%d].path: must start with /, got %q", path, kind, i, c.Path)
			}
			if _, err := c.request(); err != nil {
				return Cases{}, fmt.Errorf("cases %s: %s[%d]: %w", path, kind, i, err)
			}
		}
	}
	if len(cs.MustPass)+len(cs.MustBlock) == 0 {
		return Cases{}, fmt.Errorf("cases %s: no must_pass or must_block cases", path)
	}
	return cs, nil
}

// request builds the case's request as a browser would send it, unless
// the case's headers say otherwise. A body goes with its Content-Length,
// or chunked when the case has "Transfer-Encoding: chunked".
func (c Case) request() (*http.Request, error) {
	method := c.Method
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequest(method, "http://probe.wafcanary.invalid"+c.Path, strings.NewReader(c.Body))
	if err != nil {
		return nil, fmt.Errorf("case %q: %w", c.Name, err)
	}
	r.RequestURI = c.Path
	r.Host = "www.example.com"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	chunked := false
	for k, v := range c.Headers {
		switch {
		case strings.EqualFold(k, "Host"):
			r.Host = v
		case strings.EqualFold(k, "Transfer-Encoding"):
			// As net/http reads it off the wire: out of the header map,
			// and no Content-Length. CRS tells a chunked body apart
			// (920640 blocks one without a Content-Type, 920340 only one
			// with a Content-Length).
			if !strings.EqualFold(strings.TrimSpace(v), "chunked") {
				return nil, fmt.Errorf("case %q: header Transfer-Encoding: only chunked is sent, got %q", c.Name, v)
			}
			chunked = true
		default:
			r.Header.Set(k, v)
		}
	}
	switch {
	case chunked:
		r.TransferEncoding, r.ContentLength = []string{"chunked"}, -1
		r.Header.Del("Content-Length")
	case c.Body != "":
		r.Header.Set("Content-Length", fmt.Sprint(len(c.Body)))
	}
	return r, nil
}

// Judge sends c to rs in process and returns the verdict.
func Judge(ctx context.Context, rs *ruleset.Ruleset, c Case) (verdict.Verdict, error) {
	r, err := c.request()
	if err != nil {
		return verdict.Verdict{}, err
	}
	return verdict.JudgeHTTP(ctx, rs, "case-"+c.Name, r)
}

// Failure is a case the candidate got wrong.
type Failure struct {
	Kind  string `json:"kind"` // must_pass or must_block
	Case  string `json:"case"`
	Rules []int  `json:"rules,omitempty"`
}

func (f Failure) String() string {
	if f.Kind == "must_pass" {
		return fmt.Sprintf("must_pass case %q is blocked by the candidate (rules %v)", f.Case, f.Rules)
	}
	return fmt.Sprintf("must_block case %q is let through by the candidate", f.Case)
}

// Check runs every case against the candidate in process.
func Check(ctx context.Context, cand *ruleset.Ruleset, cs Cases) ([]Failure, error) {
	var out []Failure
	for kind, list := range map[string][]Case{"must_pass": cs.MustPass, "must_block": cs.MustBlock} {
		for _, c := range list {
			v, err := Judge(ctx, cand, c)
			if err != nil {
				return nil, err
			}
			if v.Blocked != (kind == "must_block") {
				out = append(out, Failure{Kind: kind, Case: c.Name, Rules: v.RuleIDs()})
			}
		}
	}
	return out, nil
}
