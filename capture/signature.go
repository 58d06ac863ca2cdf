package capture

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

// Shape is what a block looks like to the rules: where it was sent and
// what matched, without anything else of the request. Blocks of one shape
// are one signature: a scanner's thousands of probes fall into a few,
// and a false positive on a page of the site into one of its own.
type Shape struct {
	// Host is lower-cased, without its port.
	Host string `json:"host"`
	// Path is the request's path (REQUEST_FILENAME), without its query.
	Path string `json:"path"`
	// Rules are the detection rules that logged, sorted: the anomaly
	// evaluation and reporting rules (949xxx, 959xxx, 980xxx) sit behind
	// every CRS block and are left out.
	Rules []int `json:"rules"`
	// Targets are the variables those rules matched, sorted.
	Targets []string `json:"targets,omitempty"`
	// Shadow is set for the candidate's blocks seen in shadow, which no
	// client got: they are kept apart from the blocks that happened.
	Shadow bool `json:"shadow,omitempty"`
}

// ShapeOf is the shape of a block of a request for host and uri (path and
// query, or an absolute URI) with verdict v.
func ShapeOf(host, uri string, v verdict.Verdict) Shape {
	s := Shape{Host: hostOnly(host), Path: pathOf(uri), Rules: []int{}}
	for _, m := range v.Rules {
		if evaluation(m.ID) {
			continue
		}
		if !slices.Contains(s.Rules, m.ID) {
			s.Rules = append(s.Rules, m.ID)
		}
		for _, t := range m.Targets {
			if !slices.Contains(s.Targets, t) {
				s.Targets = append(s.Targets, t)
			}
		}
	}
	sort.Ints(s.Rules)
	sort.Strings(s.Targets)
	return s
}

// shapeOfBlock is the shape of b: its request's, and shadow for a
// candidate's block seen in shadow.
func shapeOfBlock(b verdict.Block) Shape {
	s := ShapeOf(b.Request.Host, b.Request.URI, b.Record.Verdict)
	s.Shadow = b.Shadow
	return s
}

// Signature names the shape: "sig:" and the first 16 hex digits of a
// SHA-256 over its parts, stable across restarts and releases. 64 bits
// keep two shapes apart among the most signatures a store holds, and no
// client can make its probe share a false positive's signature.
func (s Shape) Signature() string { return "sig:" + s.key() }

// key is the signature without its "sig:".
func (s Shape) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", s.Host, s.Path)
	for _, id := range s.Rules {
		fmt.Fprintf(h, "%d,", id)
	}
	h.Write([]byte("\n"))
	for _, t := range s.Targets {
		h.Write([]byte(t))
		h.Write([]byte{0})
	}
	if s.Shadow {
		// Only then: the signatures of blocks that happened stay what
		// they were before shadow blocks were kept.
		h.Write([]byte("\nshadow"))
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:8])
}

// evaluation reports whether a rule decides on the anomaly score rather
// than detecting anything (949xxx, 959xxx) or only reports (980xxx).
func evaluation(id int) bool {
	switch id / 1000 {
	case 949, 959, 980:
		return true
	}
	return false
}

