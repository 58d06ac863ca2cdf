package gates

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"

	"github.com/wafcanary/wafcanary/exception"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/suite"
)

// ErrRefused marks a candidate refused by its gates.
var ErrRefused = errors.New("refused by its gates")

// Report is the outcome of every gate for one candidate against one
// baseline. The candidate passes when Problems is empty.
type Report struct {
	Baseline  string      `json:"baseline_version"`
	Candidate string      `json:"candidate_version"`
	Guard     []Violation `json:"guard"`
	Cases     []Failure   `json:"cases"`
	// CasesChecked is the number of must_pass and must_block cases judged.
	CasesChecked int          `json:"cases_checked"`
	Suite        *SuiteReport `json:"suite,omitempty"`
	// Exceptions are what the candidate's exceptions lack (an owner, an
	// expiry date) or name in vain (a rule it does not load), when
	// strict_exceptions refuses them; ExceptionNotes the same and other
	// notes, when it only warns.
	Exceptions     []string `json:"exceptions,omitempty"`
	ExceptionNotes []string `json:"exception_notes,omitempty"`
}

// SuiteReport is the CRS regression suite run through both rulesets side
// by side.
type SuiteReport struct {
	// Tests says whose regression tests ran: the candidate's CRS's
	// (SuiteTests).
	Tests     string         `json:"tests"`
	Baseline  suite.Report   `json:"baseline"`
	Candidate suite.Report   `json:"candidate"`
	Changes   []suite.Change `json:"changes"`
	Seconds   float64        `json:"seconds"`
	Cost      Cost           `json:"cost"`
}

// Cost compares the median time each ruleset spent inside Coraza per case.
// Both ran under the suite's profile (every paranoia level), interleaved
// case by case, so the ratio is what the candidate's own edits cost.
type Cost struct {
	Ratio float64 `json:"ratio"`
	Limit float64 `json:"limit"`
}

// Regressions returns the changes that lose a passing case.
func (s *SuiteReport) Regressions() []suite.Change {
	var out []suite.Change
	for _, c := range s.Changes {
		if c.Regression() {
			out = append(out, c)
		}
	}
	return out
}

// Problems lists what refuses the candidate, one line each.
func (r Report) Problems() []string {
	var out []string
	for _, v := range r.Guard {
		out = append(out, v.String())
	}
	for _, f := range r.Cases {
		out = append(out, f.String())
	}
	out = append(out, r.Exceptions...)
	if s := r.Suite; s != nil {
		for _, c := range s.Regressions() {
			out = append(out, fmt.Sprintf("CRS case %s (rule %d) passes on the baseline and fails on the candidate: %s", c.Case, c.RuleID, c.Why))
		}
		if s.Cost.Ratio > s.Cost.Limit {
			out = append(out, fmt.Sprintf("median WAF time over the CRS suite is %.2fx the baseline's (%s vs %s), above the limit of %.2fx",
				s.Cost.Ratio, s.Candidate.MedianWAFTime.Round(time.Microsecond), s.Baseline.MedianWAFTime.Round(time.Microsecond), s.Cost.Limit))
		}
	}
	return out
}

// crsCases are CRS's regression tests, parsed once per process.
var crsCases = sync.OnceValues(func() ([]suite.Case, error) { return suite.Load(crstests.FS) })

// SuiteTests picks the regression tests the CRS suite runs for a
// candidate: those of the candidate's CRS. A CRS read from a directory
// brings its own when they are there (a release's tests/regression/tests,
// or the tests/ beside a coraza-coreruleset version's rules/); otherwise,
// and for the embedded CRS, the embedded CRS's tests run. It returns the
// cases and which tests they are.
func SuiteTests(cand *ruleset.Ruleset) ([]suite.Case, string, error) {
	if t := testsDir(cand); t != "" {
		cases, err := suite.Load(os.DirFS(t))
		if err != nil {
			return nil, "", fmt.Errorf("the regression tests of %s (%s): %w", cand.CRS, t, err)
		}
		return cases, fmt.Sprintf("CRS %s from %s", cand.CRS.Version, t), nil
	}
	cases, err := crsCases()
	from := "the embedded CRS's"
	if cand.CRS.Dir == "" && cand.CRS.Version != "" {
		from = "CRS " + cand.CRS.Version + " (embedded)"
	}
	return cases, from, err
}

// TestsFS is the regression tests of rs's CRS, as SuiteTests picks them:
// those beside a CRS read from a directory when they are there, else the
// embedded CRS's. tune sends a removed rule's own payloads from them, so
// that an exclusion written on an upgrade's CRS is checked with its tests.
func TestsFS(rs *ruleset.Ruleset) fs.FS {
	if t := testsDir(rs); t != "" {
		return os.DirFS(t)
	}
	return crstests.FS
}

