package spop

import "errors"

// Header is one HTTP header field as HAProxy's req.hdrs_bin and
// res.hdrs_bin samples carry it.
type Header struct {
	Name  string // in lower case, as HAProxy keeps names internally
	Value string
}

var errHdrsBin = errors.New("spop: malformed hdrs_bin value")

// ParseHdrsBin parses a req.hdrs_bin or res.hdrs_bin value (a message
// argument's Text()): every header as a varint-length name and value,
// then an empty name and value (src/http_fetch.c smp_fetch_hdrs_bin).
// Unlike req.hdrs, the text block, it keeps each header apart however its
// value is written, so it is the one to send an agent that must see the
// headers exactly as HAProxy parsed them. The strings share s's memory.
func ParseHdrsBin(s string) ([]Header, error) {
	d := decoder{s: s}
	n := 0
	for {
		name, err1 := d.str("header name")
		value, err2 := d.str("header value")
		switch {
		case err1 != nil || err2 != nil:
			return nil, errHdrsBin
		case name == "" && value == "":
			if d.off != len(s) {
				return nil, errHdrsBin
			}
			hs := make([]Header, n)
			d.off = 0
			for i := range hs {
				hs[i].Name, _ = d.str("")
				hs[i].Value, _ = d.str("")
			}
			return hs, nil
		case name == "":
			return nil, errHdrsBin
		}
		n++
	}
}
