package exclusion

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/gates"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// AnyHost as Options.Host writes the exclusion without a host condition.
const AnyHost = "*"

// Options narrow or widen what the exclusion is conditioned on.
type Options struct {
	// Host is the Host the exclusions apply to: "" for each request's
	// own, AnyHost for every host.
	Host string
	// Path is a path prefix, matched by segments, the exclusion applies
	// under; "" for exactly each request's own path.
	Path string
	// Output is the candidate's file name, for the cases file's comments
	// and the compiled candidate's name.
	Output string
	// AcceptOpened writes an exclusion although an attack of an excluded
	// rule's own family gets through the variable; the attacks are listed
	// in Result.Opened and the candidate's comment.
	AcceptOpened bool
	// Candidate says the ruleset tuned is a rollout's candidate, not the
	// served baseline: the requests are its new blocks (seen in shadow, or
	// on its arm), and what is written is that candidate with the
	// exclusions, so that the change and the exceptions it needs go out
	// together (a CRS upgrade, most of all). The candidate keeps its own
	// base marker, if it has one: start rebases what it adds to the
	// baseline it was written from, exclusions included.
	Candidate bool
	Now       time.Time
	// Meta is written on each exclusion and allowance rule as tags
	// (tag:'wafcanary/owner=...', expires, ticket), which the exceptions
	// inventory reads back; empty fields are left out.
	Meta exception.Meta
}

// ErrRefused is a request set no narrow exclusion lets through; the
// error says why.
var ErrRefused = errors.New("no narrow exclusion")

// ErrOptions is an option that does not fit the requests (a --path that
// does not hold them, a host that is not a name); the error names it.
var ErrOptions = errors.New("bad tune options")

// Exclusion is what tune writes for the requests to one host and path:
// an exclusion rule that removes rules' variables, an allowance that
// changes CRS policy lists, or both.
type Exclusion struct {
	RuleID   int       `json:"rule_id"` // the exclusion's own rule (the allowance's without one)
	Host     string    `json:"host,omitempty"`
	Path     string    `json:"path"`
	Prefix   bool      `json:"path_prefix,omitempty"`
	Removals []Removal `json:"removals"`
	// Allowances are CRS policy lists the candidate changes on the host
	// and path, where a policy rule blocked (a content type, a method, a
	// file extension).
	Allowances []Allowance `json:"allowances,omitempty"`
	Requests   []string    `json:"requests"`
	// SecLang is what is inserted for them, comments included.
	SecLang string `json:"seclang"`
}

// Scope is the rollout scope the exclusion declares: its rules and policy
// rules, on its host, on exactly its path (under it with Prefix), as
// start infers it.
func (e Exclusion) Scope() evidence.Scope {
	var s evidence.Scope
	if e.Prefix {
		s.Paths = []string{e.Path}
	} else {
		s.ExactPaths = []string{e.Path}
	}
	if e.Host != "" {
		s.Hosts = []string{e.Host}
	}
	for _, rm := range e.Removals {
		if !slices.Contains(s.RuleIDs, rm.Rule) {
			s.RuleIDs = append(s.RuleIDs, rm.Rule)
		}
	}
	for _, a := range e.Allowances {
		if !slices.Contains(s.RuleIDs, a.Policy) {
			s.RuleIDs = append(s.RuleIDs, a.Policy)
		}
	}
	slices.Sort(s.RuleIDs)
	return s
}

