package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"github.com/corazawaf/coraza/v3/experimental"

	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/suite"
	"github.com/wafcanary/wafcanary/verdict"
)

// removalCandidates are exclusions as operators write them, each the
// shipped baseline plus one change, chosen to touch rules the CRS suite
// and the mix make match: runtime and configure-time, by ID and by tag,
// targets and whole rules, on one path and on every request.
var removalCandidates = []struct{ name, before, after string }{
	{name: "ctl target, every GET", before: `SecRule REQUEST_METHOD "@streq GET" "id:10010,phase:1,pass,t:none,nolog,ctl:ruleRemoveTargetById=942100;ARGS,ctl:ruleRemoveTargetById=941100;ARGS"`},
	{name: "ctl target, chained condition", before: `SecRule REQUEST_FILENAME "@beginsWith /" "id:10011,phase:1,pass,t:none,nolog,chain"
SecRule REQUEST_HEADERS:Host "@streq localhost" "t:none,ctl:ruleRemoveTargetById=932160;ARGS,ctl:ruleRemoveTargetById=930120;ARGS"`},
	{name: "ctl whole rules, one path", before: `SecRule REQUEST_FILENAME "@streq /" "id:10012,phase:1,pass,t:none,nolog,ctl:ruleRemoveById=942100,ctl:ruleRemoveById=941100,ctl:ruleRemoveById=933160"`},
	{name: "ctl on a chain's first link", before: `SecRule REQUEST_METHOD "@streq POST" "id:10013,phase:1,pass,t:none,nolog,chain,ctl:ruleRemoveTargetById=942100;ARGS"
SecRule REQUEST_HEADERS:Content-Type "@contains form" "t:none"`},
	{name: "SecRuleRemoveById", after: "SecRuleRemoveById 941100 942100 930120"},
	{name: "SecRuleRemoveByTag", after: "SecRuleRemoveByTag attack-lfi"},
	{name: "SecRuleUpdateTargetById", after: `SecRuleUpdateTargetById 930110 "!ARGS|!REQUEST_URI"`},
	{name: "SecRuleUpdateTargetByTag", after: `SecRuleUpdateTargetByTag attack-injection-generic "!ARGS"`},
}

// wholeSuiteEnv has TestDerivedShadowVerdictsEqualFullEvaluation judge
// every CRS request instead of every tenth: about 48,000 evaluations on
// ten rulesets, a minute of both cores, so .ci/run runs it alone and
// `go test ./...` takes the tenth (the mix is whole either way).
const wholeSuiteEnv = "TEST_DERIVED_VERDICTS_OVER_THE_WHOLE_SUITE"

