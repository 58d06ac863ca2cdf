// Package suite runs the OWASP Core Rule Set's own regression tests (the
// go-ftw YAML format) through a running wafcanary over HTTP, and compares
// two rulesets case by case: the check that an exclusion changed nothing
// in CRS's coverage except what it meant to.
package suite

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Case is one test of the suite: one or more requests (stages), each with
// the outcome CRS expects.
type Case struct {
	// ID is "RULE-TEST", such as "942100-3", as go-ftw names it.
	ID     string
	RuleID int
	TestID int
	// File is the YAML file the case came from.
	File   string
	Desc   string
	Stages []Stage
}

// Stage is one request and its expected outcome.
type Stage struct {
	Input  Input
	Output Output
}

// Input is a request as the test describes it.
type Input struct {
	Method, URI, Version string
	Headers              []Header // in file order
	Data                 string
	// Raw, when set, is sent byte for byte instead of a request built
	// from the other fields (go-ftw's encoded_request).
	Raw []byte
	// Autocomplete adds Content-Type, Content-Length and Connection: close
	// where missing, and form-encodes data, as go-ftw does.
	Autocomplete bool
}

// Header is one request header.
type Header struct{ Name, Value string }

// Output is what a stage must produce. Unset parts are not checked.
type Output struct {
	// Status, when not empty, lists the acceptable response statuses.
	Status []int
	// ExpectIDs must all be among the rules wafcanary recorded for the
	// request, and NoExpectIDs none of them.
	ExpectIDs, NoExpectIDs []int
	// MatchRegex must match, and NoMatchRegex must not match, one of the
	// request's log lines (see logLines).
	MatchRegex, NoMatchRegex *regexp.Regexp
	// ExpectError means the request must fail at the HTTP level (the
	// connection refused or closed without a response).
	ExpectError bool
	// RetryOnce repeats a failing stage once.
	RetryOnce bool
}

// The YAML shapes. Decoding is strict: an assertion kind this runner does
// not know must fail loudly, not pass by being ignored.
type (
	fileYAML struct {
		Meta   yaml.Node  `yaml:"meta"`
		Author string     `yaml:"author"` // meta.author misplaced, as in 932271.yaml
		RuleID int        `yaml:"rule_id"`
		Tests  []testYAML `yaml:"tests"`
	}
	testYAML struct {
		TestID int         `yaml:"test_id"`
		Desc   string      `yaml:"desc"`
		Stages []stageYAML `yaml:"stages"`
	}
	stageYAML struct {
		Input  inputYAML  `yaml:"input"`
		Output outputYAML `yaml:"output"`
	}
	inputYAML struct {
		DestAddr       string    `yaml:"dest_addr"` // replaced by the target's address
		Port           int       `yaml:"port"`      // likewise
		Method         *string   `yaml:"method"`
		URI            *string   `yaml:"uri"`
		Version        *string   `yaml:"version"`
		Headers        yaml.Node `yaml:"headers"`
		Data           string    `yaml:"data"`
		EncodedRequest string    `yaml:"encoded_request"`
		Autocomplete   *bool     `yaml:"autocomplete_headers"`
	}
	outputYAML struct {
		Status      yaml.Node `yaml:"status"`
		ExpectError bool      `yaml:"expect_error"`
		RetryOnce   bool      `yaml:"retry_once"`
		Log         struct {
			ExpectIDs    []int  `yaml:"expect_ids"`
			NoExpectIDs  []int  `yaml:"no_expect_ids"`
			MatchRegex   string `yaml:"match_regex"`
			NoMatchRegex string `yaml:"no_match_regex"`
		} `yaml:"log"`
	}
)

