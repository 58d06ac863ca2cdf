package router

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/corazawaf/coraza/v3/experimental"

	"github.com/wafcanary/wafcanary/ruleset"
)

// Judge runs r's request phases through rs in process and returns the
// verdict, exactly as the proxy would reach it, without contacting any
// upstream. Gates and live probes use it. r.Body is consumed.
func Judge(ctx context.Context, rs *ruleset.Ruleset, id string, r *http.Request) (v Verdict, err error) {
	if !rs.Acquire() {
		return Verdict{}, ruleset.ErrClosed
	}
	defer rs.Release()
	tx := rs.WAF().(experimental.WAFWithOptions).NewTransactionWithOptions(experimental.Options{ID: id, Context: ctx})
	defer tx.Close()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("coraza panicked judging %s: %v", id, p)
		}
	}()
	view := viewOf(r, id, "127.0.0.1", 40000)
	if processRequestHeaders(tx, &view) == nil {
		var body io.Reader
		if r.Body != nil && r.Body != http.NoBody {
			body = r.Body
		}
		if _, _, err := processRequestBody(tx, body); err != nil {
			return Verdict{}, err
		}
	}
	return verdictOf(tx), nil
}
