package gates

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wafcanary/wafcanary/config"
)

// ErrNotCases is a file that is not a cases file: not YAML, or YAML of
// another shape.
var ErrNotCases = errors.New("not a cases file")

// notCases says why a cases file did not decode, by line, in words of its
// own: YAML's messages quote the file (the value it could not decode, the
// key it did not know), and the file can be any file on the server. The
// keys a cases file has are named; the file's are not.
func notCases(err error) error {
	msg := err.Error()
	if te, ok := errors.AsType[*yaml.TypeError](err); ok && len(te.Errors) > 0 {
		msg = te.Errors[0] // the first, by line
		for _, k := range typeErrors {
			if m := k.re.FindStringSubmatch(msg); m != nil {
				return fmt.Errorf("line %s: %w (%s)", m[1], ErrNotCases, k.what(m))
			}
		}
		if m := lineOf.FindStringSubmatch(msg); m != nil {
			return fmt.Errorf("line %s: %w (not what a cases file holds)", m[1], ErrNotCases)
		}
		return fmt.Errorf("%w (not what a cases file holds)", ErrNotCases)
	}
	if m := syntaxError.FindStringSubmatch(msg); m != nil {
		what := "YAML syntax error"
		if slices.Contains(yamlProblems, m[2]) {
			what += ": " + m[2]
		}
		return fmt.Errorf("line %s: %w (%s)", m[1], ErrNotCases, what)
	}
	return fmt.Errorf("%w (not YAML text)", ErrNotCases)
}

var (
	lineOf      = regexp.MustCompile(`^line (\d+): `)
	syntaxError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// typeErrors are go.yaml.in/yaml/v3's decoding errors, each said without
// what the file holds.
var typeErrors = []struct {
	re   *regexp.Regexp
	what func(m []string) string
}{
	{regexp.MustCompile(`^line (\d+): field (.*) not found in type (\S+)$`), func(m []string) string {
		keys := knownKeys[m[3]]
		if k := nearest(m[2], keys); k != "" {
			return "unknown key; did you mean " + k + "?"
		}
		return "unknown key; " + describeType(m[3]) + " has " + strings.Join(keys, ", ")
	}},
	{regexp.MustCompile(`^line (\d+): cannot unmarshal (!!\w+)\b.* into (\S+)$`), func(m []string) string {
		return tagWords(m[2]) + " where " + describeType(m[3]) + " belongs"
	}},
	{regexp.MustCompile(`^line (\d+): (?:mapping key .* already defined|field .* already set) `), func([]string) string {
		return "a key given twice"
	}},
}

// knownKeys are the keys of the types a cases file decodes into.
var knownKeys = map[string][]string{
	"gates.Cases": {"must_pass", "must_block"},
	"gates.Case":  {"name", "method", "path", "headers", "body"},
}

func describeType(t string) string {
	switch t {
	case "gates.Cases":
		return "a cases file (a mapping)"
	case "gates.Case":
		return "a case (a mapping)"
	case "[]gates.Case":
		return "a list of cases"
	case "map[string]string":
		return "a mapping of header names to values"
	case "string":
		return "a string"
	}
	return "a value"
}

func tagWords(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "null"
	}
	return "a value"
}

// nearest is the key within two edits of got, "" if none: a misspelt
// must_block is named, anything else is not repeated.
func nearest(got string, keys []string) string {
	for _, k := range keys {
		if config.Distance(strings.ToLower(got), k) <= 2 {
			return k
		}
	}
	return ""
}

// yamlProblems are libyaml's syntax problems as go.yaml.in/yaml/v3 words
// them: fixed texts, shown whole. Any other message may quote the file
// (an unknown anchor's name) and is said as "YAML syntax error" alone.
var yamlProblems = []string{
	"did not find expected key",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"could not find expected ':'",
	"mapping values are not allowed in this context",
	"block sequence entries are not allowed in this context",
	"found character that cannot start any token",
	"found a tab character that violates indentation",
	"found unexpected end of stream",
	"found unknown escape character",
	"found unexpected ':'",
	"control characters are not allowed",
	"invalid leading UTF-8 octet",
	"invalid trailing UTF-8 octet",
	"invalid Unicode character",
}
