package replay

import (
	"net/http"
	"time"

	"github.com/wafcanary/wafcanary/evidence"
	"github.com/wafcanary/wafcanary/rollout"
)

// Report is what a replay found. Its JSON is what `wafcanary replay -o
// json` prints.
type Report struct {
	Baseline  string `json:"baseline"`
	Candidate string `json:"candidate"`
	// Requests were read and judged (or failed to be); Pairs judged by
	// both rulesets, Derived of them without evaluating the candidate.
	Requests int64 `json:"requests"`
	Pairs    int64 `json:"pairs"`
	Derived  int64 `json:"derived"`
	// Unreadable counts records and files that could not be read;
	// Problems lists the first of them with their positions.
	Unreadable int64     `json:"unreadable"`
	Problems   []Problem `json:"problems,omitempty"`
	// Errors counts requests Coraza failed on, JudgeErrors the first.
	Errors      int64     `json:"errors"`
	JudgeErrors []Problem `json:"judge_errors,omitempty"`
	// Formats counts requests per format read.
	Formats map[Format]int64 `json:"formats"`
	// BodiesMissing and Lossy count requests not judged as sent.
	BodiesMissing int64         `json:"bodies_missing"`
	Lossy         int64         `json:"lossy"`
	NewBlocks     Disagreements `json:"new_blocks"`
	LostBlocks    Disagreements `json:"lost_blocks"`
	// Scope is the rollout scope the checks used; ScopeFrom says whence
	// ("inferred", "declared", or "none: why").
	Scope      evidence.Scope `json:"scope"`
	ScopeFrom  string         `json:"scope_from"`
	ScopeNotes []string       `json:"scope_notes,omitempty"`
	Policy     rollout.Policy `json:"-"`
	Checks     []Check        `json:"checks"`
	// Verdict is pass, fail or inconclusive: the worst check's.
	Verdict   string    `json:"verdict"`
	Agreement Agreement `json:"agreement"`
	// Limits say what the input cannot show.
	Limits  []string      `json:"limits,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Disagreements are the pairs of one kind (new or lost blocks), by rule,
// host and path.
type Disagreements struct {
	Total      int64   `json:"total"`
	InScope    int64   `json:"in_scope"`
	OutOfScope int64   `json:"out_of_scope"`
	Rules      []Count `json:"rules"`
	Hosts      []Count `json:"hosts"`
	Paths      []Count `json:"paths"`
}

// Count is one row: a rule ID, host or path, how many disagreements it
// is behind (InScope of them in the scope), and the earliest examples.
type Count struct {
	Key      string    `json:"key"`
	Count    int64     `json:"count"`
	InScope  int64     `json:"in_scope"`
	Examples []Example `json:"examples,omitempty"`
}

// Example is a request behind a disagreement, redacted as captures are
// (capture.Of): values of cookies, credentials and secret-named fields
// replaced by capture.Placeholder.
type Example struct {
	Pos      Position    `json:"position"`
	Method   string      `json:"method"`
	Host     string      `json:"host"`
	URI      string      `json:"uri"`
	Header   http.Header `json:"header,omitempty"`
	Body     string      `json:"body,omitempty"`
	BodyNote string      `json:"body_note,omitempty"`
	Rules    []int       `json:"rules"`
	InScope  bool        `json:"in_scope"`
}

// Check is one of the controller's paired checks, as Evaluate found it.
type Check struct {
	Name     string  `json:"check"`
	Status   string  `json:"status"`
	Reason   string  `json:"reason"`
	Observed float64 `json:"observed"`
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
	Limit    float64 `json:"limit"`
}

// Agreement is how often the baseline, on wafcanary, decided as the WAF
// that wrote the log did, over the requests whose record says.
type Agreement struct {
	Compared int64   `json:"compared"`
	Agree    int64   `json:"agree"`
	Share    float64 `json:"share"`
	// NotCompared are records blocked in a response phase, or refused by
	// the server before the WAF judged them.
	NotCompared int64 `json:"not_compared"`
	// Rules count the rules behind the disagreements: matched on one
	// side only.
	Rules []evidence.RuleCount `json:"rules,omitempty"`
	Cases []AgreementCase      `json:"cases,omitempty"`
}

// AgreementCase is one request the two engines decided differently.
type AgreementCase struct {
	Pos    Position `json:"position"`
	Method string   `json:"method"`
	Host   string   `json:"host"`
	Path   string   `json:"path"`
	// Logged and Baseline say who blocked.
	Logged   bool `json:"logged_blocked"`
	Baseline bool `json:"baseline_blocked"`
	// OnlyLogged are rules the log names and the baseline did not match;
	// OnlyBaseline the reverse.
	OnlyLogged   []int `json:"only_logged,omitempty"`
	OnlyBaseline []int `json:"only_baseline,omitempty"`
}