// Result is a candidate that was compiled and judged: the baseline with
// what tune writes for each host and path of the requests; the requests
// pass, the attacks in Cases.MustBlock are still blocked.
type Result struct {
	// Exclusion is the first host and path's, the only one when the
	// requests share a host and a path; Exclusions lists every one, in
	// the order of the requests.
	Exclusion
	Exclusions []Exclusion `json:"exclusions"`
	// Requests are the IDs of every request the candidate lets through.
	Requests []string `json:"requests"`
	// Base is the version of the baseline the candidate was written from,
	// recorded in its main file for start (RecordedBase); with
	// Options.Candidate, the tuned candidate's own recorded base, if any.
	Base string `json:"base"`
	// On is the version of the ruleset tuned, and Candidate is set when it
	// is a rollout's candidate rather than the served baseline.
	On        string `json:"on"`
	Candidate bool   `json:"candidate,omitempty"`
	// Main and Files are the candidate: the baseline's local files with
	// the exclusions inserted into Main, which is named Options.Output.
	Main  string            `json:"main"`
	Files map[string][]byte `json:"-"`
	Cases gates.Cases       `json:"cases"`
	// Notes say what was left out and why: matched rules not needed,
	// attacks the baseline does not block either, headers redacted.
	Notes []string `json:"notes,omitempty"`
	// Opened are attacks the baseline blocks and the candidate lets
	// through; their family is still covered by another attack.
	Opened []string `json:"opened,omitempty"`
	// Checks and Families are what the attacks in the excluded variables
	// found, per removed rule (its CRS regression-test payloads) and per
	// family (the hand-picked ones).
	Checks   []RuleCheck   `json:"checks,omitempty"`
	Families []FamilyCheck `json:"families,omitempty"`
	// Inherent are removed rules' CRS payloads let through as the
	// requests are: in the variable, only rules the requests trip there
	// too caught them (RuleCheck.Inherent). Not refused; the price.
	Inherent []string `json:"inherent,omitempty"`
	// Allowances are every exclusion's, in order.
	Allowances []Allowance `json:"allowances,omitempty"`
}

// Scope is the rollout scope the candidate declares: a clause per host
// and path.
func (r Result) Scope() evidence.Scope {
	if len(r.Exclusions) == 1 {
		return r.Exclusions[0].Scope()
	}
	var s evidence.Scope
	for _, e := range r.Exclusions {
		s.Clauses = append(s.Clauses, e.Scope())
	}
	return s
}

// tuner holds one host and path's inputs while it searches.
type tuner struct {
	ctx    context.Context
	base   *ruleset.Ruleset
	bundle ruleset.Bundle
	opt    Options
	insert insertion
	host   string
	path   string
	prefix bool
	pass   []gates.Case
	ids    []string
	notes  []string
	allow  []Allowance // policy lists changed instead of excluding (allow.go)
	// batch is every host and path's text in the candidate; the tuner's
	// own is at index. While each searches, the others are left out:
	// their conditions never hold on this one's requests.
	batch *batch
	index int
}

// batch is what one candidate adds, by tuner index: the text, the rules
// it names for the header, and every request ID.
type batch struct {
	text, adds []string
	ids        []string
}

// Tune finds the narrowest exclusions that let recs through base, whose
// bundle is the served baseline: for each host and path of the requests
// (one for all with Options.Host or Options.Path set) an exclusion rule,
// a policy allowance or both, each with its own conditions and cases, in
// one candidate. It refuses (ErrRefused) when a request is blocked for a
// reason no rule-and-variable exclusion removes, and when an exclusion
// would let a family of attacks through the variable it opens.
func Tune(ctx context.Context, base *ruleset.Ruleset, bundle ruleset.Bundle, recs []capture.Record, opt Options) (Result, error) {
	if len(recs) == 0 {
		return Result{}, errors.New("no requests to tune for")
	}
	if opt.Output == "" {
		opt.Output = "candidate.conf"
	}
	if err := opt.Meta.Validate(); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	groups, err := groupsOf(recs, opt)
	if err != nil {
		return Result{}, err
	}
	ins, err := insertionPoint(base)
	if err != nil {
		return Result{}, err
	}
	b := &batch{text: make([]string, len(groups)), adds: make([]string, len(groups))}
	for _, rec := range recs {
		b.ids = append(b.ids, rec.ID)
	}
	var tuners []*tuner
	var wants [][]Removal
	next := ins.id
	for i, g := range groups {
		t := &tuner{ctx: ctx, base: base, bundle: bundle, opt: opt, insert: ins, host: g.host, path: g.path, prefix: g.prefix, batch: b, index: i}
		t.insert.id = nextID(base, next)
		want, err := t.search(g.recs)
		if err != nil {
			if len(groups) > 1 {
				return Result{}, fmt.Errorf("requests to %s: %w", t.where(), err)
			}
			return Result{}, err
		}
		next = t.insert.id + 1
		for _, a := range t.allow {
			next = max(next, a.RuleID+1)
		}
		tuners, wants = append(tuners, t), append(wants, want)
	}
	for i, t := range tuners {
		b.text[i], b.adds[i] = t.text(wants[i]), t.additions(wants[i])
	}
	return result(tuners, wants)
}

