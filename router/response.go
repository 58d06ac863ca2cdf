package router

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/wafcanary/wafcanary/verdict"
)

// modifyResponse runs phases 3 and 4 on the upstream's response before any
// of it reaches the client.
func (rt *Router) modifyResponse(resp *http.Response) error {
	ex := exchangeFrom(resp.Request.Context())
	resp.Header.Set("X-Request-ID", ex.id)
	if ex.tx == nil {
		return nil
	}
	start := time.Now()
	defer ex.sw.since(start)
	it, err := rt.inspectResponse(ex.tx, resp)
	switch {
	case err != nil && errors.Is(err, errUpstreamBody):
		ex.upstreamErr = true
		return err
	case err != nil:
		ex.failed = true
		rt.log.Error("waf processing failed", "request_id", ex.id, "arm", ex.arm.String(), "phase", "response", "fail_mode", rt.opts.Proxy.FailMode, "error", err)
		if rt.opts.Proxy.FailMode == FailOpen {
			return nil
		}
		replaceResponse(resp, ex.id, http.StatusInternalServerError)
		return nil
	case it != nil:
		ex.blocked = true
		if it.Action == "drop" {
			return errDropResponse
		}
		code := denyStatus(it)
		replaceResponse(resp, ex.id, code)
		if it.Action == "redirect" {
			resp.StatusCode = http.StatusFound
			if it.Status >= 300 && it.Status <= 399 {
				resp.StatusCode = it.Status
			}
			resp.Header.Set("Location", it.Data)
		}
	}
	return nil
}

var (
	errUpstreamBody = errors.New("reading upstream response body")
	errDropResponse = errors.New("response dropped by rule")
)

func (rt *Router) inspectResponse(tx types.Transaction, resp *http.Response) (it *types.Interruption, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("coraza panicked: %v", p)
		}
	}()
	for k, vs := range resp.Header {
		for _, v := range vs {
			tx.AddResponseHeader(k, v)
		}
	}
	if it = tx.ProcessResponseHeaders(resp.StatusCode, resp.Proto); it != nil {
		return it, nil
	}
	// Only bodies the ruleset can inspect are buffered, up to its limit;
	// the rest (SSE, downloads, binary types) stream straight through.
	if rt.opts.Proxy.InspectResponseBody && tx.IsResponseBodyAccessible() && tx.IsResponseBodyProcessable() {
		upstream := &verdict.TrackingReader{R: resp.Body}
		it, _, err := tx.ReadResponseBodyFrom(upstream)
		if upstream.Err != nil {
			return nil, fmt.Errorf("%w: %w", errUpstreamBody, upstream.Err)
		}
		if err != nil {
			return nil, fmt.Errorf("buffering response body: %w", err)
		}
		if it != nil {
			return it, nil
		}
		buffered, err := tx.ResponseBodyReader()
		if err != nil {
			return nil, fmt.Errorf("replaying response body: %w", err)
		}
		resp.Body = readCloser{io.MultiReader(buffered, resp.Body), resp.Body}
	}
	it, err = tx.ProcessResponseBody()
	if err != nil {
		return nil, fmt.Errorf("processing response body: %w", err)
	}
	return it, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// replaceResponse discards the upstream's response (headers included: they
// may set cookies) and puts a short status page in its place.
func replaceResponse(resp *http.Response, id string, code int) {
	_ = resp.Body.Close()
	msg := fmt.Sprintf("%d %s\nrequest id: %s\n", code, http.StatusText(code), id)
	resp.StatusCode = code
	resp.Status = strconv.Itoa(code) + " " + http.StatusText(code)
	resp.Header = http.Header{
		"Content-Type":           {"text/plain; charset=utf-8"},
		"X-Content-Type-Options": {"nosniff"},
		"Cache-Control":          {"no-store"},
		"X-Request-Id":           {id},
	}
	resp.Body = io.NopCloser(strings.NewReader(msg))
	resp.ContentLength = int64(len(msg))
	resp.TransferEncoding = nil
	resp.Trailer = nil
}