func hostOnly(host string) string {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// pathOf is the path of a request-target, in origin form or absolute.
func pathOf(uri string) string {
	if !strings.HasPrefix(uri, "/") {
		if u, err := url.Parse(uri); err == nil && u.Host != "" {
			uri = u.RequestURI()
		}
	}
	p, _, _ := strings.Cut(uri, "?")
	return p
}

// families names CRS's rule files by their number (the rule ID over
// 1000): the family a rule belongs to.
var families = map[int]string{
	911: "method enforcement", 913: "scanner detection", 920: "protocol enforcement", 921: "protocol attack",
	922: "multipart attack", 930: "path traversal and file access", 931: "remote file inclusion",
	932: "remote command execution", 933: "PHP injection", 934: "generic injection", 941: "XSS",
	942: "SQL injection", 943: "session fixation", 944: "Java injection",
}

func familyOf(id int) string {
	if f, ok := families[id/1000]; ok {
		return strconv.Itoa(id/1000) + " " + f
	}
	return strconv.Itoa(id/1000) + "xxx (not CRS)"
}

// Signal is a fact about a signature's blocks that tends to go with a
// false positive or with an attack. It is stated, never added up: the
// operator decides.
type Signal struct {
	// Name is the fact's kind: credentials, score, one_family, families,
	// clients, one_client, scanner, sweep.
	Name string `json:"name"`
	// Leans is what the fact tends to go with: false_positive or attack.
	Leans string `json:"leans"`
	// Fact is the fact, with its numbers.
	Fact string `json:"fact"`
}

// What a signal leans to.
const (
	LeansFalsePositive = "false_positive"
	LeansAttack        = "attack"
)

// Thresholds of the signals, documented with them (README, blocks).
const (
	// manyClients is the distinct clients from which a signature's
	// blocks hint that real users, not one prober, are blocked.
	manyClients = 3
	// oneClientMany is the blocks from one client past which one client
	// sending them all hints at a prober.
	oneClientMany = 20
	// lowScore is one critical rule's worth, CRS's default inbound
	// threshold: a block at it would pass with one rule less.
	lowScore = 5
	// sweepPaths is the other paths of a host blocked by the same rules
	// from which a signature looks like part of a sweep.
	sweepPaths = 3
)

// signals states the facts about e. sweep is how many other paths of
// e's host the same rules blocked.
func signals(e *sigEntry, sweep int) []Signal {
	out := []Signal{}
	add := func(name, leans, format string, a ...any) {
		out = append(out, Signal{Name: name, Leans: leans, Fact: fmt.Sprintf(format, a...)})
	}
	if e.Credentialed > 0 {
		add("credentials", LeansFalsePositive, "%d of %d blocks carried a Cookie or an Authorization header, as a signed-in user's do", e.Credentialed, e.Count)
	}
	if e.ScoreMax > 0 && e.ScoreMax <= lowScore {
		add("score", LeansFalsePositive, "inbound anomaly score at most %d: no more than one critical rule's worth, CRS's default threshold", e.ScoreMax)
	}
	fams := []string{}
	var scanner []string
	for _, id := range e.Rules {
		if f := familyOf(id); !slices.Contains(fams, f) {
			fams = append(fams, f)
		}
		if id/1000 == 913 {
			scanner = append(scanner, strconv.Itoa(id))
		}
	}
	switch {
	case len(fams) == 1 && len(scanner) == 0: // scanner detection alone is no false positive's family
		add("one_family", LeansFalsePositive, "every rule is of one family: %s", fams[0])
	case len(fams) > 1:
		add("families", LeansAttack, "rules of %d families: %s", len(fams), strings.Join(fams, ", "))
	}
	if len(scanner) > 0 {
		add("scanner", LeansAttack, "scanner detection matched (rule %s): a known scanner's User-Agent or header", strings.Join(scanner, ", "))
	}
	clients := len(e.Clients)
	switch {
	case e.ManyClients:
		add("clients", LeansFalsePositive, "from %d or more distinct clients", clients)
	case clients >= manyClients:
		add("clients", LeansFalsePositive, "from %d distinct clients", clients)
	case clients == 1 && e.Count >= oneClientMany:
		add("one_client", LeansAttack, "one client sent all %d", e.Count)
	}
	if sweep >= sweepPaths {
		add("sweep", LeansAttack, "the same rules blocked %d other paths of %s", sweep, e.Host)
	}
	return out
}

// Summary is one signature as GET /api/v1/blocks lists it: what its
// blocks look like, how many, since when, from how many clients, the
// requests kept, and the signals.
type Summary struct {
	// Sig is the signature as shown: sig: and 8 hex digits, or 16 when
	// another signature held shares the first 8.
	Sig string `json:"sig"`
	Shape
	Count int64     `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Clients counts the distinct client addresses, up to a bound
	// (ClientsMore past it).
	Clients     int  `json:"clients"`
	ClientsMore bool `json:"clients_more,omitempty"`
	// Credentialed counts the blocks that carried a Cookie or an
	// Authorization header.
	Credentialed int64 `json:"credentialed"`
	ScoreMin     int   `json:"score_min"`
	ScoreMax     int   `json:"score_max"`
	Pinned       bool  `json:"pinned,omitempty"`
	// Captures are the requests kept, oldest first.
	Captures []CaptureRef `json:"captures"`
	// Recent are the IDs of the last blocks of it, newest last, kept or
	// not.
	Recent  []string `json:"recent"`
	Signals []Signal `json:"signals"`
}

// CaptureRef names a request kept.
type CaptureRef struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// Stats is what the store holds against its limits, and what it let go.
type Stats struct {
	Signatures    int   `json:"signatures"`
	MaxSignatures int   `json:"max_signatures"`
	Requests      int   `json:"requests"`
	MaxRequests   int   `json:"max_requests"`
	Bytes         int64 `json:"bytes"`
	MaxBytes      int64 `json:"max_bytes"`
	Pinned        int   `json:"pinned"`
	MaxPinned     int   `json:"max_pinned"`
	PerSignature  int   `json:"captures_per_signature"`
	// EvictedSignatures counts the signatures let go before max_age
	// since start-up (limits), and at it (age).
	EvictedSignatures map[string]int64 `json:"evicted_signatures"`
}
