package router

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// modifyResponse maps the upstream's response onto the exchange's
// response phases (Exchange.Response) before any of it reaches the
// client, and carries out what they decide.
func (rt *Router) modifyResponse(resp *http.Response) error {
	p := proxiedFrom(resp.Request.Context())
	x := p.x
	resp.Header.Set(requestIDHeader, x.ID())
	it, body, err := x.Response(resp.StatusCode, resp.Proto, resp.Header, resp.Body)
	switch {
	case errors.Is(err, ErrUpstreamBody):
		p.upstreamErr = true
		return err
	case err != nil: // ErrFailed: fail mode closed
		replaceResponse(resp, x.ID(), http.StatusInternalServerError)
		return nil
	case it != nil:
		action, status := Enforce(it)
		if action == "drop" {
			return errDropResponse
		}
		replaceResponse(resp, x.ID(), status)
		if action == "redirect" {
			resp.Header.Set("Location", it.Data)
		}
		return nil
	}
	resp.Body = body
	return nil
}

// errDropResponse asks proxyError to drop the connection: a response
// phase's drop action.
var errDropResponse = errors.New("response dropped by rule")

// replaceResponse discards the upstream's response (headers included: they
// may set cookies) and puts the status page in its place.
func replaceResponse(resp *http.Response, id string, code int) {
	_ = resp.Body.Close()
	msg := statusPage(code, id)
	resp.StatusCode = code
	resp.Status = strconv.Itoa(code) + " " + http.StatusText(code)
	resp.Header = pageHeader(id)
	resp.Body = io.NopCloser(strings.NewReader(msg))
	resp.ContentLength = int64(len(msg))
	resp.TransferEncoding = nil
	resp.Trailer = nil
}
