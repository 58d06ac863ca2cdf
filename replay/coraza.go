package replay

import (
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf8"
)

// corazaRecord is a Coraza JSON audit record (SecAuditLogFormat JSON).
type corazaRecord struct {
	Transaction *struct {
		ID         string `json:"id"`
		ClientIP   string `json:"client_ip"`
		ClientPort int    `json:"client_port"`
		HostIP     string `json:"host_ip"`
		HostPort   int    `json:"host_port"`
		Request    *struct {
			Method      string          `json:"method"`
			Protocol    string          `json:"protocol"`
			URI         string          `json:"uri"`
			HTTPVersion string          `json:"http_version"`
			Headers     json.RawMessage `json:"headers"`
			Body        json.RawMessage `json:"body"`
		} `json:"request"`
		Response *struct {
			Status int `json:"status"`
		} `json:"response"`
		IsInterrupted bool `json:"is_interrupted"`
	} `json:"transaction"`
	Messages []struct {
		Data *struct {
			ID int `json:"id"`
		} `json:"data"`
	} `json:"messages"`
}

func parseCoraza(line []byte) (Entry, error) {
	var rec corazaRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		return Entry{}, err
	}
	t := rec.Transaction
	if t == nil || t.Request == nil || t.Request.Method == "" {
		return Entry{}, errors.New("no transaction.request (audit log part B)")
	}
	q := t.Request
	proto := q.Protocol
	if proto == "" {
		proto = q.HTTPVersion
	}
	e, err := jsonEntry(t.ID, q.Method, q.URI, proto, q.Headers, q.Body)
	if err != nil {
		return Entry{}, err
	}
	e.Request.ClientIP, e.Request.ClientPort, e.Request.ServerIP, e.Request.ServerPort = t.ClientIP, t.ClientPort, t.HostIP, t.HostPort
	// Coraza writes the body as a Go string: bytes that are not UTF-8
	// came out as U+FFFD and cannot be had back.
	e.Lossy = len(e.Body) > 0 && bytesContainRuneError(e.Body)
	var rules []int
	for _, m := range rec.Messages {
		if m.Data != nil && m.Data.ID != 0 && !slices.Contains(rules, m.Data.ID) {
			rules = append(rules, m.Data.ID)
		}
	}
	if t.Response != nil {
		e.Logged = &Logged{Blocked: t.IsInterrupted, Rules: rules}
		if t.IsInterrupted && slices.Contains(rules, ruleOutbound) && !slices.Contains(rules, ruleInbound) && !slices.Contains(rules, ruleInboundEarly) {
			e.Logged.InResponse = true
		}
	}
	return e, nil
}

func bytesContainRuneError(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError {
			return true
		}
		b = b[n:]
	}
	return false
}
