package ruleset

import (
	"io/fs"
	"slices"
	"strconv"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// Directive is one SecLang directive from a local file of a ruleset.
type Directive struct {
	File string // relative to the ruleset's directory
	Line int    // where the directive starts
	Name string // as written, e.g. SecRuleRemoveById
	Args string
}

// Directives lists the directives of the ruleset's local files in the order
// Coraza applied them, Include lines included; the CRS, embedded or from
// a directory, is passed over. Guards use it to say which line does what.
func (r *Ruleset) Directives() []Directive {
	var out []Directive
	if len(r.Files) == 0 {
		return nil
	}
	route := (&sourceFS{}).route
	w := &walker{files: r.Files, route: route, visit: func(file string, line int, d string) bool {
		if strings.HasPrefix(file, "@") {
			return false // the CRS's own
		}
		name, args, _ := strings.Cut(d, " ")
		out = append(out, Directive{File: file, Line: line, Name: name, Args: strings.TrimSpace(args)})
		return false
	}}
	w.walk(r.Files[0].Name)
	return out
}

// chainLinks maps each chained rule's ID to its links after the first, as
// written ("VARS op", quotes off, one per line), for every rule the
// ruleset loads, the CRS's included: what Rule, read from the first link,
// leaves out.
func (r *Ruleset) chainLinks() map[int]string {
	out := map[int]string{}
	if len(r.Files) == 0 {
		return out
	}
	// The embedded CRS's files are kept without their content (the
	// binary holds it): read it back for the walk.
	files := slices.Clone(r.Files)
	for i, f := range files {
		if f.Embedded && f.Content == nil {
			files[i].Content, _ = fs.ReadFile(coreruleset.FS, f.Name)
		}
	}
	var ds []Directive
	w := &walker{files: files, route: (&sourceFS{}).route, visit: func(file string, line int, d string) bool {
		name, args, _ := strings.Cut(d, " ")
		ds = append(ds, Directive{File: file, Line: line, Name: name, Args: strings.TrimSpace(args)})
		return false
	}}
	w.walk(r.Files[0].Name)
	for _, chain := range Chains(ds) {
		if len(chain) < 2 {
			continue
		}
		id := 0
		for _, a := range chain[0].Actions() {
			if k, v := SplitAction(a); k == "id" {
				id, _ = strconv.Atoi(Unquote(v))
			}
		}
		if id == 0 {
			continue
		}
		links := make([]string, 0, len(chain)-1)
		for _, d := range chain[1:] {
			if f := d.Fields(); len(f) > 1 {
				links = append(links, Unquote(f[0])+" "+Unquote(f[1]))
			}
		}
		out[id] = strings.Join(links, "\n")
	}
	return out
}
