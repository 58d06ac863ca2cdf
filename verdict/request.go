package verdict

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"
	"github.com/wafcanary/wafcanary/ruleset"
)

// Request is what Coraza is fed for a request. The live path fills it
// from the *http.Request without copying; the shadow path from a capture.
type Request struct {
	ID                 string
	Method, URI, Proto string
	Host               string
	// EmptyHost is set when an HTTP/1.1 client sent "Host:" with no value:
	// net/http refuses a missing Host at 1.1, so an empty r.Host can only
	// mean that, and CRS tells the two apart (920290 and 920280).
	EmptyHost        bool
	Header           http.Header
	TransferEncoding []string
	ClientIP         string
	ClientPort       int
	ServerIP         string
	ServerPort       int
}

// RequestOf describes r for Coraza, sharing r's header map.
func RequestOf(r *http.Request, id, clientIP string, clientPort int) Request {
	v := Request{
		ID:               id,
		Method:           r.Method,
		URI:              r.RequestURI,
		Proto:            r.Proto,
		Host:             r.Host,
		Header:           r.Header,
		TransferEncoding: r.TransferEncoding,
		ClientIP:         clientIP,
		ClientPort:       clientPort,
	}
	if v.URI == "" { // requests built in-process, not read off the wire
		v.URI = r.URL.RequestURI()
	} else {
		v.EmptyHost = r.Host == "" && r.ProtoAtLeast(1, 1)
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		v.ServerIP, v.ServerPort = serverAddr(la)
	}
	return v
}

// serverAddr is the address and port a request came in on, "" and 0 when
// la does not give them. A TCP address (without a zone, which only the
// general way reads as it always has) gives them directly: formatting it
// to parse it back cost strings per request.
func serverAddr(la net.Addr) (string, int) {
	var ap netip.AddrPort
	if ta, ok := la.(*net.TCPAddr); ok && ta.Zone == "" && ta.Port >= 0 && ta.Port <= 65535 {
		ap = ta.AddrPort()
	} else if p, err := netip.ParseAddrPort(la.String()); err == nil {
		ap = p
	}
	if !ap.Addr().IsValid() {
		return "", 0
	}
	return ap.Addr().Unmap().String(), int(ap.Port())
}

// Clone returns a copy that shares nothing with the *http.Request it came
// from, for judging after the request is gone.
func (v Request) Clone() Request {
	v.Header = v.Header.Clone()
	v.TransferEncoding = append([]string(nil), v.TransferEncoding...)
	return v
}

// Size is roughly what the request's line and headers take in memory.
func (v Request) Size() int {
	n := len(v.URI)
	for k, vs := range v.Header {
		for _, hv := range vs {
			n += len(k) + len(hv)
		}
	}
	return n
}

// processRequestHeaders runs phase 1. net/http moves Host and
// Transfer-Encoding out of the header map; CRS checks both, so they are
// given back to Coraza here.
func processRequestHeaders(tx types.Transaction, v *Request) *types.Interruption {
	tx.ProcessConnection(v.ClientIP, v.ClientPort, v.ServerIP, v.ServerPort)
	tx.ProcessURI(v.URI, v.Method, v.Proto)
	for k, vs := range v.Header {
		for _, s := range vs {
			tx.AddRequestHeader(k, s)
		}
	}
	if v.Host != "" {
		tx.AddRequestHeader("Host", v.Host)
		tx.SetServerName(hostOnly(v.Host))
	} else if v.EmptyHost {
		tx.AddRequestHeader("Host", "")
	}
	for _, te := range v.TransferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	return tx.ProcessRequestHeaders()
}

// ErrPanic marks a panic inside Coraza, recovered and returned as an error
// so the caller (the proxy's fail mode, the shadow worker, a gate) decides.
var ErrPanic = errors.New("coraza panicked")

// RequestPhases runs phases 1 and 2 of req on tx, a transaction of rs:
// the request's headers, then body (which may be nil). It returns the
// interruption, if any, and the reader the upstream must get instead of
// the original body (see processRequestBody). A panic inside Coraza is
// returned as ErrPanic.
func RequestPhases(tx types.Transaction, rs *ruleset.Ruleset, req *Request, body io.Reader) (it *types.Interruption, replay io.Reader, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	if it = processRequestHeaders(tx, req); it != nil {
		return it, nil, nil
	}
	return processRequestBody(tx, rs.NoFilesLimit, body)
}