// Load reads every *.yaml file under fsys, in lexical order, into cases.
func Load(fsys fs.FS) ([]Case, error) {
	var cases []Case
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		cs, err := Parse(p, b)
		if err != nil {
			return err
		}
		cases = append(cases, cs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(cases, func(i, j int) bool {
		if cases[i].RuleID != cases[j].RuleID {
			return cases[i].RuleID < cases[j].RuleID
		}
		return cases[i].TestID < cases[j].TestID
	})
	return cases, nil
}

// Parse reads one go-ftw YAML file; name is used in errors and Case.File.
func Parse(name string, b []byte) ([]Case, error) {
	var f fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err == io.EOF {
		return nil, nil // all comments: CRS keeps such files to quiet its linter
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if f.RuleID == 0 {
		return nil, fmt.Errorf("%s: rule_id: required", name)
	}
	cases := make([]Case, 0, len(f.Tests))
	for i, t := range f.Tests {
		c := Case{
			ID:     fmt.Sprintf("%d-%d", f.RuleID, t.TestID),
			RuleID: f.RuleID, TestID: t.TestID, File: name, Desc: strings.TrimSpace(t.Desc),
		}
		if len(t.Stages) == 0 {
			return nil, fmt.Errorf("%s: tests[%d] (%s): no stages", name, i, c.ID)
		}
		for j, s := range t.Stages {
			st, err := s.stage()
			if err != nil {
				return nil, fmt.Errorf("%s: %s stage %d: %w", name, c.ID, j+1, err)
			}
			c.Stages = append(c.Stages, st)
		}
		cases = append(cases, c)
	}
	return cases, nil
}

func (s stageYAML) stage() (Stage, error) {
	in := Input{Method: "GET", URI: "/", Version: "HTTP/1.1", Data: s.Input.Data, Autocomplete: true}
	for dst, src := range map[*string]*string{&in.Method: s.Input.Method, &in.URI: s.Input.URI, &in.Version: s.Input.Version} {
		if src != nil {
			*dst = *src
		}
	}
	if strings.Contains(in.Data, "{{") {
		d, err := render(in.Data)
		if err != nil {
			return Stage{}, fmt.Errorf("input.data: %w", err)
		}
		in.Data = d
	}
	if s.Input.Autocomplete != nil {
		in.Autocomplete = *s.Input.Autocomplete
	}
	if h := s.Input.Headers; h.Kind != 0 {
		if h.Kind != yaml.MappingNode {
			return Stage{}, fmt.Errorf("input.headers: want a mapping, line %d", h.Line)
		}
		for k := 0; k+1 < len(h.Content); k += 2 {
			in.Headers = append(in.Headers, Header{Name: h.Content[k].Value, Value: h.Content[k+1].Value})
		}
	}
	if e := s.Input.EncodedRequest; e != "" {
		if in.Data != "" {
			return Stage{}, fmt.Errorf("input: data and encoded_request are exclusive")
		}
		raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(e), ""))
		if err != nil {
			return Stage{}, fmt.Errorf("input.encoded_request: %w", err)
		}
		in.Raw = raw
	}

	o := s.Output
	out := Output{
		ExpectIDs: o.Log.ExpectIDs, NoExpectIDs: o.Log.NoExpectIDs,
		ExpectError: o.ExpectError, RetryOnce: o.RetryOnce,
	}
	switch st := o.Status; st.Kind {
	case 0:
	case yaml.ScalarNode:
		n, err := strconv.Atoi(st.Value)
		if err != nil {
			return Stage{}, fmt.Errorf("output.status: %w", err)
		}
		out.Status = []int{n}
	case yaml.SequenceNode:
		if err := st.Decode(&out.Status); err != nil {
			return Stage{}, fmt.Errorf("output.status: %w", err)
		}
	default:
		return Stage{}, fmt.Errorf("output.status: want a number or a list, line %d", st.Line)
	}
	for dst, src := range map[**regexp.Regexp]string{&out.MatchRegex: o.Log.MatchRegex, &out.NoMatchRegex: o.Log.NoMatchRegex} {
		if src == "" {
			continue
		}
		re, err := regexp.Compile(src)
		if err != nil {
			return Stage{}, fmt.Errorf("output.log: regex %q: %w", src, err)
		}
		*dst = re
	}
	return Stage{Input: in, Output: out}, nil
}

// render expands go-ftw's data templates. go-ftw offers the sprig
// functions; the suite uses only repeat (large bodies), so that is what is
// offered here, and any other function is an error rather than a body sent
// with the template text in it.
func render(data string) (string, error) {
	t, err := template.New("data").Funcs(template.FuncMap{
		"repeat": func(count int, s string) string { return strings.Repeat(s, count) },
	}).Parse(data)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}
