package router

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"
)

// Verdict is what one ruleset concluded about one request. It is copied out
// of the Coraza transaction before the transaction is closed and pooled.
type Verdict struct {
	Blocked bool
	// Action is the interruption's action (deny, drop, redirect), if any.
	Action string
	// Status is the interruption's status, if any.
	Status int
	// RuleID is the rule that interrupted, if any.
	RuleID int
	// Rules are the matched rules that log, in match order.
	Rules []RuleMatch
	// InboundScore is CRS's blocking inbound anomaly score, when CRS ran.
	InboundScore int
}

// RuleMatch is one matched rule, without the matched data: matched values
// can hold cookies, tokens or passwords and never leave the process.
type RuleMatch struct {
	ID      int    `json:"id"`
	Message string `json:"msg,omitempty"`
	// Targets are the variables that matched, such as ARGS:comment; the
	// names an operator needs for an exclusion.
	Targets []string `json:"targets,omitempty"`
}

// RuleIDs returns the IDs of the matched rules.
func (v Verdict) RuleIDs() []int {
	ids := make([]int, len(v.Rules))
	for i, r := range v.Rules {
		ids[i] = r.ID
	}
	return ids
}

// requestView is what Coraza is fed for a request. The live path fills it
// from the *http.Request without copying; the shadow path from a capture.
type requestView struct {
	id                 string
	method, uri, proto string
	host               string
	// emptyHost is set when an HTTP/1.1 client sent "Host:" with no value:
	// net/http refuses a missing Host at 1.1, so an empty r.Host can only
	// mean that, and CRS tells the two apart (920290 and 920280).
	emptyHost        bool
	header           http.Header
	transferEncoding []string
	clientIP         string
	clientPort       int
	serverIP         string
	serverPort       int
}

func viewOf(r *http.Request, id, clientIP string, clientPort int) requestView {
	v := requestView{
		id:               id,
		method:           r.Method,
		uri:              r.RequestURI,
		proto:            r.Proto,
		host:             r.Host,
		header:           r.Header,
		transferEncoding: r.TransferEncoding,
		clientIP:         clientIP,
		clientPort:       clientPort,
	}
	if v.uri == "" { // requests built in-process, not read off the wire
		v.uri = r.URL.RequestURI()
	} else {
		v.emptyHost = r.Host == "" && r.ProtoAtLeast(1, 1)
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			v.serverIP, v.serverPort = ap.Addr().Unmap().String(), int(ap.Port())
		}
	}
	return v
}

// processRequestHeaders runs phase 1. net/http moves Host and
// Transfer-Encoding out of the header map; CRS checks both, so they are
// given back to Coraza here.
func processRequestHeaders(tx types.Transaction, v *requestView) *types.Interruption {
	tx.ProcessConnection(v.clientIP, v.clientPort, v.serverIP, v.serverPort)
	tx.ProcessURI(v.uri, v.method, v.proto)
	for k, vs := range v.header {
		for _, s := range vs {
			tx.AddRequestHeader(k, s)
		}
	}
	if v.host != "" {
		tx.AddRequestHeader("Host", v.host)
		tx.SetServerName(hostOnly(v.host))
	} else if v.emptyHost {
		tx.AddRequestHeader("Host", "")
	}
	for _, te := range v.transferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	return tx.ProcessRequestHeaders()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// errClientBody marks a failure to read the request body from the client:
// the client's fault, not the WAF's.
var errClientBody = errors.New("reading request body from client")

// clientReader remembers read errors so they can be told apart from
// Coraza's own.
type clientReader struct {
	r   io.Reader
	err error
}

func (c *clientReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// processRequestBody feeds body (which may be nil) and runs phase 2. It
// returns the reader the upstream must get instead of the original body:
// the bytes Coraza buffered followed by whatever it did not read, so the
// upstream receives the body byte for byte. Phase 2 runs even without a
// body: most CRS rules, and the anomaly verdict 949110, live there.
func processRequestBody(tx types.Transaction, body io.Reader) (*types.Interruption, io.Reader, error) {
	var replay io.Reader
	if body != nil && tx.IsRequestBodyAccessible() {
		cr := &clientReader{r: body}
		it, _, err := tx.ReadRequestBodyFrom(cr)
		if cr.err != nil {
			return nil, nil, fmt.Errorf("%w: %w", errClientBody, cr.err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("buffering request body: %w", err)
		}
		if it != nil {
			return it, nil, nil
		}
		buffered, err := tx.RequestBodyReader()
		if err != nil {
			return nil, nil, fmt.Errorf("replaying request body: %w", err)
		}
		replay = io.MultiReader(buffered, body)
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		return nil, nil, fmt.Errorf("processing request body: %w", err)
	}
	return it, replay, nil
}

// loggingRule is implemented by Coraza's matched rules; bookkeeping rules
// (CRS initialisation, skip markers) do not log and are not evidence.
type loggingRule interface{ Log() bool }

// verdictOf copies the outcome out of tx. Call it before tx.Close.
func verdictOf(tx types.Transaction) Verdict {
	var v Verdict
	if it := tx.Interruption(); it != nil {
		v.Blocked = true
		v.Action, v.Status, v.RuleID = it.Action, it.Status, it.RuleID
	}
	for _, m := range tx.MatchedRules() {
		if l, ok := m.(loggingRule); ok && !l.Log() {
			continue
		}
		rm := RuleMatch{ID: m.Rule().ID()}
		var values []string
		for _, d := range m.MatchedDatas() {
			t := d.Variable().Name()
			if d.Key() != "" {
				t += ":" + d.Key()
			}
			rm.Targets = append(rm.Targets, t)
			values = append(values, d.Value())
		}
		// A message with %{MATCHED_VAR} carries the matched value (a
		// cookie, a token): it never leaves the process.
		rm.Message = redactMessage(m.Rule().Raw(), m.Message(), values)
		v.Rules = append(v.Rules, rm)
	}
	v.InboundScore = txInt(tx, "blocking_inbound_anomaly_score")
	return v
}

// txInt reads a numeric TX variable, such as a CRS anomaly score.
func txInt(tx types.Transaction, name string) int {
	st, ok := tx.(plugintypes.TransactionState)
	if !ok {
		return 0
	}
	m, ok := st.Collection(variables.TX).(collection.Map)
	if !ok {
		return 0
	}
	vals := m.Get(name)
	if len(vals) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(vals[0])
	return n
}

// stopwatch sums the time spent inside Coraza across a request's phases.
type stopwatch struct{ total time.Duration }

func (s *stopwatch) since(start time.Time) { s.total += time.Since(start) }