// group is the requests to one host and path.
type group struct {
	host, path string
	prefix     bool
	recs       []capture.Record
}

// groupsOf sorts the requests by the host and path their exclusion is
// conditioned on, in the order they come: a request's own host and path,
// or those the options set for all.
func groupsOf(recs []capture.Record, opt Options) ([]group, error) {
	var host string
	switch opt.Host {
	case AnyHost, "":
	default:
		host = evidence.HostName(opt.Host)
		if !verdict.ValidHostName(host) {
			return nil, fmt.Errorf("%w: --host %q: not a host name", ErrOptions, opt.Host)
		}
	}
	var prefix string
	if opt.Path != "" {
		prefix = strings.TrimSuffix(opt.Path, "/")
		if prefix == "" || !strings.HasPrefix(prefix, "/") {
			return nil, fmt.Errorf("%w: --path %q: want an absolute path below /", ErrOptions, opt.Path)
		}
	}
	var out []group
	for _, rec := range recs {
		g := group{host: host, path: prefix, prefix: prefix != ""}
		if opt.Host == "" {
			g.host = evidence.HostName(rec.Host)
			if !verdict.ValidHostName(g.host) {
				return nil, fmt.Errorf("%w: request %s was sent to %s, which is not a host name a condition can be written for; give --host", ErrRefused, shown(rec.ID), shown(rec.Host))
			}
		}
		p, err := requestPath(rec.URI)
		if err != nil {
			return nil, fmt.Errorf("%w: request %s: %w", ErrRefused, shown(rec.ID), err)
		}
		switch {
		case g.prefix && p != prefix && !strings.HasPrefix(p, prefix+"/"):
			return nil, fmt.Errorf("%w: request %s is for %s, not under --path %s", ErrOptions, shown(rec.ID), shown(p), prefix)
		case !g.prefix:
			g.path = p
		}
		i := slices.IndexFunc(out, func(o group) bool { return o.host == g.host && o.path == g.path })
		if i < 0 {
			out, i = append(out, g), len(out)
		}
		out[i].recs = append(out[i].recs, rec)
	}
	for _, g := range out {
		if err := writablePath(g.path); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// nextID is the first rule ID from id up that base does not use.
func nextID(base *ruleset.Ruleset, id int) int {
	for ; ; id++ {
		if _, used := base.Rule(id); !used {
			return id
		}
	}
}

// search replays recs, the requests to the tuner's host and path, and
// returns the fewest removals that, with the policy allowances it
// settles, let them all through.
func (t *tuner) search(recs []capture.Record) ([]Removal, error) {
	var want []Removal
	var why []string
	for i, rec := range recs {
		c := replay(rec, fmt.Sprintf("blocked request %s (%s %s)", rec.ID, rec.Method, hostHeader(t.host)+rec.URI), t.caseHost(rec))
		v, err := judge(t.ctx, t.base, c)
		if err != nil {
			return nil, err
		}
		if !v.Blocked && rec.Arm == "candidate" && !t.opt.Candidate {
			return nil, fmt.Errorf("%w: request %s was blocked by the candidate %s, and the served baseline %s lets it through: it is the candidate's new block (roll back, or fix the candidate), not the baseline's false positive", ErrRefused, shown(rec.ID), short(rec.Version), short(t.base.Version))
		}
		if !v.Blocked {
			return nil, fmt.Errorf("%w: request %s, replayed from its capture, is let through by %s %s: what blocked it is in a value the capture redacted or cut%s", ErrRefused, shown(rec.ID), t.tuned(), short(t.base.Version), redactedOf(rec))
		}
		t.pass = append(t.pass, c)
		t.ids = append(t.ids, rec.ID)
		for _, m := range v.Rules {
			if evaluation(m.ID) {
				continue
			}
			if policy, err := t.allowFor(m, rec, c); err != nil {
				return nil, err
			} else if policy {
				continue
			}
			if reason := replayOnly(rec, t.base.Version, m.ID); reason != "" {
				why = append(why, fmt.Sprintf("request %s: %s", shown(rec.ID), reason))
				continue
			}
			if m.Omitted > 0 {
				// The verdict keeps only names it can show (package
				// verdict): the others cannot be written as a target.
				why = append(why, fmt.Sprintf("request %s: rule %d matched %d variable(s) not named in its verdict, which no exclusion can be written for: a name holding a control, bidirectional or invalid character, longer than %d bytes, or past the %d a match keeps",
					recs[i].ID, m.ID, m.Omitted, verdict.MaxTargetBytes, verdict.MaxTargets))
			}
			for _, target := range m.Targets {
				if reason := narrow(m.ID, target); reason != "" {
					why = append(why, fmt.Sprintf("request %s: %s", shown(recs[i].ID), reason))
					continue
				}
				if rm := (Removal{m.ID, target}); !slices.Contains(want, rm) {
					want = append(want, rm)
				}
			}
		}
	}
	if len(want) == 0 && len(t.allow) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrRefused, strings.Join(dedupe(why), "; "))
	}
	t.settleAllowance(len(want) == 0)
	rs, blocked, err := t.passes(want)
	if err != nil {
		return nil, err
	}
	rs.Retire()
	if blocked != "" {
		msg := blocked + " is still blocked with every narrowable rule and variable excluded"
		for _, a := range t.allow {
			msg += " and " + a.What + " " + a.Value + " allowed"
		}
		if len(why) > 0 {
			msg += ": " + strings.Join(dedupe(why), "; ")
		}
		return nil, fmt.Errorf("%w: %s", ErrRefused, msg)
	}
	want, err = t.minimise(want)
	if err != nil {
		return nil, err
	}
	for _, reason := range dedupe(why) {
		t.notes = append(t.notes, "not needed, left alone: "+reason)
	}
	t.notes = append(t.notes, siblings(want)...)
	return want, nil
}