// TestDerivedShadowVerdictsEqualFullEvaluation is the evidence behind
// the differential shadow (ruleset.Difference): over the CRS regression
// suite's requests and the bench mix, wherever the shortcut would take
// the enforcing verdict for the other ruleset's, full evaluation gives
// exactly that verdict (blocked, status, interrupting rule, every logged
// rule with its targets, the inbound score), in both directions, for the
// shipped exclusion and each removal candidate above.
func TestDerivedShadowVerdictsEqualFullEvaluation(t *testing.T) {
	base := loadRuleset(t, "../configs/rulesets/baseline.conf")
	type cand struct {
		name string
		rs   *ruleset.Ruleset
		diff *ruleset.Difference
	}
	shipped := loadRuleset(t, "../configs/rulesets/candidate-exclusion.conf")
	cands := []cand{{name: "shipped exclusion", rs: shipped}}
	for _, c := range removalCandidates {
		cands = append(cands, cand{name: c.name, rs: variantOf(t, c.before, c.after)})
	}
	for i := range cands {
		cands[i].diff = ruleset.Compare(base, cands[i].rs)
		if !cands[i].diff.RemovalOnly {
			t.Fatalf("%s: %s", cands[i].name, cands[i].diff)
		}
		t.Logf("%s: %s, rules %v, exclusions %v", cands[i].name, cands[i].diff, cands[i].diff.Affected, cands[i].diff.Exclusions)
	}

	reqs := mixInputs(t)
	nMix := len(reqs)
	crs := crsInputs(t)
	if os.Getenv(wholeSuiteEnv) == "" {
		// Every tenth case keeps the run to a few seconds; the whole
		// suite is .ci/run's, in a step of its own.
		t.Logf("every tenth CRS request: set %s=1 for all of them", wholeSuiteEnv)
		var some []input
		for i := 0; i < len(crs); i += 10 {
			some = append(some, crs[i])
		}
		crs = some
	}
	reqs = append(reqs, crs...)

	type tally struct {
		pairs, derivedB, derivedC, wrong   int // derivedB: baseline enforcing
		mapOrder                           int // equal to another evaluation's
		mixPairs, mixDerivedB, mixDerivedC int
	}
	tallies := make([]tally, len(cands))
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				in := reqs[i]
				vb, onBase := judgeAll(t, base, in, cands, func(c cand) *ruleset.Difference { return c.diff })
				for j, c := range cands {
					vc, onCand := judgeAll(t, c.rs, in, cands[j:j+1], func(c cand) *ruleset.Difference { return c.diff })
					candAgrees, baseAgrees := onBase[j].candidateAgrees, onCand[0].baselineAgrees
					same := reflect.DeepEqual(canonical(vb), canonical(vc))
					if !same && (candAgrees || baseAgrees) {
						// Coraza walks some collections in Go's map order, so
						// the same request on the same ruleset can list another
						// key (TX:multipart_headers_content_types_0 or _1). A
						// derived verdict that full evaluation also gives is
						// as good as one evaluation.
						full, derived := c.rs, vb
						if !candAgrees {
							full, derived = base, vc
						}
						same = canGive(t, full, in, derived, 40)
						if same {
							mu.Lock()
							tallies[j].mapOrder++
							mu.Unlock()
						}
					}
					mu.Lock()
					tl := &tallies[j]
					tl.pairs++
					if i < nMix {
						tl.mixPairs++
					}
					if candAgrees {
						tl.derivedB++
						if i < nMix {
							tl.mixDerivedB++
						}
					}
					if baseAgrees {
						tl.derivedC++
						if i < nMix {
							tl.mixDerivedC++
						}
					}
					if (candAgrees || baseAgrees) && !same {
						tl.wrong++
						t.Errorf("%s, %s: derived verdict differs from full evaluation (baseline enforcing: derived %v; candidate enforcing: derived %v)\nbaseline  %+v\ncandidate %+v",
							c.name, in.name, candAgrees, baseAgrees, vb, vc)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range reqs {
		work <- i
	}
	close(work)
	wg.Wait()

	t.Logf("%d requests: %d from the mix, %d from the CRS suite", len(reqs), nMix, len(reqs)-nMix)
	t.Logf("%-30s %8s %18s %18s %14s %14s %10s", "candidate", "pairs", "derived (base)", "derived (cand)", "mix (base)", "mix (cand)", "map order")
	for j, c := range cands {
		tl := tallies[j]
		pct := func(a, b int) string { return fmt.Sprintf("%d (%.0f%%)", a, 100*float64(a)/float64(max(b, 1))) }
		t.Logf("%-30s %8d %18s %18s %14s %14s %10d", c.name, tl.pairs, pct(tl.derivedB, tl.pairs), pct(tl.derivedC, tl.pairs),
			pct(tl.mixDerivedB, tl.mixPairs), pct(tl.mixDerivedC, tl.mixPairs), tl.mapOrder)
	}
	// The shortcut has to be worth having on ordinary traffic: with the
	// shipped exclusion, the mix's only requests evaluated in full are the
	// two attacks that name an OS file (/etc/passwd, /etc/shadow: 930120
	// matches on the baseline's side) and the support tickets, one per
	// cycle (the exclusion matches on the candidate's).
	if tl := tallies[0]; tl.mixDerivedB != tl.mixPairs-2 || tl.mixDerivedC != tl.mixPairs-len(mixAttacks) {
		t.Errorf("shipped exclusion on the mix: %d and %d of %d pairs derived, want %d and %d",
			tl.mixDerivedB, tl.mixDerivedC, tl.mixPairs, tl.mixPairs-2, tl.mixPairs-len(mixAttacks))
	}
	for j, c := range cands {
		tl := tallies[j]
		if tl.derivedB == 0 || tl.derivedB == tl.pairs {
			t.Errorf("%s: %d of %d pairs derived with the baseline enforcing: the candidate set should exercise both paths", c.name, tl.derivedB, tl.pairs)
		}
		if c.diff.Static && tl.derivedC != 0 {
			t.Errorf("%s: a removal on every request, yet %d pairs derived with the candidate enforcing", c.name, tl.derivedC)
		}
	}
}

// canonical sorts each rule's targets: Coraza lists the targets of a
// collection such as MATCHED_VARS in Go's map order, which differs from
// one evaluation to the next of the same request on the same ruleset.
func canonical(v verdict.Verdict) verdict.Verdict {
	v.Rules = slices.Clone(v.Rules)
	for i := range v.Rules {
		v.Rules[i].Targets = slices.Sorted(slices.Values(v.Rules[i].Targets))
	}
	return v
}

// canGive reports whether evaluating in on rs gives want in one of n
// tries, or, when those tries themselves disagree (the same request on
// the same ruleset), whether want differs from one of them only in which
// key of a collection a rule named: with a dozen multipart parts, 922110
// names any of TX:multipart_headers_content_types_0 to _11.
func canGive(t *testing.T, rs *ruleset.Ruleset, in input, want verdict.Verdict, n int) bool {
	seen := map[string]bool{}
	var first verdict.Verdict
	for i := range n {
		v, _ := judgeAll(t, rs, in, []int(nil), func(int) *ruleset.Difference { return nil })
		if reflect.DeepEqual(canonical(v), canonical(want)) {
			return true
		}
		if i == 0 {
			first = v
		}
		seen[fmt.Sprint(canonical(v))] = true
	}
	return len(seen) > 1 && reflect.DeepEqual(keyless(first), keyless(want))
}

// keyless is canonical without the keys of the targets.
func keyless(v verdict.Verdict) verdict.Verdict {
	v = canonical(v)
	for i := range v.Rules {
		for j, tg := range v.Rules[i].Targets {
			name, _, _ := strings.Cut(tg, ":")
			v.Rules[i].Targets[j] = name
		}
	}
	return v
}

// input is one request of the corpus, as raw HTTP.
type input struct {
	name string
	raw  []byte
}

type decision struct{ candidateAgrees, baselineAgrees bool }

// judgeAll runs in's request phases through rs, as the proxy and the
// shadow worker do, and decides, while the transaction is open, what each
// candidate's difference would derive from its matches.
func judgeAll[C any](t *testing.T, rs *ruleset.Ruleset, in input, cands []C, diff func(C) *ruleset.Difference) (verdict.Verdict, []decision) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in.raw)))
	if err != nil {
		t.Fatalf("%s: %v", in.name, err) // crsInputs keeps only requests that parse
	}
	req := verdict.RequestOf(r, in.name, "127.0.0.1", 40000)
	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody {
		body = r.Body
	}
	tx := rs.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: in.name, Context: context.Background()})
	defer tx.Close()
	if _, _, err := verdict.RequestPhases(tx, rs, &req, body); err != nil {
		t.Errorf("%s: %v", in.name, err)
	}
	ds := make([]decision, len(cands))
	for i, c := range cands {
		ds[i] = decision{diff(c).CandidateAgrees(tx.MatchedRules()), diff(c).BaselineAgrees(tx.MatchedRules())}
	}
	return verdict.Of(tx), ds
}

