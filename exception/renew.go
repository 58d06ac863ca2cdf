package exception

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/ruleset"
)

// ErrBadMeta is metadata renew cannot write; the error names the field.
var ErrBadMeta = errors.New("bad metadata")

// Meta is an exception's metadata as renew writes it: an empty field is
// left as it is.
type Meta struct {
	Owner   string `json:"owner,omitempty"`
	Expires string `json:"expires,omitempty"` // YYYY-MM-DD
	Ticket  string `json:"ticket,omitempty"`
}

// metaValue is what a metadata value may hold: it is written inside a
// single-quoted tag, or as a word of a comment line, and read back by
// splitting on white space.
var metaValue = regexp.MustCompile(`^[A-Za-z0-9._@+:#/-]{1,100}$`)

// Validate names the first field that cannot be written; an empty Meta
// is valid.
func (m Meta) Validate() error {
	for _, f := range []struct{ key, v string }{{MetaOwner, m.Owner}, {MetaExpiry, m.Expires}, {MetaTicket, m.Ticket}} {
		if f.v != "" && !metaValue.MatchString(f.v) {
			return fmt.Errorf("%s: want 1 to 100 of letters, digits and ._@+:#/-, got %q", f.key, f.v)
		}
	}
	if m.Expires != "" {
		if _, err := time.Parse(time.DateOnly, m.Expires); err != nil {
			return fmt.Errorf("%s: want YYYY-MM-DD, got %q", MetaExpiry, m.Expires)
		}
	}
	return nil
}

// Tags is m as the tags tune writes on a rule: tag:'wafcanary/owner=...'
// and so on, in that order, the empty ones left out.
func (m Meta) Tags() []string {
	var out []string
	for _, kv := range m.pairs() {
		out = append(out, "tag:'"+MetaPrefix+kv[0]+"="+kv[1]+"'")
	}
	return out
}

func (m Meta) pairs() [][2]string {
	var out [][2]string
	for _, kv := range [][2]string{{MetaOwner, m.Owner}, {MetaExpiry, m.Expires}, {MetaTicket, m.Ticket}} {
		if kv[1] != "" {
			out = append(out, kv)
		}
	}
	return out
}

// Renewal is a ruleset whose only change is one exception's metadata.
type Renewal struct {
	// Before and After are the exception as the ruleset had it and as the
	// renewed one reads it back.
	Before, After Exception
	Main          string
	Files         map[string][]byte
}