// siblings notes the variables of one rule excluded each by name where
// one is the other's member (json.content and json.content.raw: two
// clients send one field two ways): each is written exactly, never as a
// pattern that would take in names no request had, and a third shape of
// the field stays blocked until its request is tuned too.
func siblings(rms []Removal) []string {
	var notes []string
	for i, a := range rms {
		for _, b := range rms[i+1:] {
			if a.Rule != b.Rule {
				continue
			}
			if strings.HasPrefix(b.Target, a.Target+".") || strings.HasPrefix(a.Target, b.Target+".") {
				notes = append(notes, fmt.Sprintf("rule %d: %s and %s are excluded each by name (the requests send one field in two shapes), not by a pattern; another shape of it is still inspected", a.Rule, a.Target, b.Target))
			}
		}
	}
	return notes
}

// writablePath refuses a path tune cannot write as a condition.
func writablePath(p string) error {
	// The path is written into the candidate twice, as the condition and
	// in the rule's msg: a byte that ends the quoted argument or the line,
	// or that a terminal or an editor acts on, has no place there.
	switch {
	case len(p) > maxConditionPath:
		return fmt.Errorf("%w: the path is %d bytes long, too long to write as a condition: tune writes paths of at most %d bytes (Coraza reads a rules file's lines up to %d bytes); give --path with a shorter prefix that holds the request",
			ErrRefused, len(p), maxConditionPath, maxRuleLine)
	case strings.ContainsAny(p, "\"'\\%\x00\r\n\t ") || !printable(p) || !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: path %q cannot be written in a SecLang condition as it is (a quote, backslash, %%, space, control, bidirectional or invalid character); give --path with a prefix that can", ErrRefused, p)
	}
	return nil
}

