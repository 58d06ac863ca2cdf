package exclusion

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/wafcanary/wafcanary/ruleset"
)

// insertion is where the exclusion goes in the baseline's main file, and
// the rule ID it takes.
type insertion struct {
	file string // the baseline's main file
	line int    // the CRS rules Include, 1-based: the exclusion goes before it
	id   int
}

// firstLocalID is where exclusion IDs start: CRS leaves 1-99,999 to a
// site's own rules, and the shipped candidate uses 10000.
const firstLocalID = 10000

// insertionPoint finds the Include that brings in the CRS rules. A ctl:
// exclusion changes only rules that run after it, so it must come before
// that line; a configure-time SecRuleUpdateTargetById would go after it
// but could not be limited to a path or a host.
func insertionPoint(base *ruleset.Ruleset) (insertion, error) {
	if len(base.Files) == 0 || base.Files[0].Embedded {
		return insertion{}, fmt.Errorf("the baseline's main file is not its own: nothing to add an exclusion to")
	}
	main := base.Files[0].Name
	ins := insertion{file: main}
	for _, d := range base.Directives() {
		if !strings.EqualFold(d.Name, "Include") || !strings.Contains(strings.Trim(d.Args, `"'`), "@owasp_crs/") {
			continue
		}
		if d.File != main {
			return insertion{}, fmt.Errorf("the baseline includes the CRS rules from %s:%d, not from its main file %s: add the exclusion before that line by hand", d.File, d.Line, main)
		}
		ins.line = d.Line
		break
	}
	if ins.line == 0 {
		return insertion{}, fmt.Errorf("the baseline %s has no Include of @owasp_crs/ rules: there is no CRS rule to exclude from", main)
	}
	for ins.id = firstLocalID; ; ins.id++ {
		if _, used := base.Rule(ins.id); !used {
			break
		}
	}
	return ins, nil
}

// seclang writes the exclusion rule with the comment that says what it
// does and why. The ctl actions sit on the chain's last link: Coraza runs
// a link's non-disruptive actions when that link matches, so on the first
// link they would apply on every host.
func (t *tuner) seclang(rms []Removal) string {
	var b strings.Builder
	where := t.path
	if t.prefix {
		where += " and below"
	}
	if t.host != "" {
		where = hostHeader(t.host) + where
	} else {
		where = "every host, " + where
	}
	var targets, rules []string
	for _, rm := range rms {
		if !slices.Contains(targets, rm.Target) {
			targets = append(targets, rm.Target)
		}
		if r := fmt.Sprint(rm.Rule); !slices.Contains(rules, r) {
			rules = append(rules, r)
		}
	}
	fmt.Fprintf(&b, "# --- wafcanary tune: exclusion %d, %s ---\n", t.insert.id, t.opt.Now.UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "# Lets through request(s) %s, blocked by %s %s:\n", strings.Join(t.ids, ", "), t.tuned(), short(t.base.Version))
	for _, rm := range rms {
		msg := ""
		if r, ok := t.base.Rule(rm.Rule); ok && r.File != "" && r.Line > 0 {
			msg = fmt.Sprintf(" (%s:%d)", path.Base(r.File), r.Line)
		}
		fmt.Fprintf(&b, "#   rule %d matched %s%s\n", rm.Rule, rm.Target, msg)
	}
	fmt.Fprintf(&b, "# Only these rules lose only %s, only on %s: every\n", strings.Join(targets, ", "), where)
	b.WriteString("# other rule still inspects it, and the cases file holds attacks in it that\n")
	b.WriteString("# must stay blocked. It sits before the CRS rules include because a ctl:\n")
	b.WriteString("# exclusion changes only the rules that run after it.\n")
	if slices.Contains(rms, Removal{bodyWithoutType, bodyLength}) {
		fmt.Fprintf(&b, "# Rule %d then lets a body without a Content-Type through here. CRS still\n", bodyWithoutType)
		b.WriteString("# parses such a body as a form (rule 901340) and every other rule reads it:\n")
		fmt.Fprintf(&b, "# the attacks \"in %s\" were sent as that whole body, untyped.\n", bodyLength)
	}
	op, cond := t.pathCondition()
	msg := fmt.Sprintf("wafcanary tune: exclude %s from %s on %s", strings.Join(targets, ", "), strings.Join(rules, ", "), where)
	ctls := make([]string, len(rms))
	for i, rm := range rms {
		ctls[i] = "ctl:ruleRemoveTargetById=" + rm.String()
	}
	fmt.Fprintf(&b, "SecRule %s \"%s\" \\\n    \"id:%d,\\\n    phase:1,\\\n    pass,\\\n    t:none,\\\n    nolog,\\\n    msg:'%s',\\\n", op, cond, t.insert.id, msg)
	b.WriteString(t.metaLines())
	if t.host == "" {
		fmt.Fprintf(&b, "    %s\"\n", strings.Join(ctls, ",\\\n    "))
		return b.String()
	}
	b.WriteString("    chain\"\n")
	fmt.Fprintf(&b, "    SecRule REQUEST_HEADERS:Host \"@rx %s\" \\\n        \"t:none,t:lowercase,\\\n        %s\"\n",
		hostPattern(t.host), strings.Join(ctls, ",\\\n        "))
	return b.String()
}