// Judge runs req's request phases through rs in a transaction of its own
// and returns the verdict. The caller holds a reference on rs.
func Judge(ctx context.Context, rs *ruleset.Ruleset, req *Request, body io.Reader) (Verdict, error) {
	tx := rs.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: req.ID, Context: ctx})
	defer tx.Close()
	if _, _, err := RequestPhases(tx, rs, req, body); err != nil {
		return Verdict{}, err
	}
	return Of(tx), nil
}

// JudgeHTTP runs r's request phases through rs in process and returns the
// verdict, exactly as the proxy would reach it, without contacting any
// upstream. Gates and live probes use it. r.Body is consumed.
func JudgeHTTP(ctx context.Context, rs *ruleset.Ruleset, id string, r *http.Request) (Verdict, error) {
	if !rs.Acquire() {
		return Verdict{}, ruleset.ErrClosed
	}
	defer rs.Release()
	req := RequestOf(r, id, "127.0.0.1", 40000)
	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody {
		body = r.Body
	}
	v, err := Judge(ctx, rs, &req, body)
	if err != nil {
		return Verdict{}, fmt.Errorf("judging %s: %w", id, err)
	}
	return v, nil
}

func hostOnly(hostport string) string {
	if strings.IndexByte(hostport, ':') < 0 {
		return hostport // no port; SplitHostPort would allocate an error to say so
	}
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// ErrClientBody marks a failure to read the request body from the client:
// the client's fault, not the WAF's.
var ErrClientBody = errors.New("reading request body from client")

// TrackingReader remembers the read errors of R, so the caller can tell
// a client's (or an upstream's) failure from Coraza's own.
type TrackingReader struct {
	R   io.Reader
	Err error
}

func (c *TrackingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	if err != nil && err != io.EOF {
		c.Err = err
	}
	return n, err
}

// Replay is a body for whoever reads it after Coraza: the bytes Coraza
// buffered, then the rest of the original, which it did not read. It
// reads as io.MultiReader(Buffered, Rest) does, in one allocation where
// that takes two; nil Buffered reads Rest alone.
type Replay struct {
	Buffered, Rest io.Reader
}

func (r *Replay) Read(p []byte) (int, error) {
	if r.Buffered != nil {
		n, err := r.Buffered.Read(p)
		if err != io.EOF {
			return n, err
		}
		r.Buffered = nil // drained: the rest from now on
		if n > 0 {
			return n, nil
		}
	}
	return r.Rest.Read(p)
}

// requestBody is the readers a request body goes through, allocated
// together: the bound, the error tracker Coraza reads through, and the
// replay the upstream gets.
type requestBody struct {
	limit  io.LimitedReader
	track  TrackingReader
	replay Replay
}

// processRequestBody feeds body (which may be nil) and runs phase 2. It
// returns the reader the upstream must get instead of the original body:
// the bytes Coraza buffered followed by whatever it did not read, so the
// upstream receives the body byte for byte. Phase 2 runs even without a
// body: most CRS rules, and the anomaly verdict 949110, live there.
//
// A body that is not multipart is read up to noFiles bytes only: one past
// it interrupts the transaction with 413 before phase 2, as ModSecurity's
// SecRequestBodyNoFilesLimit does (Coraza parses the directive and ignores
// it). Without the bound, CRS inspects up to SecRequestBodyLimit (13 MB)
// of arguments, at about a second of CPU per 100 KB of binary ones.
func processRequestBody(tx types.Transaction, noFiles int64, body io.Reader) (*types.Interruption, io.Reader, error) {
	var replay io.Reader
	if body != nil && tx.IsRequestBodyAccessible() {
		rb := &requestBody{}
		rb.track.R = body
		limited := noFiles > 0 && !multipart(tx)
		if limited {
			rb.limit = io.LimitedReader{R: body, N: noFiles + 1}
			rb.track.R = &rb.limit
		}
		cr := &rb.track
		it, n, err := tx.ReadRequestBodyFrom(cr)
		if cr.Err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrClientBody, cr.Err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("buffering request body: %w", err)
		}
		if it != nil {
			return it, nil, nil
		}
		if limited && int64(n) > noFiles {
			return interrupt(tx, &types.Interruption{Action: "deny", Status: http.StatusRequestEntityTooLarge,
				Data: fmt.Sprintf("request body without files over SecRequestBodyNoFilesLimit (%d bytes)", noFiles)}), nil, nil
		}
		buffered, err := tx.RequestBodyReader()
		if err != nil {
			return nil, nil, fmt.Errorf("replaying request body: %w", err)
		}
		rb.replay = Replay{Buffered: buffered, Rest: body}
		replay = &rb.replay
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		return nil, nil, fmt.Errorf("processing request body: %w", err)
	}
	return it, replay, nil
}

