package exclusion

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// policy is a CRS rule that enforces a list crs-setup.conf.example tells
// a site to set for what its applications take: content types, methods,
// file extensions. For a request such a rule blocks, CRS's documented fix
// is to change the list, not to exclude the rule; and since ctl: cannot
// change a TX variable, the change is a setvar in a rule of its own,
// conditioned on the host and path.
type policy struct {
	rule     int
	what     string // "content type", for messages
	variable string // what the rule reads, for messages
	tx       string // the TX variable that holds the list
	// restrict is set for a list of what is refused
	// (restricted_extensions): allowing is taking the entry out.
	restrict bool
	// entry is the request's entry in the list as CRS compares it, and
	// the value to show; ok is false when the request has none, or one
	// that cannot be written into a setvar.
	entry func(c gates.Case) (entry, value string, ok bool)
	// others are requests on the same path that the changed list must
	// still refuse: another value of the same kind.
	others func(c gates.Case, list string) []gates.Case
}

// token is a media type's or a method's characters (RFC 9110 tchar),
// without the ones SecLang would read in a quoted setvar ('), and without
// | and space, the lists' separators.
var (
	mediaType = regexp.MustCompile(`^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$`)
	method    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`)
	extension = regexp.MustCompile(`^\.[a-z0-9_-]{1,32}/$`)
)

// policies are the rules tune proposes a list change for, by ID. The
// values are CRS 4.25's (REQUEST-901's defaults, crs-setup.conf.example's
// rules 900200, 900220, 900240).
var policies = map[int]policy{
	920420: {
		rule: 920420, what: "content type", variable: "REQUEST_HEADERS:Content-Type", tx: "allowed_request_content_type",
		entry: func(c gates.Case) (string, string, bool) {
			// 920420 takes the header up to the first ';' or space and
			// lower-cases it, and looks for |type| in the list.
			mt, _, err := mime.ParseMediaType(headerOf(c, "Content-Type"))
			return "|" + mt + "|", mt, err == nil && mediaType.MatchString(mt)
		},
		others: func(c gates.Case, list string) []gates.Case {
			const other = "application/x-wafcanary-unlisted"
			if strings.Contains(list, "|"+other+"|") {
				return nil
			}
			o := withHeader(c, "Content-Type", other)
			o.Name = "another content type on the same path (" + other + ")"
			return []gates.Case{o}
		},
	},
	911100: {
		rule: 911100, what: "method", variable: "REQUEST_METHOD", tx: "allowed_methods",
		entry: func(c gates.Case) (string, string, bool) {
			return c.Method, c.Method, method.MatchString(c.Method)
		},
		others: func(c gates.Case, list string) []gates.Case {
			// 911100 looks for the method anywhere in the list (@within):
			// the other method must not be part of an allowed one either.
			for _, m := range []string{"PROPFIND", "TRACE", "DELETE", "PUT", "PATCH", "CONNECT"} {
				if m != c.Method && !strings.Contains(list, m) {
					o := c
					o.Method, o.Name = m, "another method on the same path ("+m+")"
					return []gates.Case{o}
				}
			}
			return nil
		},
	},
	920440: {
		rule: 920440, what: "file extension", variable: "REQUEST_BASENAME", tx: "restricted_extensions", restrict: true,
		entry: func(c gates.Case) (string, string, bool) {
			p, err := requestPath(c.Path)
			if err != nil {
				return "", "", false
			}
			ext := strings.ToLower(path.Ext(p))
			return ext + "/", ext, extension.MatchString(ext + "/")
		},
		// The path is exact, so another extension is another path: the
		// same extension elsewhere is the test (otherPath).
		others: func(gates.Case, string) []gates.Case { return nil },
	},
}

// Allowance is a CRS policy list changed for the requests' host and path:
// what CRS documents for a request its policy blocks (a content type, a
// method, a file extension), written instead of an exclusion.
type Allowance struct {
	RuleID int `json:"rule_id"` // the candidate's rule that changes it
	// Policy is the CRS rule that blocked, What what it enforces, Value
	// the request's.
	Policy int    `json:"policy_rule"`
	What   string `json:"what"`
	Value  string `json:"value"`
	// Variable is the TX variable changed, Was its value for the request
	// in the baseline, Set the value the candidate gives it.
	Variable string `json:"variable"`
	Was      string `json:"was"`
	Set      string `json:"set"`
	// RawBody is set for a content type no body processor parses and that
	// is not text: Coraza would parse its body as a form (CRS forces the
	// body variable), and a binary body's bytes would become arguments
	// that the baseline's UTF-8 rules refuse; the allowance has it read as
	// one raw REQUEST_BODY instead, which the rules on REQUEST_BODY still
	// inspect. A text/* body stays parsed as a form: the rules on ARGS,
	// many more, go on reading it.
	RawBody bool `json:"raw_body,omitempty"`
}

func (a Allowance) String() string {
	s := fmt.Sprintf("%s (rule %d): tx.%s", a.change(), a.Policy, a.Variable)
	if a.RawBody {
		s += ", body read raw"
	}
	return s
}

// change says what the allowance does: "allow content type image/png".
func (a Allowance) change() string {
	verb := "allow"
	if policies[a.Policy].restrict {
		verb = "no longer restrict"
	}
	return verb + " " + a.What + " " + a.Value
}

// allowFor takes rule m, matched by request c (the replay of rec), as a
// policy to change rather than a rule to exclude: it reports true and
// records the change when m is a policy rule and c's value can be written
// into its list. A body the baseline refuses for its size whatever its
// type is refused here, since no allowance would let it through.
func (t *tuner) allowFor(m verdict.RuleMatch, rec capture.Record, c gates.Case) (bool, error) {
	p, ok := policies[m.ID]
	if !ok {
		return false, nil
	}
	entry, value, ok := p.entry(c)
	if !ok {
		return false, nil
	}
	if n, err := strconv.ParseInt(rec.Header.Get("Content-Length"), 10, 64); err == nil && n > t.base.NoFilesLimit && t.base.NoFilesLimit > 0 &&
		!strings.HasPrefix(strings.ToLower(headerOf(c, "Content-Type")), "multipart/form-data") {
		return false, fmt.Errorf("%w: request %s was blocked by rule %d (%s %s not allowed), but its body is %d bytes, over the baseline's SecRequestBodyNoFilesLimit (%d): with the %s allowed the baseline would still refuse it (413), on any path; send it as multipart/form-data, or raise the limit knowingly (it applies to every request)",
			ErrRefused, shown(rec.ID), p.rule, p.what, shown(value), n, t.base.NoFilesLimit, p.what)
	}
	if i := slices.IndexFunc(t.allow, func(a Allowance) bool { return a.Policy == p.rule }); i >= 0 {
		a := &t.allow[i]
		if a.Value == value {
			return true, nil
		}
		// A second value for the same list: both go in.
		a.Value += ", " + value
		a.Set = changeList(a.Set, entry, p.restrict)
		return true, nil
	}
	was, processor, err := txValue(t.ctx, t.base, c, p.tx)
	if err != nil {
		return false, err
	}
	if was == "" || strings.ContainsAny(was, "'\"\\%\r\n") || !printable(was) {
		// Unset (the rule would not have matched) or not writable in a
		// quoted setvar: left to the refusal, which names the rule.
		return false, nil
	}
	t.allow = append(t.allow, Allowance{Policy: p.rule, What: p.what, Value: value, Variable: p.tx, Was: was, Set: changeList(was, entry, p.restrict),
		RawBody: p.rule == 920420 && processor == "" && !strings.HasPrefix(value, "text/")})
	return true, nil
}

// changeList adds entry to an allow list, or takes it out of a restrict
// list (space-separated, as CRS writes them).
func changeList(list, entry string, restrict bool) string {
	if !restrict {
		return list + " " + entry
	}
	var out []string
	for _, e := range strings.Fields(list) {
		if e != entry {
			out = append(out, e)
		}
	}
	return strings.Join(out, " ")
}

// settleAllowance gives the allowance its rule ID: the exclusion's when
// there is no exclusion, else the next free one.
func (t *tuner) settleAllowance(alone bool) {
	if len(t.allow) == 0 {
		return
	}
	id := t.insert.id
	if !alone {
		for id++; ; id++ {
			if _, used := t.base.Rule(id); !used {
				break
			}
		}
	}
	for i := range t.allow {
		t.allow[i].RuleID = id
	}
}

// allowSecLang writes the allowance: one rule before the CRS rules
// include, conditioned on the path and host as the exclusion is, that
// sets each changed list whole. It cannot add to the list: REQUEST-901,
// which runs after it, sets a list only when it is still unset, so a
// rule before it that appended would leave the list holding one entry,
// and a rule after it runs after the policy rules of phase 1.
func (t *tuner) allowSecLang() string {
	if len(t.allow) == 0 {
		return ""
	}
	var b strings.Builder
	where := t.where()
	a0 := t.allow[0]
	fmt.Fprintf(&b, "# --- wafcanary tune: allowance %d, %s ---\n", a0.RuleID, t.opt.Now.UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "# Lets through request(s) %s, blocked by %s %s by\n", strings.Join(t.ids, ", "), t.tuned(), short(t.base.Version))
	b.WriteString("# CRS policy, which CRS documents changing rather than excluding:\n")
	var msgs, sets []string
	for _, a := range t.allow {
		p := policies[a.Policy]
		fmt.Fprintf(&b, "#   rule %d matched %s: %s %s is not in tx.%s\n", a.Policy, p.variable, a.What, a.Value, a.Variable)
		msgs = append(msgs, a.change())
		sets = append(sets, fmt.Sprintf("setvar:'tx.%s=%s'", a.Variable, a.Set))
	}
	fmt.Fprintf(&b, "# Only on %s, the list(s) become the baseline's for these\n", where)
	b.WriteString("# requests with that changed; every rule still runs. It sits before the\n")
	b.WriteString("# CRS rules include: REQUEST-901 sets a list only when it is unset, so the\n")
	b.WriteString("# whole list is set here (ctl: cannot change TX variables).\n")
	op, cond := t.pathCondition()
	msg := fmt.Sprintf("wafcanary tune: %s on %s", strings.Join(msgs, ", "), where)
	// The links: the path, the host, and for a content type the type
	// itself, so that a request of another type on the path keeps the
	// baseline's list and body processor (a JSON body read raw would not
	// be parsed into arguments). As for the exclusion, the actions sit on
	// the last link: Coraza runs a link's actions when that link matches.
	var links []string
	if t.host != "" {
		links = append(links, fmt.Sprintf("SecRule REQUEST_HEADERS:Host \"@rx %s\" \\\n        \"t:none,t:lowercase", hostPattern(t.host)))
	}
	if types := t.allowedTypes(); len(types) > 0 {
		links = append(links, fmt.Sprintf("SecRule REQUEST_HEADERS:Content-Type \"@rx ^(?:%s)(?:[\\s;]|$)\" \\\n        \"t:none,t:lowercase", strings.Join(types, "|")))
		if slices.ContainsFunc(t.allow, func(a Allowance) bool { return a.RawBody }) {
			b.WriteString("# A body of this type no body processor parses: it is read as one raw\n")
			b.WriteString("# REQUEST_BODY (ctl:requestBodyProcessor=RAW), not as a form, whose\n")
			b.WriteString("# arguments a binary body would fill with bytes that are not UTF-8.\n")
			sets = append(sets, "ctl:requestBodyProcessor=RAW")
		}
	}
	fmt.Fprintf(&b, "SecRule %s \"%s\" \\\n    \"id:%d,\\\n    phase:1,\\\n    pass,\\\n    t:none,\\\n    nolog,\\\n    msg:'%s',\\\n", op, cond, a0.RuleID, msg)
	b.WriteString(t.metaLines())
	if len(links) == 0 {
		fmt.Fprintf(&b, "    %s\"\n", strings.Join(sets, ",\\\n    "))
		return b.String()
	}
	b.WriteString("    chain\"\n")
	for i, l := range links {
		b.WriteString("    " + l)
		if i < len(links)-1 {
			b.WriteString(",\\\n        chain\"\n")
			continue
		}
		fmt.Fprintf(&b, ",\\\n        %s\"\n", strings.Join(sets, ",\\\n        "))
	}
	return b.String()
}

// allowedTypes are the content types the allowance is for, as patterns.
func (t *tuner) allowedTypes() []string {
	var out []string
	for _, a := range t.allow {
		if a.Policy != 920420 {
			continue
		}
		for _, v := range strings.Split(a.Value, ", ") {
			out = append(out, regexp.QuoteMeta(v))
		}
	}
	return out
}

// where is the host and path an exclusion or allowance applies to, for
// comments and messages.
func (t *tuner) where() string {
	where := t.path
	if t.prefix {
		where += " and below"
	}
	if t.host != "" {
		return hostHeader(t.host) + where
	}
	return "every host, " + where
}

// allowanceCases checks what the allowance must still refuse, and adds it
// to the must_block cases: the requests with another value of the same
// kind on the same path (another content type, another method). The same
// value on another host and path is among the cases attacks adds.
func (t *tuner) allowanceCases(cand *ruleset.Ruleset, res *Result) error {
	for _, a := range t.allow {
		p := policies[a.Policy]
		for _, o := range p.others(t.pass[0], a.Set) {
			b, err := judge(t.ctx, t.base, o)
			if err != nil {
				return err
			}
			if !b.Blocked {
				t.notes = append(t.notes, fmt.Sprintf("%s: the baseline lets it through too, so it is no test of the allowance; left out", o.Name))
				continue
			}
			c, err := judge(t.ctx, cand, o)
			if err != nil {
				return err
			}
			if !c.Blocked {
				return fmt.Errorf("the allowance lets through %s, which it should not change; this is a bug in tune, please report it", o.Name)
			}
			res.Cases.MustBlock = append(res.Cases.MustBlock, o)
		}
	}
	res.Allowances = t.allow
	return nil
}

// txValue is the value TX variable name has once c's request headers are
// processed by rs, a policy list as REQUEST-901 and crs-setup left it for
// that request, and the body processor they chose for it ("" for none).
func txValue(ctx context.Context, rs *ruleset.Ruleset, c gates.Case, name string) (value, processor string, err error) {
	if !rs.Acquire() {
		return "", "", ruleset.ErrClosed
	}
	defer rs.Release()
	r, err := http.NewRequestWithContext(ctx, c.Method, "http://tune.wafcanary.invalid"+c.Path, nil)
	if err != nil {
		return "", "", fmt.Errorf("reading tx.%s: %w", name, err)
	}
	r.RequestURI = c.Path
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	req := verdict.RequestOf(r, "tune-tx", "127.0.0.1", 40000)
	tx := rs.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: req.ID, Context: ctx})
	defer tx.Close()
	// Phase 1 only, as verdict feeds it: the lists and the body processor
	// are settled there, and phase 2 would force the processor to
	// URLENCODED for a body no rule chose one for. An interruption (by
	// 920420 itself) leaves the variables set.
	tx.ProcessConnection(req.ClientIP, req.ClientPort, req.ServerIP, req.ServerPort)
	tx.ProcessURI(req.URI, req.Method, "HTTP/1.1")
	for k, vs := range req.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	if req.Host != "" {
		tx.AddRequestHeader("Host", req.Host)
	}
	tx.ProcessRequestHeaders()
	st, ok := tx.(plugintypes.TransactionState)
	if !ok {
		return "", "", fmt.Errorf("reading tx.%s: the transaction does not expose its variables", name)
	}
	m, ok := st.Collection(variables.TX).(collection.Map)
	if !ok {
		return "", "", fmt.Errorf("reading tx.%s: TX is not a map", name)
	}
	processor = st.Variables().RequestBodyProcessor().Get()
	if vals := m.Get(name); len(vals) > 0 {
		return vals[0], processor, nil
	}
	return "", processor, nil
}

func withHeader(c gates.Case, name, value string) gates.Case {
	out := c
	out.Headers = make(map[string]string, len(c.Headers))
	for k, v := range c.Headers {
		if !strings.EqualFold(k, name) {
			out.Headers[k] = v
		}
	}
	out.Headers[http.CanonicalHeaderKey(name)] = value
	return out
}

// otherPath is a path the exclusion or allowance must not apply to: the
// path with -other added before its extension, so that a file extension,
// which an allowance may be about, stays the same.
func (t *tuner) otherPath() string {
	dir, file := path.Split(t.path)
	ext := path.Ext(file)
	if ext == "" || ext == file {
		return t.path + "-other"
	}
	return dir + strings.TrimSuffix(file, ext) + "-other" + ext
}