// metaLines are the rule's metadata tags, one action line each, for the
// exceptions inventory: who owns the exception, until when, and why.
func (t *tuner) metaLines() string {
	var b strings.Builder
	for _, tag := range t.opt.Meta.Tags() {
		fmt.Fprintf(&b, "    %s,\\\n", tag)
	}
	return b.String()
}

// pathCondition is the variable and operator that hold on the tuner's
// path: exactly it, or with --path it and the paths below it, anchored
// with \A and \z, not ^ and $: Coraza compiles @rx with (?m), where ^
// also matches after a newline, which a path may hold (%0A), so
// ^/api/notes would match /admin%0A/api/notes.
func (t *tuner) pathCondition() (op, cond string) {
	if t.prefix {
		return "REQUEST_FILENAME", `@rx \A` + regexp.QuoteMeta(t.path) + `(?:/|\z)`
	}
	return "REQUEST_FILENAME", "@streq " + t.path
}

// text is what the candidate adds to the baseline: the allowance, if a
// policy list is changed, then the exclusion, if a rule loses a variable.
func (t *tuner) text(rms []Removal) string {
	s := t.allowSecLang()
	if len(rms) > 0 {
		if s != "" {
			s += "\n"
		}
		s += t.seclang(rms)
	}
	return s
}

// additions names the rules text writes, for the candidate's header.
func (t *tuner) additions(rms []Removal) string {
	var parts []string
	if len(t.allow) > 0 {
		parts = append(parts, fmt.Sprintf("allowance %d", t.allow[0].RuleID))
	}
	if len(rms) > 0 {
		parts = append(parts, fmt.Sprintf("exclusion %d", t.insert.id))
	}
	return strings.Join(parts, " and ")
}

// hostPattern matches the Host headers that name host h, lower-cased: h
// with or without a port, a name also with a trailing dot, an IPv6 address
// in the brackets a Host header writes it in ([::1]:8080).
func hostPattern(h string) string {
	if strings.Contains(h, ":") {
		return `^\[` + regexp.QuoteMeta(h) + `\](?::[0-9]+)?$`
	}
	return "^" + regexp.QuoteMeta(h) + `\.?(?::[0-9]+)?$`
}

// writable refuses text tune would insert into a rules file that holds a
// character a terminal, an editor or `git diff` would act on, or a line
// longer than Coraza reads. What comes from a request is checked where it
// is read (the path, the targets); this is the last look, at the text.
func writable(text string) error {
	for i, line := range strings.Split(text, "\n") {
		if len(line) > maxRuleLine {
			return fmt.Errorf("%w: the exclusion's line %d would be %d bytes, longer than the %d Coraza reads from a rules file; the variables' names are too long to write", ErrRefused, i+1, len(line), maxRuleLine)
		}
		if !printable(line) {
			return fmt.Errorf("%w: the exclusion's line %d would hold a control, bidirectional or invalid character: %s", ErrRefused, i+1, strconv.Quote(line))
		}
	}
	return nil
}

