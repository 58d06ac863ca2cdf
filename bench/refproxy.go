package main

import (
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"

	"github.com/wafcanary/wafcanary/configs"
	"github.com/wafcanary/wafcanary/pm"
	"github.com/wafcanary/wafcanary/rx"
	"github.com/wafcanary/wafcanary/transform"
)

// reverseProxy is the plain proxy every reference target uses, with the
// transport settings wafcanary's own proxy uses.
func reverseProxy(upstream string) (*httputil.ReverseProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	return rp, nil
}

// bareCorazaHandler is the reference: stock Coraza's own net/http
// middleware over the reverse proxy, with wafcanary's shipped baseline
// ruleset (CRS 4.25, paranoia level 1, blocking) and nothing of
// wafcanary's in the way. With tuned, it first installs wafcanary's @rx
// and @pm operators and transformations (packages rx, pm and transform),
// process-wide: the same engine tuning without wafcanary's proxy, which
// separates wafcanary's own overhead from what the tuning buys. The stock reference runs in its own
// process and never installs them.
func bareCorazaHandler(upstream string, tuned bool) (http.Handler, error) {
	if tuned {
		rx.Register()
		pm.Register()
		transform.Register()
	}
	rp, err := reverseProxy(upstream)
	if err != nil {
		return nil, err
	}
	baseline, err := fs.ReadFile(configs.Rulesets, "baseline.conf")
	if err != nil {
		return nil, err
	}
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(string(baseline)))
	if err != nil {
		return nil, fmt.Errorf("compiling baseline.conf: %w", err)
	}
	return txhttp.WrapHandler(waf, rp), nil
}