// maxConditionPath bounds the path tune writes into a condition. Coraza
// reads a rules file's lines up to maxRuleLine bytes and the path goes on
// a line with the targets, escaped for @rx (up to twice as long): 16 KiB
// leaves room for both, and no path of a real site comes close.
const maxConditionPath = 16 << 10

// maxRuleLine is the longest line Coraza's SecLang parser reads (its
// bufio.Scanner's token): past it the parser stops without an error, and
// ruleset refuses such a file.
const maxRuleLine = bufio.MaxScanTokenSize - 1

// printable reports whether s is valid UTF-8 of printable characters and
// spaces only: no C0 or C1 control, DEL, bidirectional override or
// isolate, line separator or other format character, which would change
// how a terminal, an editor or `git diff` shows the text around it.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// shown is s for a message: as it is when printable, else Go-quoted, so
// that an error never carries a client's control characters to a
// terminal.
func shown(s string) string {
	if printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// caseHost is the Host header a request's case is sent with: the
// request's own, as the client wrote it (port, brackets and capitals
// included), so that the cases check the condition against the header the
// WAF will see; with a --host override, that host as a header writes it,
// so that the override is what the cases check.
func (t *tuner) caseHost(rec capture.Record) string {
	if t.opt.Host == "" || t.opt.Host == AnyHost {
		return rec.Host
	}
	return hostHeader(t.host)
}

// hostHeader is host name h as a Host header writes it: an IPv6 literal
// in brackets.
func hostHeader(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// otherHost is a host the exclusion must not apply to: a name that ends
// like h, or for an address literal the next address.
func otherHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		if n := a.Next(); n.IsValid() {
			return hostHeader(n.String())
		}
		return hostHeader(a.Prev().String())
	}
	return "other." + h
}

// passes compiles the candidate with rms and names the first request it
// still blocks ("" when all pass). The caller retires the ruleset.
func (t *tuner) passes(rms []Removal) (*ruleset.Ruleset, string, error) {
	rs, _, err := t.compile(rms)
	if err != nil {
		return nil, "", err
	}
	for _, c := range t.pass {
		v, err := judge(t.ctx, rs, c)
		if err != nil {
			rs.Retire()
			return nil, "", err
		}
		if v.Blocked {
			return rs, fmt.Sprintf("%s (rules %v)", shown(c.Name), v.RuleIDs()), nil
		}
	}
	return rs, "", nil
}

// minimise drops every rule, then every target, whose removal the
// requests do not need: a rule that matched with a warning's score, or a
// second variable of a rule that the first one's removal already settled.
func (t *tuner) minimise(rms []Removal) ([]Removal, error) {
	try := func(without func(Removal) bool) (bool, error) {
		var rest []Removal
		for _, rm := range rms {
			if !without(rm) {
				rest = append(rest, rm)
			}
		}
		if len(rest) == 0 && len(t.allow) == 0 || len(rest) == len(rms) {
			return false, nil
		}
		rs, blocked, err := t.passes(rest)
		if err != nil {
			return false, err
		}
		rs.Retire()
		if blocked == "" {
			for _, rm := range rms {
				if without(rm) {
					t.notes = append(t.notes, fmt.Sprintf("rule %d matched %s but the requests pass without excluding it: left in force", rm.Rule, rm.Target))
				}
			}
			rms = rest
			return true, nil
		}
		return false, nil
	}
	rules := []int{}
	for _, rm := range rms {
		if !slices.Contains(rules, rm.Rule) {
			rules = append(rules, rm.Rule)
		}
	}
	for _, id := range rules {
		if _, err := try(func(rm Removal) bool { return rm.Rule == id }); err != nil {
			return nil, err
		}
	}
	for _, one := range slices.Clone(rms) {
		if _, err := try(func(rm Removal) bool { return rm == one }); err != nil {
			return nil, err
		}
	}
	sort.Slice(rms, func(i, j int) bool {
		if rms[i].Rule != rms[j].Rule {
			return rms[i].Rule < rms[j].Rule
		}
		return rms[i].Target < rms[j].Target
	})
	return rms, nil
}

