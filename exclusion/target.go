// Package exclusion writes the narrowest exclusion that lets given blocked
// requests through a baseline, and the cases that show it still blocks
// attacks where it opened: what `wafcanary tune` writes. Every exclusion
// it proposes has been compiled and judged against the requests and the
// attacks in process before it is returned.
package exclusion

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wafcanary/wafcanary/capture"
)

// Removal takes one variable away from one rule: what
// ctl:ruleRemoveTargetById=RULE;TARGET writes.
type Removal struct {
	Rule   int    `json:"rule"`
	Target string `json:"target"` // VARIABLE:key, as Coraza names the match
}

func (r Removal) String() string { return fmt.Sprintf("%d;%s", r.Rule, r.Target) }

// keyed are the collections whose members an exclusion can name one by
// one. Every other variable (REQUEST_BODY, REQUEST_URI, REQUEST_FILENAME,
// QUERY_STRING, XML, TX...) is inspected whole: taking it away from a rule
// would take away everything it sees.
var keyed = map[string]bool{
	"ARGS": true, "ARGS_GET": true, "ARGS_POST": true,
	"ARGS_NAMES": true, "ARGS_GET_NAMES": true, "ARGS_POST_NAMES": true,
	"REQUEST_HEADERS": true, "REQUEST_HEADERS_NAMES": true,
	"REQUEST_COOKIES": true, "REQUEST_COOKIES_NAMES": true,
	"FILES": true, "FILES_NAMES": true,
}

// evaluation reports whether a rule decides on the anomaly score rather
// than detecting anything (949xxx, 959xxx) or only reports (980xxx): an
// exclusion never touches them.
func evaluation(id int) bool {
	switch id / 1000 {
	case 949, 959, 980:
		return true
	}
	return false
}

// bodyWithoutType is CRS's rule 920640 (new in 4.23): a request body
// without a Content-Type, which it matches on REQUEST_BODY_LENGTH. Of the
// protocol-enforcement rules it alone has a narrow exclusion: CRS's rule
// 901340 still has the body parsed (as a form) and every other rule reads
// it, so a client that sends its bodies untyped to one path can be let
// through there without blinding anything; the attacks that check it are
// sent as the whole body, untyped, on that path (inject), and the same
// request elsewhere stays blocked.
const (
	bodyWithoutType = 920640
	bodyLength      = "REQUEST_BODY_LENGTH"
)

// narrow says why a matched (rule, target) cannot be excluded narrowly,
// or "" when it can.
func narrow(rule int, target string) string {
	if p, ok := policies[rule]; ok {
		// allowFor takes every request whose value it can write.
		return fmt.Sprintf("rule %d enforces CRS's %s policy and matched %s, with a %s that cannot be written into tx.%s (not a plain token, or the list holds a quote): change the list in crs-setup by hand", rule, p.what, shown(target), p.what, p.tx)
	}
	if rule == bodyWithoutType && target == bodyLength {
		return ""
	}
	if rule/1000 == 920 {
		return fmt.Sprintf("rule %d matched %s: it is protocol enforcement (920xxx), the request breaks HTTP as CRS enforces it, and no exclusion narrower than the rule itself exists; fix the client, or change the rule knowingly", rule, shown(target))
	}
	v, key, ok := strings.Cut(target, ":")
	if !ok || key == "" || !keyed[v] {
		return fmt.Sprintf("rule %d matched %s, which it inspects whole: taking it away would blind the rule to all of it", rule, shown(target))
	}
	// A name is written verbatim into the ctl: action and the rule's msg
	// in the candidate: a control, bidirectional or invalid character
	// would reach whoever reads or diffs the file (a JSON key is the
	// client's to choose), and is refused rather than written escaped:
	// SecLang has no escape that Coraza would match against the name.
	if !printable(key) {
		return fmt.Sprintf("rule %d matched %s, whose name holds a control, bidirectional or invalid character: it is not written into a rules file", rule, shown(target))
	}
	if strings.ContainsAny(key, ",;'\"\\ \t\r\n") || strings.HasPrefix(key, "/") {
		return fmt.Sprintf("rule %d matched %s, whose name cannot be written in a ctl: action", rule, target)
	}
	return ""
}

// replayOnly says why rule id, which matched the replayed request, is not
// what blocked it: the capture's own verdict, reached by this same
// baseline, does not list it. The replay then differs from the request in
// what the capture did not keep, such as a body of a type it does not
// store, and with it the Content-Length whose absence on a POST 920180
// reports. An exclusion for it would fix the replay, not the request.
func replayOnly(rec capture.Record, version string, id int) string {
	if len(rec.Verdict.Rules) == 0 || rec.Version != version || slices.Contains(rec.Verdict.RuleIDs(), id) {
		return ""
	}
	s := fmt.Sprintf("rule %d matched the replayed request only, not the request as the baseline blocked it (rules %v)", id, rec.Verdict.RuleIDs())
	if rec.BodyNote != "" {
		s += ": the capture did not keep the body (" + shown(rec.BodyNote) + "), so the replay is sent without it"
	}
	return s
}