// compile builds the candidate for the tuner's search: the baseline's
// files with its text for rms, and that of the batch already written,
// inserted into the main file, renamed to the output's name.
func (t *tuner) compile(rms []Removal) (*ruleset.Ruleset, map[string][]byte, error) {
	text, adds := slices.Clone(t.batch.text), slices.Clone(t.batch.adds)
	text[t.index], adds[t.index] = t.text(rms), t.additions(rms)
	return t.build(text, adds)
}

// compileAll builds the candidate with every text of the batch.
func (t *tuner) compileAll() (*ruleset.Ruleset, map[string][]byte, error) {
	return t.build(t.batch.text, t.batch.adds)
}

// build compiles the baseline with texts inserted before its CRS rules
// include, under a head that names the rules adds lists and records the
// baseline's version (RecordedBase), so that start can tell a candidate
// written from a baseline that no longer serves.
func (t *tuner) build(texts, adds []string) (*ruleset.Ruleset, map[string][]byte, error) {
	files := map[string][]byte{}
	for name, content := range t.bundle.Files {
		if name != t.bundle.Main {
			files[name] = content
		}
	}
	lines := strings.SplitAfter(string(t.bundle.Files[t.bundle.Main]), "\n")
	if t.insert.line > len(lines) {
		return nil, nil, fmt.Errorf("%s's bundle does not hold the file it was compiled from (line %d of %s)", t.tuned(), t.insert.line, t.bundle.Main)
	}
	var named []string
	var body strings.Builder
	for i, text := range texts {
		if text == "" {
			continue
		}
		named = append(named, adds[i])
		body.WriteString(text)
		body.WriteString("\n")
	}
	var head strings.Builder
	fmt.Fprintf(&head, "# wafcanary candidate, written by `wafcanary tune` on %s: %s\n", t.opt.Now.UTC().Format("2006-01-02 15:04Z"), t.tuned())
	fmt.Fprintf(&head, "# %s (%s) verbatim, plus %s for request(s)\n", short(t.base.Version), t.bundle.Source, strings.Join(named, ", "))
	fmt.Fprintf(&head, "# %s. Search for \"wafcanary tune\" to find it.\n", strings.Join(t.batch.ids, ", "))
	if t.opt.Candidate {
		// Its own base marker, if any, follows in its leading comments:
		// what it adds to that baseline, exclusions included, is what
		// start carries over.
		head.WriteString("# The requests were the candidate's new blocks: the change and the\n")
		head.WriteString("# exceptions it needs go out together.\n\n")
	} else {
		fmt.Fprintf(&head, "%s%s (start carries the exclusions over to the baseline that serves then)\n\n", baseMarker, t.base.Version)
	}
	if err := writable(head.String() + body.String()); err != nil {
		return nil, nil, err
	}
	var b strings.Builder
	b.WriteString(head.String())
	b.WriteString(strings.Join(lines[:t.insert.line-1], ""))
	b.WriteString(body.String())
	b.WriteString(strings.Join(lines[t.insert.line-1:], ""))
	name := path.Base(t.opt.Output)
	if _, clash := files[name]; clash {
		return nil, nil, fmt.Errorf("--output %s: the baseline has a file of that name; choose another", name)
	}
	files[name] = []byte(b.String())
	fsys := fstest.MapFS{}
	for n, c := range files {
		fsys[n] = &fstest.MapFile{Data: c, Mode: 0o644}
	}
	rs, err := ruleset.LoadFS(fsys, name, t.opt.Output)
	if err != nil {
		return nil, nil, fmt.Errorf("the candidate does not compile, a bug in tune: %w", err)
	}
	return rs, files, nil
}