// result compiles the final candidate, every host and path's text in
// it, and writes its cases: the requests must pass; attacks in each
// opened variable, the same requests on another host and path, must be
// blocked, each judged on the whole candidate.
func result(tuners []*tuner, wants [][]Removal) (Result, error) {
	first := tuners[0]
	rs, files, err := first.compileAll()
	if err != nil {
		return Result{}, err
	}
	defer rs.Retire()
	res := Result{Base: first.base.Version, On: first.base.Version, Candidate: first.opt.Candidate, Main: first.opt.Output, Files: files, Requests: first.batch.ids}
	if first.opt.Candidate {
		res.Base, _ = RecordedBase(first.base)
	}
	for i, t := range tuners {
		e, err := t.result(rs, wants[i], &res)
		if err != nil {
			if len(tuners) > 1 {
				return Result{}, fmt.Errorf("requests to %s: %w", t.where(), err)
			}
			return Result{}, err
		}
		for _, n := range t.notes {
			if len(tuners) > 1 {
				n = fmt.Sprintf("%s: %s", t.where(), n)
			}
			res.Notes = append(res.Notes, n)
		}
		res.Exclusions = append(res.Exclusions, e)
	}
	res.Exclusion = res.Exclusions[0]
	return res, nil
}

// result judges the tuner's part of the candidate cand: its cases go into
// res, and what was checked into a comment above its text, in res.Files
// and in the Exclusion it returns.
func (t *tuner) result(cand *ruleset.Ruleset, rms []Removal, res *Result) (Exclusion, error) {
	e := Exclusion{RuleID: t.insert.id, Host: t.host, Path: t.path, Prefix: t.prefix, Removals: rms, Requests: t.ids, SecLang: t.batch.text[t.index]}
	if len(rms) == 0 && len(t.allow) > 0 {
		e.RuleID = t.allow[0].RuleID
	}
	var own Result
	own.Cases.MustPass = t.pass
	if err := t.attacks(cand, rms, &own); err != nil {
		return e, err
	}
	if err := t.allowanceCases(cand, &own); err != nil {
		return e, err
	}
	e.Allowances = own.Allowances
	res.Cases.MustPass = append(res.Cases.MustPass, own.Cases.MustPass...)
	res.Cases.MustBlock = append(res.Cases.MustBlock, own.Cases.MustBlock...)
	res.Checks = append(res.Checks, own.Checks...)
	res.Families = append(res.Families, own.Families...)
	res.Opened = append(res.Opened, own.Opened...)
	res.Inherent = append(res.Inherent, own.Inherent...)
	res.Allowances = append(res.Allowances, own.Allowances...)
	// Said where the next reader of the rules will look: what was checked,
	// and what was let through with --accept-opened.
	var note strings.Builder
	if len(own.Checks)+len(own.Families) > 0 {
		note.WriteString("# Attacks checked in the excluded variables on this path (blocked by the\n# baseline; the cases file keeps a few of each as must_block):\n")
		for _, l := range (Proof{Rules: own.Checks, Families: own.Families}).Summary() {
			note.WriteString("#   " + l + "\n")
		}
	}
	if len(own.Inherent) > 0 {
		note.WriteString("# Let through as the requests are (in the variable, only rules the requests\n# trip there too caught them; no narrower exclusion keeps them blocked):\n")
		for _, o := range own.Inherent {
			note.WriteString("#   " + strings.ReplaceAll(o, "\n", " ") + "\n")
		}
	}
	switch {
	case len(own.Opened) > 0 && t.opt.AcceptOpened:
		note.WriteString("# Written with --accept-opened: the baseline blocks these attacks, this exclusion does not:\n")
	case len(own.Opened) > 0:
		note.WriteString("# The baseline blocks these attacks of other families, this exclusion does not\n# (others of each family stay blocked):\n")
	}
	for _, o := range own.Opened {
		note.WriteString("#   " + strings.ReplaceAll(o, "\n", " ") + "\n")
	}
	if note.Len() > 0 {
		if err := writable(note.String()); err != nil {
			return e, err
		}
		// The first line names this tuner's rule, which no other part
		// of the candidate does.
		head := strings.SplitAfterN(e.SecLang, "\n", 2)
		e.SecLang = head[0] + note.String() + head[1]
		res.Files[res.Main] = []byte(strings.Replace(string(res.Files[res.Main]), head[0], head[0]+note.String(), 1))
	}
	return e, nil
}