// Renew returns rs with exception id's metadata changed to m: in place in
// its tags (a missing one added after its id action) for a rule, on the
// comment lines right above it for a directive (on the first one that
// holds metadata, or a new line above it). Every other byte stays; a rule
// keeps its file:line. The result is compiled, read back, and proven to
// change nothing but metadata (MetadataOnly).
func Renew(rs *ruleset.Ruleset, id string, m Meta, now time.Time) (Renewal, error) {
	if err := m.Validate(); err != nil {
		return Renewal{}, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	if m == (Meta{}) {
		return Renewal{}, fmt.Errorf("%w: nothing to change: give an expiry, an owner or a ticket", ErrBadMeta)
	}
	before, err := Find(List(rs, now), id)
	if err != nil {
		return Renewal{}, err
	}
	files, err := editFiles(rs, before, func(content []byte) ([]byte, error) {
		if before.directive {
			return renewComments(content, before, m), nil
		}
		return renewTags(content, before, m)
	})
	if err != nil {
		return Renewal{}, err
	}
	main := rs.Files[0].Name
	cand, err := compileFiles(files, main, rs.Path)
	if err != nil {
		return Renewal{}, fmt.Errorf("exception %s: renewed, the ruleset does not compile, a bug in renew: %w", id, err)
	}
	defer cand.Retire()
	if err := MetadataOnly(rs, cand); err != nil {
		return Renewal{}, fmt.Errorf("exception %s: a bug in renew: %w", id, err)
	}
	after, err := FindRenewed(cand, before, now)
	if err != nil {
		return Renewal{}, err
	}
	return Renewal{Before: before, After: after, Main: main, Files: files}, nil
}

// Compile compiles the renewed ruleset; path names it. The caller
// retires it.
func (r Renewal) Compile(path string) (*ruleset.Ruleset, error) {
	return compileFiles(r.Files, r.Main, path)
}

// Changed says what changed between an exception's metadata before and
// after: "expires 2026-05-01 -> 2026-12-31, owner alice -> bob".
func Changed(before, after Exception) string {
	var parts []string
	for _, f := range []struct{ key, b, a string }{{MetaExpiry, before.Expires, after.Expires}, {MetaOwner, before.Owner, after.Owner}, {MetaTicket, before.Ticket, after.Ticket}} {
		if f.b != f.a {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", f.key, orNone(f.b), f.a))
		}
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
}

// FindRenewed finds in rs the exception e, renewed: the same text, metadata
// aside (a directive's ID is of its text, and a rule's is its id).
func FindRenewed(rs *ruleset.Ruleset, e Exception, now time.Time) (Exception, error) {
	for _, x := range List(rs, now) {
		if x.text == e.text && x.File == e.File {
			return x, nil
		}
	}
	return Exception{}, fmt.Errorf("exception %s: %w in the renewed ruleset", e.ID, ErrNoSuchException)
}

// renewTags sets m's tags on the rule e: each one it has is rewritten in
// place, each one it lacks is added after its id action.
func renewTags(content []byte, e Exception, m Meta) ([]byte, error) {
	lines := strings.SplitAfter(string(content), "\n")
	first, end, err := span(lines, e.links)
	if err != nil {
		return nil, err
	}
	text := strings.Join(lines[first-1:end], "")
	var missing []string
	for _, kv := range m.pairs() {
		re := regexp.MustCompile(`tag:'?` + regexp.QuoteMeta(MetaPrefix+kv[0]) + `=[^',"\s\\]*'?`)
		tag := "tag:'" + MetaPrefix + kv[0] + "=" + kv[1] + "'"
		if re.MatchString(text) {
			text = re.ReplaceAllLiteralString(text, tag)
		} else {
			missing = append(missing, tag)
		}
	}
	if len(missing) > 0 {
		idAction := regexp.MustCompile(`id:'?` + regexp.QuoteMeta(e.ID) + `\b'?`)
		loc := idAction.FindStringIndex(text)
		if loc == nil {
			return nil, fmt.Errorf("no id:%s action found to add the tags after", e.ID)
		}
		text = text[:loc[1]] + "," + strings.Join(missing, ",") + text[loc[1]:]
	}
	return []byte(strings.Join(lines[:first-1], "") + text + strings.Join(lines[end:], "")), nil
}

// renewComments sets m on the comment lines right above the directive e:
// each key on the line that has it, the others appended to the first line
// holding metadata, or on a new comment line right above the directive.
func renewComments(content []byte, e Exception, m Meta) []byte {
	lines := strings.SplitAfter(string(content), "\n")
	top := e.Line - 1 // 0-based index of the directive
	for top > 0 && strings.HasPrefix(strings.TrimSpace(lines[top-1]), "#") {
		top--
	}
	metaLine := -1
	var missing []string
	for _, kv := range m.pairs() {
		re := regexp.MustCompile(regexp.QuoteMeta(MetaPrefix+kv[0]) + `=\S*`)
		word := MetaPrefix + kv[0] + "=" + kv[1]
		found := false
		for i := top; i < e.Line-1; i++ {
			if metaLine < 0 && strings.Contains(lines[i], MetaPrefix) {
				metaLine = i
			}
			if re.MatchString(lines[i]) {
				lines[i] = re.ReplaceAllLiteralString(lines[i], word)
				found = true
			}
		}
		if !found {
			missing = append(missing, word)
		}
	}
	if len(missing) > 0 {
		if metaLine >= 0 {
			l := strings.TrimRight(lines[metaLine], "\r\n")
			lines[metaLine] = l + " " + strings.Join(missing, " ") + lines[metaLine][len(l):]
		} else {
			lines = slices.Insert(lines, e.Line-1, "# "+strings.Join(missing, " ")+"\n")
		}
	}
	return []byte(strings.Join(lines, ""))
}

// MetadataOnly proves that cand judges every request as base does: its
// own directives are base's, in the same order, once wafcanary/ tags are
// left out (comments are not directives); its compiled rules are base's
// (phase, order, action, targets, operator, chain, tags but wafcanary/
// ones), the CRS the same; and no exclusion of either removes rules by a
// wafcanary/ tag, the one way a metadata tag could change what runs. The
// error names the first difference.
func MetadataOnly(base, cand *ruleset.Ruleset) error {
	if base.CRS != cand.CRS {
		return fmt.Errorf("the CRS differs: %s, %s", base.CRS, cand.CRS)
	}
	for _, rs := range []*ruleset.Ruleset{base, cand} {
		for _, x := range rs.Exclusions() {
			if x.Kind.By() == ruleset.ByTag && strings.HasPrefix(x.Tag, MetaPrefix) {
				return fmt.Errorf("%s removes rules by the tag %s: metadata there changes what runs", x.Kind, x.Tag)
			}
		}
	}
	bs, cs := ruleset.Chains(base.Directives()), ruleset.Chains(cand.Directives())
	if len(bs) != len(cs) {
		return fmt.Errorf("%d rules and directives, %d before", len(cs), len(bs))
	}
	for i := range bs {
		if textOf(bs[i]) != textOf(cs[i]) {
			return fmt.Errorf("%s:%d differs from %s:%d beyond metadata", cs[i][0].File, cs[i][0].Line, bs[i][0].File, bs[i][0].Line)
		}
	}
	if len(base.Rules) != len(cand.Rules) {
		return fmt.Errorf("%d rules compiled, %d before", len(cand.Rules), len(base.Rules))
	}
	for i, b := range base.Rules {
		c := cand.Rules[i]
		if b.ID != c.ID || b.Phase != c.Phase || b.Order != c.Order || b.Logs != c.Logs || b.Action != c.Action || b.Targets != c.Targets ||
			b.Operator != c.Operator || b.Chain != c.Chain || b.Skip != c.Skip || b.Paranoia != c.Paranoia || b.Severity != c.Severity ||
			b.Counts != c.Counts || b.NegatedCapture != c.NegatedCapture || !slices.Equal(plainTags(b.Tags), plainTags(c.Tags)) {
			return fmt.Errorf("compiled rule %d differs beyond metadata", b.ID)
		}
	}
	// The data files the directives read (@pmFromFile): files with
	// directives were compared above.
	directives := map[string]bool{}
	for _, r := range bs {
		directives[r[0].File] = true
	}
	have := map[string]string{}
	for _, f := range cand.Files {
		if !f.Embedded {
			have[f.Name] = string(f.Content)
		}
	}
	for _, f := range base.Files {
		if f.Embedded || directives[f.Name] {
			continue
		}
		if c, ok := have[f.Name]; !ok || c != string(f.Content) {
			return fmt.Errorf("%s differs", f.Name)
		}
	}
	return nil
}

// plainTags are tags without wafcanary/ ones.
func plainTags(tags []string) []string {
	return slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return strings.HasPrefix(t, MetaPrefix) })
}