// testsDir is the directory of the regression tests beside rs's CRS, ""
// for none: a release's tests/regression/tests, or the tests/ beside a
// coraza-coreruleset version's rules/.
func testsDir(rs *ruleset.Ruleset) string {
	dir := rs.CRS.Dir
	if dir == "" || !filepath.IsAbs(dir) {
		return ""
	}
	for _, t := range []string{filepath.Join(dir, "tests", "regression", "tests"), filepath.Join(filepath.Dir(dir), "tests")} {
		if info, err := os.Stat(filepath.Join(t, "REQUEST-911-METHOD-ENFORCEMENT")); err == nil && info.IsDir() {
			return t
		}
	}
	return ""
}

// Evaluate runs every gate: the forbidden-edit guard, the candidate's own
// cases (if cs is not nil) and, when cfg.CRSSuite is set, the CRS
// regression suite through both rulesets with the cost comparison.
//
// proxy builds the proxies the suite goes through (router.Standalone).
func Evaluate(ctx context.Context, base, cand *ruleset.Ruleset, cs *Cases, cfg Config, proxy suite.Proxy) (Report, error) {
	tell := progressOf(ctx)
	tell(StageGuard, 0, 0)
	r := Report{Baseline: base.Version, Candidate: cand.Version, Guard: Guard(base, cand, cfg)}
	r.Exceptions, r.ExceptionNotes = AuditExceptions(cand, cfg)
	if cs != nil {
		tell(StageCases, 0, len(cs.MustPass)+len(cs.MustBlock))
		failures, err := Check(ctx, cand, *cs)
		if err != nil {
			return Report{}, err
		}
		r.Cases = failures
		r.CasesChecked = len(cs.MustPass) + len(cs.MustBlock)
	}
	if cfg.CRSSuite {
		tell(StageSuite, 0, 0)
		s, err := RunSuite(ctx, base, cand, proxy)
		if err != nil {
			return Report{}, err
		}
		s.Cost.Limit = cfg.MaxCostRatio
		r.Suite = s
	}
	return r, nil
}

// AuditExceptions audits rs's exceptions (exception.Audit) under cfg: with
// strict_exceptions, what it finds is problems, and otherwise notes. No
// expiry is judged: the gates read no clock.
func AuditExceptions(rs *ruleset.Ruleset, cfg Config) (problems, notes []string) {
	problems, notes = exception.Audit(exception.List(rs, time.Time{}))
	if !cfg.StrictExceptions {
		return nil, append(problems, notes...)
	}
	return problems, notes
}

// Stages of Evaluate, as Progress is told them.
const (
	StageGuard = "guard"
	StageCases = "cases"
	StageSuite = "crs_suite"
)

// Progress is told which stage of the gates runs and, for the CRS suite,
// how many of its cases were sent: what `start` shows while it waits.
type Progress func(stage string, done, total int)

type progressKey struct{}

// WithProgress returns ctx carrying p, for Evaluate to tell.
func WithProgress(ctx context.Context, p Progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

func progressOf(ctx context.Context) Progress {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok && p != nil {
		return p
	}
	return func(string, int, int) {}
}

// RunSuite sends the CRS regression suite through two wafcanary proxies on
// loopback, one per ruleset, each compiled under the suite's profile, and
// compares them case by case.
func RunSuite(ctx context.Context, base, cand *ruleset.Ruleset, proxy suite.Proxy) (*SuiteReport, error) {
	cases, tests, err := SuiteTests(cand)
	if err != nil {
		return nil, fmt.Errorf("loading the CRS regression suite: %w", err)
	}
	began := time.Now()
	var targets []*suite.Instance
	defer func() {
		for _, in := range targets {
			_ = in.Close()
		}
	}()
	for _, rs := range []*ruleset.Ruleset{base, cand} {
		prof, err := suite.Compile(rs)
		if err != nil {
			// rs itself compiles, so the clash is with the suite's test
			// profile, most likely a SecDefaultAction for phase 3, 4 or 5.
			return nil, fmt.Errorf("%s compiles, but not under the CRS suite's test profile (suite/profile.conf sets SecDefaultAction for phases 3 to 5; remove the ruleset's own, or skip the suite with --crs-suite=false or gates.crs_suite: false): %w", rs.Path, err)
		}
		in, err := suite.Start(prof, proxy)
		if err != nil {
			prof.Retire()
			return nil, err
		}
		targets = append(targets, in)
	}
	tell := progressOf(ctx)
	reps, err := suite.Run(ctx, cases, targets, suite.Options{Ignore: suite.Ignored(),
		Progress: func(done, total int) { tell(StageSuite, done, total) }})
	if err != nil {
		return nil, err
	}
	s := &SuiteReport{Tests: tests, Baseline: reps[0], Candidate: reps[1], Changes: suite.Diff(reps[0], reps[1])}
	s.Baseline.Version, s.Candidate.Version = base.Version, cand.Version
	if b := reps[0].MedianWAFTime; b > 0 {
		s.Cost.Ratio = float64(reps[1].MedianWAFTime) / float64(b)
	}
	s.Seconds = time.Since(began).Seconds()
	return s, nil
}
