package replay

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Blocking rules: CRS's anomaly evaluation, as ModSecurity logs it.
const (
	ruleInbound      = 949110
	ruleInboundEarly = 949111
	ruleOutbound     = 959100
)

// loggedOf is the verdict of a record naming rules, as CRS decides:
// blocked in the request phases when an inbound evaluation rule is among
// them, in a response phase when only the outbound one is.
func loggedOf(rules []int) *Logged {
	l := &Logged{Rules: rules}
	switch {
	case slices.Contains(rules, ruleInbound), slices.Contains(rules, ruleInboundEarly):
		l.Blocked = true
	case slices.Contains(rules, ruleOutbound):
		l.Blocked, l.InResponse = true, true
	}
	return l
}

// modsec3Record is a libmodsecurity v3 JSON audit record; headers and the
// body are read apart (headerPairs, rawString).
type modsec3Record struct {
	Transaction *struct {
		ClientIP   string `json:"client_ip"`
		ClientPort int    `json:"client_port"`
		HostIP     string `json:"host_ip"`
		HostPort   int    `json:"host_port"`
		UniqueID   string `json:"unique_id"`
		Request    *struct {
			Method      string          `json:"method"`
			HTTPVersion json.Number     `json:"http_version"`
			URI         string          `json:"uri"`
			Body        json.RawMessage `json:"body"`
			Headers     json.RawMessage `json:"headers"`
		} `json:"request"`
		Response *struct {
			HTTPCode int `json:"http_code"`
		} `json:"response"`
		Messages []struct {
			Details struct {
				RuleID string `json:"ruleId"`
			} `json:"details"`
		} `json:"messages"`
	} `json:"transaction"`
}

func parseModSec3(line []byte) (Entry, error) {
	var rec modsec3Record
	if err := json.Unmarshal(line, &rec); err != nil {
		return Entry{}, err
	}
	t := rec.Transaction
	if t == nil || t.Request == nil || t.Request.Method == "" {
		return Entry{}, errors.New("no transaction.request (audit log part B)")
	}
	q := t.Request
	e, err := jsonEntry(t.UniqueID, q.Method, q.URI, q.HTTPVersion.String(), q.Headers, q.Body)
	if err != nil {
		return Entry{}, err
	}
	e.Request.ClientIP, e.Request.ClientPort, e.Request.ServerIP, e.Request.ServerPort = t.ClientIP, t.ClientPort, t.HostIP, t.HostPort
	var rules []int
	for _, m := range t.Messages {
		if id, err := strconv.Atoi(m.Details.RuleID); err == nil && !slices.Contains(rules, id) {
			rules = append(rules, id)
		}
	}
	if t.Response != nil { // part F or H: the transaction ran to the end
		e.Logged = loggedOf(rules)
	}
	return e, nil
}

// jsonEntry is the entry of a JSON audit record's request: its headers
// as an object (headerPairs) and its body as a string (rawString).
func jsonEntry(id, method, uri, version string, headers, body json.RawMessage) (Entry, error) {
	h, err := headerPairs(headers)
	if err != nil {
		return Entry{}, err
	}
	b, err := rawString(body)
	if err != nil {
		return Entry{}, errors.New("request body: " + err.Error())
	}
	e := Entry{Request: request(id, method, uri, protoOf(version), h)}
	e.Body, e.BodyMissing = bodyOrMissing(b, &e)
	return e, nil
}

// bodyOrMissing returns the body to judge, nil when there is none, and
// whether the request announced one that the record does not hold.
func bodyOrMissing(body []byte, e *Entry) ([]byte, bool) {
	if len(body) > 0 {
		return body, false
	}
	return nil, hadBody(&e.Request)
}

// modsec2Record is a mod_security2 JSON audit record.
type modsec2Record struct {
	Transaction *struct {
		ID            string `json:"transaction_id"`
		RemoteAddress string `json:"remote_address"`
		RemotePort    int    `json:"remote_port"`
		LocalAddress  string `json:"local_address"`
		LocalPort     int    `json:"local_port"`
	} `json:"transaction"`
	Request *struct {
		RequestLine string            `json:"request_line"`
		Headers     json.RawMessage   `json:"headers"`
		Body        []json.RawMessage `json:"body"`
	} `json:"request"`
	Response *struct {
		Status int `json:"status"`
	} `json:"response"`
	AuditData *struct {
		Messages  []string `json:"messages"`
		Stopwatch *struct {
			P2 *int64 `json:"p2"`
		} `json:"stopwatch"`
		Action *struct {
			Intercepted bool `json:"intercepted"`
			Phase       int  `json:"phase"`
		} `json:"action"`
	} `json:"audit_data"`
}

// ruleOfMessage finds a rule's ID in a mod_security2 message.
var ruleOfMessage = regexp.MustCompile(`\[id "(\d+)"\]`)

func parseModSec2(line []byte) (Entry, error) {
	var rec modsec2Record
	if err := json.Unmarshal(line, &rec); err != nil {
		return Entry{}, err
	}
	if rec.Request == nil || rec.Request.RequestLine == "" {
		return Entry{}, errors.New("no request.request_line (audit log part B)")
	}
	method, rest, ok := strings.Cut(rec.Request.RequestLine, " ")
	if !ok {
		return Entry{}, errors.New("request_line without a target")
	}
	uri, proto := rest, "HTTP/1.1"
	if i := strings.LastIndex(rest, " "); i >= 0 && strings.HasPrefix(rest[i+1:], "HTTP/") {
		uri, proto = rest[:i], rest[i+1:]
	}
	headers, err := headerPairs(rec.Request.Headers)
	if err != nil {
		return Entry{}, err
	}
	var body []byte
	for _, part := range rec.Request.Body {
		b, err := rawString(part)
		if err != nil {
			return Entry{}, errors.New("request.body: " + err.Error())
		}
		body = append(body, b...)
	}
	var e Entry
	if t := rec.Transaction; t != nil {
		e.Request = request(t.ID, method, uri, protoOf(proto), headers)
		e.Request.ClientIP, e.Request.ClientPort, e.Request.ServerIP, e.Request.ServerPort = t.RemoteAddress, t.RemotePort, t.LocalAddress, t.LocalPort
	} else {
		e.Request = request("", method, uri, protoOf(proto), headers)
	}
	e.Body, e.BodyMissing = bodyOrMissing(body, &e)
	if rec.AuditData != nil && rec.Response != nil {
		var rules []int
		for _, m := range rec.AuditData.Messages {
			if sm := ruleOfMessage.FindStringSubmatch(m); sm != nil {
				if id, err := strconv.Atoi(sm[1]); err == nil && !slices.Contains(rules, id) {
					rules = append(rules, id)
				}
			}
		}
		e.Logged = &Logged{Rules: rules}
		if a := rec.AuditData.Action; a != nil && a.Intercepted {
			e.Logged.Blocked = true
			e.Logged.InResponse = a.Phase >= 3
		} else if sw := rec.AuditData.Stopwatch; sw != nil && sw.P2 != nil && *sw.P2 == 0 {
			e.Logged.Unjudged = true // Apache refused it first (an invalid URI path)
		}
	}
	return e, nil
}