// attacks adds the must_block cases and refuses an exclusion that opens
// its variable (Prove, then Proof.Refusal), then adds the same request on
// another host and path, which the conditions must keep blocked.
func (t *tuner) attacks(cand *ruleset.Ruleset, rms []Removal, res *Result) error {
	add := func(c gates.Case) { res.Cases.MustBlock = append(res.Cases.MustBlock, c) }
	if len(rms) > 0 {
		p, err := Prove(t.ctx, t.base, cand, t.pass, rms, t.path)
		if err != nil {
			return err
		}
		if err := p.Refusal(rms, t.opt.AcceptOpened); err != nil {
			return err
		}
		res.Cases.MustBlock = append(res.Cases.MustBlock, p.MustBlock...)
		res.Checks, res.Families, res.Opened, res.Inherent = p.Rules, p.Families, p.Opened(), p.Inherent()
		t.notes = append(t.notes, p.Notes...)
	}
	for _, c := range t.pass {
		if t.host != "" {
			other := otherHost(t.host)
			o := withHost(c, other)
			o.Name = "the same request for another host (" + other + ")"
			add(o)
		}
		other := t.otherPath()
		o := withPath(c, other)
		o.Name = "the same request on another path (" + other + ")"
		add(o)
		break
	}
	for _, c := range res.Cases.MustBlock[len(res.Cases.MustBlock)-min(2, len(res.Cases.MustBlock)):] {
		v, err := judge(t.ctx, cand, c)
		if err != nil {
			return err
		}
		if !v.Blocked {
			return fmt.Errorf("the exclusion's conditions do not hold: %q is let through; this is a bug in tune, please report it", c.Name)
		}
	}
	return nil
}

func rulesOf(rms []Removal, target string) string {
	var ids []string
	for _, rm := range rms {
		if rm.Target == target {
			ids = append(ids, fmt.Sprint(rm.Rule))
		}
	}
	return "rule " + strings.Join(ids, ", ")
}

// tuned names the ruleset tuned, for messages and comments.
func (t *tuner) tuned() string {
	if t.opt.Candidate {
		return "the candidate"
	}
	return "the served baseline"
}

func judge(ctx context.Context, rs *ruleset.Ruleset, c gates.Case) (verdict.Verdict, error) {
	return gates.Judge(ctx, rs, c)
}

func redactedOf(rec capture.Record) string {
	var names []string
	for _, k := range sortedKeys(rec.Header) {
		for _, v := range rec.Header[k] {
			if v == capture.Placeholder {
				names = append(names, k)
				break
			}
		}
	}
	s := ""
	if len(names) > 0 {
		s = " (headers redacted: " + strings.Join(names, ", ") + ")"
	}
	if rec.BodyNote != "" {
		s += " (body: " + rec.BodyNote + ")"
	}
	return s
}

func dedupe(s []string) []string {
	out := []string{}
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}