// multipart reports whether Coraza parses tx's body as multipart, the one
// kind whose files SecRequestBodyNoFilesLimit does not count. Phase 1 has
// run: the processor is what the Content-Type and the rules chose.
func multipart(tx types.Transaction) bool {
	st, ok := tx.(plugintypes.TransactionState)
	return ok && strings.EqualFold(st.Variables().RequestBodyProcessor().Get(), "MULTIPART")
}

// interrupt makes it tx's interruption, so that the verdict read from tx
// (Of) is the one the proxy carries out, and returns it.
func interrupt(tx types.Transaction, it *types.Interruption) *types.Interruption {
	if st, ok := tx.(plugintypes.TransactionState); ok {
		st.Interrupt(it)
	}
	return it
}

// loggingRule is implemented by Coraza's matched rules; bookkeeping rules
// (CRS initialisation, skip markers) do not log and are not evidence.
type loggingRule interface{ Log() bool }

// logs reports whether a matched rule is evidence: it logs.
func logs(m types.MatchedRule) bool {
	l, ok := m.(loggingRule)
	return !ok || l.Log()
}

// countLogging counts the matched rules that log.
func countLogging(matched []types.MatchedRule) int {
	n := 0
	for _, m := range matched {
		if logs(m) {
			n++
		}
	}
	return n
}

// Of copies the outcome out of tx. Call it before tx.Close.
func Of(tx types.Transaction) Verdict {
	var v Verdict
	if it := tx.Interruption(); it != nil {
		v.Blocked = true
		v.Action, v.Status, v.RuleID = it.Action, it.Status, it.RuleID
	}
	matched := tx.MatchedRules()
	// Rules and each rule's Targets are sized once: appending would grow
	// them step by step, an allocation per step, on every request.
	if n := countLogging(matched); n > 0 {
		v.Rules = make([]RuleMatch, 0, n)
	}
	// A rule's matched values serve only to take them out of its message:
	// scratch, reused from rule to rule, on the stack for the usual few.
	var scratch [8]string
	for _, m := range matched {
		if !logs(m) {
			continue
		}
		rm := RuleMatch{ID: m.Rule().ID()}
		datas := m.MatchedDatas()
		values := scratch[:0]
		for _, d := range datas {
			values = append(values, d.Value())
			t := d.Variable().Name()
			if d.Key() != "" {
				t += ":" + d.Key()
			}
			switch {
			case slices.Contains(rm.Targets, t):
			case len(rm.Targets) == MaxTargets || len(t) > MaxTargetBytes || !printable(d.Key()):
				rm.Omitted++
			default:
				if rm.Targets == nil { // nil while none is kept, as before
					rm.Targets = make([]string, 0, min(len(datas), MaxTargets))
				}
				rm.Targets = append(rm.Targets, t)
			}
		}
		// A message with %{MATCHED_VAR} carries the matched value (a
		// cookie, a token): it never leaves the process.
		rm.Message = truncate(redactMessage(m.Rule().Raw(), m.Message(), values), maxMessageBytes)
		v.Rules = append(v.Rules, rm)
	}
	v.InboundScore = txInt(tx, "blocking_inbound_anomaly_score")
	return v
}

// printable reports whether an argument or header name can be shown as
// it is: valid UTF-8 without control or format characters. A name made of
// body bytes (a binary form) is body content, not a variable anyone can
// exclude, and it never reaches a log line or a terminal.
func printable(name string) bool {
	if !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// maxMessageBytes bounds a rule's message: macros can put request data
// in it.
const maxMessageBytes = 512

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
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