func mixInputs(t *testing.T) []input {
	var out []input
	for i, m := range mixRequests() {
		r, err := http.NewRequest(m.Method, "http://shop.example.com"+m.Path, strings.NewReader(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range mixHeaders {
			r.Header.Set(h[0], h[1])
		}
		if m.ContentType != "" {
			r.Header.Set("Content-Type", m.ContentType)
		}
		var b bytes.Buffer
		if err := r.Write(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, input{name: fmt.Sprintf("mix-%03d %s %s", i, m.Method, m.Path), raw: b.Bytes()})
	}
	return out
}

// crsInputs are the CRS regression suite's requests that Go's HTTP parser
// reads (the proxy never sees the others: net/http answers them 400).
func crsInputs(t *testing.T) []input {
	cases, err := suite.Load(crstests.FS)
	if err != nil {
		t.Fatal(err)
	}
	var out []input
	for _, c := range cases {
		for i, st := range c.Stages {
			raw := st.Input.Bytes()
			if _, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw))); err != nil {
				continue
			}
			out = append(out, input{name: fmt.Sprintf("%s/%d", c.ID, i), raw: raw})
		}
	}
	if len(out) < 4000 {
		t.Fatalf("only %d CRS requests parse", len(out))
	}
	return out
}

func loadRuleset(t testing.TB, path string) *ruleset.Ruleset {
	t.Helper()
	rs, err := ruleset.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Retire)
	return rs
}

