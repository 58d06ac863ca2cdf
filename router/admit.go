package router

import (
	"net/http"
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/verdict"
)

// admit decides whether r can be judged exactly as it will be forwarded.
// Where one form stands for both sides, it makes r that form: an HTTP/2
// host header equal to :authority is dropped, so Coraza sees one Host, the
// one the upstream gets. Where the WAF and the upstream would read r
// differently, it returns why and the status to refuse it with; nothing is
// judged or forwarded then.
//
// Request trailers are the one part dropped rather than refused: they
// arrive after the body, when the verdict is taken, so the reverse proxy
// never forwards them (newReverseProxy).
func (rt *Router) admit(r *http.Request) (verdict.Refusal, int) {
	if len(r.RequestURI) > rt.opts.Proxy.MaxURIBytes {
		return verdict.RefusedURITooLong, http.StatusRequestURITooLong
	}
	// RFC 9112 3.2: a request-target has no fragment. Coraza cuts at '#'
	// (ProcessURI), net/http keeps it in the path or query it forwards.
	if strings.IndexByte(r.RequestURI, '#') >= 0 {
		return verdict.RefusedFragment, http.StatusBadRequest
	}
	// Origin form (/path) or absolute form (http or https only) only. The
	// asterisk form (net/http answers OPTIONS * itself) and the authority
	// form of CONNECT would reach the upstream as another path ("*"
	// became "/*") or as a tunnel no rule judges.
	if !strings.HasPrefix(r.RequestURI, "/") && (r.URL == nil || r.URL.Host == "" || r.Method == http.MethodConnect ||
		!strings.EqualFold(r.URL.Scheme, "http") && !strings.EqualFold(r.URL.Scheme, "https")) {
		return verdict.RefusedTarget, http.StatusBadRequest
	}
	if r.URL != nil && r.URL.User != nil {
		return verdict.RefusedUserinfo, http.StatusBadRequest
	}
	// The request line's host is not checked as a Host header is: an
	// absolute-form target can carry any byte there, and the outgoing
	// request sends it punycoded (httpguts.PunycodeHostPort).
	for i := 0; i < len(r.Host); i++ {
		if r.Host[i] >= 0x80 || r.Host[i] < 0x21 {
			return verdict.RefusedHost, http.StatusBadRequest
		}
	}
	// net/http removes Host from an HTTP/1 request's header map; an
	// HTTP/2 request keeps a host header sent beside :authority, and the
	// request view would give Coraza both.
	if hs, ok := r.Header["Host"]; ok {
		for _, h := range hs {
			if !strings.EqualFold(h, r.Host) {
				return verdict.RefusedAuthority, http.StatusBadRequest
			}
		}
		delete(r.Header, "Host")
	}
	trimHeaderValues(r.Header)
	return verdict.NotRefused, 0
}

// trimHeaderValues gives header values the form the upstream gets them
// in: net/http writes each one trimmed of surrounding spaces and tabs, and
// an obs-folded line reaches a handler with a trailing space. Coraza must
// judge the value sent, "abc", not "abc ".
func trimHeaderValues(h http.Header) {
	for _, vs := range h {
		for i, v := range vs {
			if v != "" && (isBlank(v[0]) || isBlank(v[len(v)-1])) {
				vs[i] = strings.Trim(v, " \t")
			}
		}
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// refuse answers a request admit refused and reports it: outside the
// rollout's evidence (no ruleset judged it), counted by reason. The log
// line has the path only: the target may carry a password (userinfo).
func (rt *Router) refuse(w http.ResponseWriter, r *http.Request, id string, why verdict.Refusal, code int, start time.Time) {
	writeStatus(w, id, code)
	rt.engine.log.Info("request refused before judging", "request_id", id, "reason", why.String(), "status", code,
		"method", r.Method, "host", r.Host, "path", refusedPath(r), "uri_bytes", len(r.RequestURI))
	rt.engine.Refuse(id, why, code, start)
}

// refusedPath is what a refusal's log line shows of the target: the
// decoded path, cut to a bound, never the query or userinfo.
func refusedPath(r *http.Request) string {
	p := ""
	if r.URL != nil {
		p = r.URL.Path
	}
	if len(p) > maxLoggedPath {
		p = p[:maxLoggedPath] + "..."
	}
	return p
}

// maxLoggedPath bounds the path a refusal logs.
const maxLoggedPath = 256
