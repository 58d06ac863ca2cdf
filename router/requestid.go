package router

import (
	"crypto/rand"
	"net/http"
	"sync"
)

// requestIDs hands out request IDs. A client may bring its own
// (X-Request-ID, so that a load balancer's ID follows the request), but
// an ID names one request only: a block is explained, captured and tuned
// by its ID, and if a client could reuse the ID another user quotes to
// support, it would decide what that ID shows. An ID seen recently is
// given a fresh suffix; generated IDs (128 random bits) are not tracked.
//
// It is safe for concurrent use.
type requestIDs struct {
	mu   sync.Mutex
	seen map[string]struct{}
	ring []string // the seen IDs in arrival order, oldest evicted first
	next int      // once the ring is full, where the oldest ID is
	size int      // how many IDs are remembered
}

// recentIDs is how many client-given IDs are remembered: at 1,000
// requests/s that bring their own, a minute's worth.
const recentIDs = 1 << 16

// newRequestIDs remembers up to n IDs. The map and the ring grow as IDs
// arrive rather than being sized for n at start: most sites never send
// X-Request-ID, and n of them would hold some 4 MB of an idle process.
func newRequestIDs(n int) *requestIDs {
	return &requestIDs{seen: map[string]struct{}{}, ring: make([]string, 0, min(n, 1024)), size: n}
}

// of returns the request ID of a request with these headers: the incoming X-Request-ID if it is a sane
// token not seen recently, that token with a fresh suffix if it was seen,
// or a new random one. The ID names the Coraza transaction (UNIQUE_ID),
// the log lines and the upstream request, so it must not carry log
// injection.
func (ids *requestIDs) of(h http.Header) string { return ids.given(h.Get(requestIDHeader)) }

// requestIDHeader is X-Request-ID in its canonical form, as http.Header
// keys it: Get and Set canonicalise any other spelling into a new string,
// per request.
const requestIDHeader = "X-Request-Id"

// given is of for an ID a front-end was given some other way (HAProxy's
// unique-id); "" for none.
func (ids *requestIDs) given(id string) string {
	if !validRequestID(id) {
		return rand.Text()
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if _, dup := ids.seen[id]; dup {
		id = id[:min(len(id), maxRequestID-27)] + "-" + rand.Text()
	}
	if len(ids.ring) < ids.size {
		ids.ring = append(ids.ring, id)
	} else {
		delete(ids.seen, ids.ring[ids.next])
		ids.ring[ids.next] = id
		ids.next = (ids.next + 1) % ids.size
	}
	ids.seen[id] = struct{}{}
	return id
}

// maxRequestID is the longest request ID kept or made.
const maxRequestID = 128

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}