// variantOf is the shipped baseline with before ahead of the CRS rules
// include and after at the end.
func variantOf(t *testing.T, before, after string) *ruleset.Ruleset {
	t.Helper()
	b, err := os.ReadFile("../configs/rulesets/baseline.conf")
	if err != nil {
		t.Fatal(err)
	}
	const crs = "Include @owasp_crs/*.conf"
	s := strings.Replace(string(b), crs, before+"\n"+crs, 1) + "\n" + after + "\n"
	path := filepath.Join(t.TempDir(), "candidate.conf")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadRuleset(t, path)
}

// TestExceptionShortcutEqualsFullEvaluation is the evidence behind the
// exception monitor's shortcut (exception.Monitor): a baseline carrying
// the shipped exclusion and every removal candidate above as its
// exceptions serves the mix and the CRS suite's requests; wherever the
// variant without one exception is taken to reach the served verdict
// (ruleset.Compare(variant, served).BaselineAgrees on the served
// transaction's matches, nolog ones included, as the monitor decides),
// full evaluation of that variant gives exactly that verdict. A
// directive, and an exclusion acting from a chain's first link, are
// never derived.
func TestExceptionShortcutEqualsFullEvaluation(t *testing.T) {
	var before, after []string
	for _, c := range removalCandidates {
		if c.before != "" {
			before = append(before, c.before)
		}
		if c.after != "" {
			// Reversed: a removal by tag takes away 930110, which an
			// update by ID names.
			after = append([]string{c.after}, after...)
		}
	}
	shipped, err := os.ReadFile("../configs/rulesets/candidate-exclusion.conf")
	if err != nil {
		t.Fatal(err)
	}
	const crs = "Include @owasp_crs/*.conf"
	text := strings.Replace(string(shipped), crs, strings.Join(before, "\n")+"\n"+crs, 1) + "\n" + strings.Join(after, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "served.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	served := loadRuleset(t, path)
	type variant struct {
		e    exception.Exception
		rs   *ruleset.Ruleset
		diff *ruleset.Difference
	}
	var vs []variant
	for _, e := range exception.List(served, time.Time{}) {
		w, err := exception.Without(served, e)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Retire)
		vs = append(vs, variant{e: e, rs: w, diff: ruleset.Compare(w, served)})
	}
	if len(vs) != 1+len(removalCandidates) {
		t.Fatalf("%d exceptions, want %d", len(vs), 1+len(removalCandidates))
	}

	reqs := mixInputs(t)
	crsAll := crsInputs(t)
	for i := 0; i < len(crsAll); i += 10 {
		reqs = append(reqs, crsAll[i])
	}
	derived := make([]int, len(vs))
	var mu sync.Mutex
	work := make(chan input)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for in := range work {
				vServed, ds := judgeAll(t, served, in, vs, func(v variant) *ruleset.Difference { return v.diff })
				for j, v := range vs {
					if !ds[j].baselineAgrees {
						continue
					}
					vFull, _ := judgeAll(t, v.rs, in, []int(nil), func(int) *ruleset.Difference { return nil })
					same := reflect.DeepEqual(canonical(vServed), canonical(vFull)) || canGive(t, v.rs, in, vServed, 40)
					mu.Lock()
					derived[j]++
					if !same {
						t.Errorf("exception %s, %s: derived verdict differs from full evaluation\nserved  %+v\nwithout %+v", v.e.ID, in.name, vServed, vFull)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, in := range reqs {
		work <- in
	}
	close(work)
	wg.Wait()
	t.Logf("%d requests (the mix and every tenth CRS one)", len(reqs))
	for j, v := range vs {
		t.Logf("exception %-12s %-40s derived %5d of %d (%s)", v.e.ID, strings.Join(v.e.Kinds, ","), derived[j], len(reqs), v.diff)
		conditional := len(v.e.Conditions) > 0 && !v.diff.Static
		switch {
		case conditional && derived[j] == 0:
			t.Errorf("exception %s acts only when it matches, yet nothing was derived", v.e.ID)
		case !conditional && derived[j] != 0:
			t.Errorf("exception %s acts on every request (or from a chain's first link), yet %d verdicts were derived", v.e.ID, derived[j])
		}
	}
}
