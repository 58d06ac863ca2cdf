package verdict

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// A rule's msg is a template: its macros (%{MATCHED_VAR}, %{REQUEST_HEADERS.
// Cookie}, %{TX.1}) expand to request data, which can be a session cookie or
// a token, and the message goes to logs and API answers. The literal text
// of the template is the rule author's and is kept; each macro is kept only
// when it names something that is not request data (a variable's name, an
// anomaly score), and is "[redacted]" otherwise.
//
// The template is read from the rule's raw text, because Coraza keeps only
// the expanded message on a match.

// redactedWord replaces what a message must not carry.
const redactedWord = "[redacted]"

// msgTemplate is a rule's msg split at its macros: Literals has one more
// element than Macros, and the message is Literals[0] + expansion(Macros[0])
// + Literals[1] + ...
type msgTemplate struct {
	literals []string
	macros   []string
	// match recovers each macro's expansion from an expanded message.
	match *regexp.Regexp
}

// templates caches parsed templates by the rule's raw text; it holds one
// entry per rule that has matched, so it is bounded by the rulesets' size.
var templates sync.Map // raw string -> *msgTemplate (nil: no macro)

// redactMessage returns msg, expanded from the msg action in raw, with
// every macro that can expand to request data replaced by [redacted].
// values are the rule's matched values: when raw's msg cannot be found,
// each is replaced in msg instead.
func redactMessage(raw, msg string, values []string) string {
	if msg == "" {
		return msg
	}
	var t *msgTemplate
	if c, ok := templates.Load(raw); ok {
		t = c.(*msgTemplate)
	} else {
		t = parseTemplate(raw)
		templates.Store(raw, t)
	}
	if t == nil || t.match == nil || len(t.macros) == 0 && msg != t.literals[0] {
		// No msg in the raw text (SecDefaultAction, a rule built in code),
		// or one that is not this message: take out what matched, the part
		// known to be request data.
		for _, v := range values {
			if len(v) >= 3 {
				msg = strings.ReplaceAll(msg, v, redactedWord)
			}
		}
		return msg
	}
	if len(t.macros) == 0 {
		return msg
	}
	got := t.match.FindStringSubmatch(msg)
	var b strings.Builder
	for i, lit := range t.literals {
		b.WriteString(lit)
		if i == len(t.macros) {
			break
		}
		if got != nil && safeMacro(t.macros[i], got[i+1]) {
			b.WriteString(got[i+1])
		} else {
			b.WriteString(redactedWord)
		}
	}
	return b.String()
}

// safeMacro reports whether a macro, expanded to value, is not request
// data: a variable's name, the rule's id, revision or severity, or a CRS
// score, threshold or paranoia level (a TX variable with such a name and
// a number for its value). Everything else can hold request data:
// rule.logdata and rule.msg are expanded from macros themselves, and a TX
// variable can be set from ARGS.
func safeMacro(name, value string) bool {
	n := strings.ToUpper(strings.TrimSpace(name))
	switch n {
	case "MATCHED_VAR_NAME", "MATCHED_VARS_NAMES", "RULE.ID", "RULE.REV", "RULE.SEVERITY", "RULE.VER":
		return true
	}
	if k, ok := strings.CutPrefix(n, "TX."); ok && (strings.Contains(k, "SCORE") || strings.Contains(k, "THRESHOLD") || strings.Contains(k, "PARANOIA")) {
		_, err := strconv.Atoi(value)
		return err == nil
	}
	return false
}

// parseTemplate finds the msg action in a rule's raw text and splits it.
// It returns a template without match when raw has no msg it can read.
func parseTemplate(raw string) *msgTemplate {
	tmpl, ok := msgAction(raw)
	if !ok {
		return &msgTemplate{}
	}
	t := &msgTemplate{}
	expr := "^(?s)"
	rest := tmpl
	for {
		i := strings.Index(rest, "%{")
		j := -1
		if i >= 0 {
			j = strings.IndexByte(rest[i:], '}')
		}
		if i < 0 || j < 0 {
			t.literals = append(t.literals, rest)
			expr += regexp.QuoteMeta(rest)
			break
		}
		t.literals = append(t.literals, rest[:i])
		t.macros = append(t.macros, rest[i+2:i+j])
		expr += regexp.QuoteMeta(rest[:i]) + "(.*?)"
		rest = rest[i+j+1:]
	}
	t.match = regexp.MustCompile(expr + "$")
	return t
}

// actionsOf returns the actions argument of a rule's raw text, its last
// double-quoted argument ("id:1,deny,msg:'...'"), so that a msg: inside
// the operator or a variable is never taken for the action.
func actionsOf(raw string) string {
	raw = strings.TrimSpace(raw)
	if !strings.HasSuffix(raw, `"`) {
		return ""
	}
	for i := len(raw) - 2; i >= 0; i-- {
		if raw[i] == '"' && (i == 0 || raw[i-1] != '\\') && (i == 0 || raw[i-1] == ' ' || raw[i-1] == '\t') {
			return raw[i+1 : len(raw)-1]
		}
	}
	return ""
}

// msgAction returns the value of the msg action in raw's actions:
// msg:'text', with \' for a quote inside, or msg:word up to the next
// comma or quote.
func msgAction(raw string) (string, bool) {
	raw = actionsOf(raw)
	for off := 0; ; {
		i := strings.Index(raw[off:], "msg:")
		if i < 0 {
			return "", false
		}
		i += off
		// logdata:'... msg: ...' or a variable named *msg: not the action.
		if i > 0 && !strings.ContainsRune(`"', `+"\t\n", rune(raw[i-1])) {
			off = i + 4
			continue
		}
		v := strings.TrimLeft(raw[i+4:], " ")
		if strings.HasPrefix(v, "'") {
			var b strings.Builder
			for k := 1; k < len(v); k++ {
				switch {
				case v[k] == '\\' && k+1 < len(v) && v[k+1] == '\'':
					b.WriteByte('\'')
					k++
				case v[k] == '\'':
					return b.String(), true
				default:
					b.WriteByte(v[k])
				}
			}
			return "", false
		}
		if k := strings.IndexAny(v, `,"'`); k >= 0 {
			return v[:k], true
		}
		return v, true
	}
}
