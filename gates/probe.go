package gates

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"

	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/suite"
	"github.com/wafcanary/wafcanary/verdict"
)

// ProbeAttacks are classic attacks on a neutral path that any CRS-based
// candidate must keep blocking; live probes add them to a rollout's own
// must_block cases.
var ProbeAttacks = []Case{
	{Name: "probe: SQL injection tautology", Path: "/probe?id=1%27%20OR%20%271%27%3D%271%27--"},
	{Name: "probe: SQL injection union", Path: "/probe?q=%27%20UNION%20SELECT%20username%2C%20password%20FROM%20users--"},
	{Name: "probe: XSS script tag", Path: "/probe?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"},
	{Name: "probe: path traversal", Path: "/probe?file=..%2F..%2F..%2F..%2Fetc%2Fpasswd"},
	{Name: "probe: command injection", Path: "/probe?host=127.0.0.1%3Bcat%20%2Fetc%2Fpasswd"},
}

// MaxCRSProbes bounds the CRS attack cases each live probe judges: two
// rulesets at ~2 ms each per case, every analysis interval.
const MaxCRSProbes = 60

// probe is one request a live probe judges with both rulesets.
type probe struct {
	name  string // as it appears in a rollback reason
	build func() (*http.Request, error)
}

// Probe judges every must_block case, ProbeAttacks, and a fixed sample of
// CRS's own attack regression cases (CRSProbes) with both rulesets in
// process: nothing reaches the upstream. It returns the first request the
// baseline blocks and the candidate lets through, described for a rollback
// reason, or "" if there is none.
func Probe(ctx context.Context, base, cand *ruleset.Ruleset, mustBlock []Case) (string, error) {
	var probes []probe
	for _, c := range mustBlock {
		probes = append(probes, probe{fmt.Sprintf("must_block case %q", c.Name), c.request})
	}
	for _, c := range ProbeAttacks {
		probes = append(probes, probe{fmt.Sprintf("must_block case %q", c.Name), c.request})
	}
	for _, c := range CRSProbes(base, cand) {
		probes = append(probes, probe{fmt.Sprintf("CRS case %s (rule %d)", c.ID, c.RuleID), c.request})
	}
	for _, p := range probes {
		b, err := judgeProbe(ctx, base, p)
		if err != nil {
			return "", err
		}
		if !b.Blocked {
			continue // the baseline lets it through too: nothing was lost
		}
		k, err := judgeProbe(ctx, cand, p)
		if err != nil {
			return "", err
		}
		if !k.Blocked {
			return fmt.Sprintf("live probe: %s is blocked by the baseline (rules %v) and let through by the candidate", p.name, b.RuleIDs()), nil
		}
	}
	return "", nil
}

func judgeProbe(ctx context.Context, rs *ruleset.Ruleset, p probe) (verdict.Verdict, error) {
	r, err := p.build()
	if err != nil {
		return verdict.Verdict{}, err
	}
	return verdict.JudgeHTTP(ctx, rs, "probe", r)
}

// CRSProbe is a CRS regression case that is an attack, as a request.
type CRSProbe struct {
	ID     string
	RuleID int
	raw    []byte
}

func (c CRSProbe) request() (*http.Request, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(c.raw)))
	if err != nil {
		return nil, fmt.Errorf("CRS case %s: %w", c.ID, err)
	}
	return r, nil
}

// attackCases are the cases of the CRS tests in dir ("" for the
// embedded CRS's) that show an attack rule firing: single-stage cases
// under the REQUEST-93x and 94x files that expect their own rule, keeping
// the first such case of each rule, as requests Go can parse. Each dir's
// are read once: a probe runs every analysis.
func attackCases(dir string) []CRSProbe {
	attackMu.Lock()
	defer attackMu.Unlock()
	if out, ok := attackByDir[dir]; ok {
		return out
	}
	var cases []suite.Case
	var err error
	if dir == "" {
		cases, err = crsCases()
	} else {
		cases, err = suite.Load(os.DirFS(dir))
	}
	if err != nil {
		cases = nil // RunSuite reports the error; the probe goes on without
	}
	out := attackCasesOf(cases)
	attackByDir[dir] = out
	return out
}

var (
	attackMu    sync.Mutex
	attackByDir = map[string][]CRSProbe{}
)

func attackCasesOf(cases []suite.Case) []CRSProbe {
	var out []CRSProbe
	seen := map[int]bool{}
	for _, c := range cases {
		if c.RuleID < 930000 || c.RuleID >= 950000 || seen[c.RuleID] || len(c.Stages) != 1 ||
			!slices.Contains(c.Stages[0].Output.ExpectIDs, c.RuleID) {
			continue
		}
		p := CRSProbe{ID: c.ID, RuleID: c.RuleID, raw: c.Stages[0].Input.Bytes()}
		if _, err := p.request(); err != nil {
			continue
		}
		seen[c.RuleID] = true
		out = append(out, p)
	}
	return out
}

// CRSProbes is the fixed sample of CRS attack cases live probes judge for
// base and cand: one case per attack rule that base loads at paranoia
// level 1 (the rules a default deployment blocks with; a candidate that
// removes one must still be asked about it), spread evenly over the rules
// and at most MaxCRSProbes, from the regression tests of cand's CRS
// (TestsFS: those beside a CRS directory, else the embedded CRS's), as
// the suite gate takes them: a CRS upgrade changes some of its rules on
// purpose, and the old release's cases for them are no longer what the
// new one must block. The same pair always gets the same sample.
func CRSProbes(base, cand *ruleset.Ruleset) []CRSProbe {
	pl1 := map[int]bool{}
	for _, r := range base.Rules {
		if r.Paranoia == 1 {
			pl1[r.ID] = true
		}
	}
	var eligible []CRSProbe
	for _, c := range attackCases(testsDir(cand)) {
		if pl1[c.RuleID] {
			eligible = append(eligible, c)
		}
	}
	if len(eligible) > MaxCRSProbes {
		picked := make([]CRSProbe, 0, MaxCRSProbes)
		for i := range MaxCRSProbes {
			picked = append(picked, eligible[i*len(eligible)/MaxCRSProbes])
		}
		eligible = picked
	}
	return eligible
}
