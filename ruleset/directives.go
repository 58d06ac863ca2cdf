package ruleset

import "strings"

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
