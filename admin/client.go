package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wafcanary/wafcanary/capture"
	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset"
	"github.com/wafcanary/wafcanary/verdict"
)

// Client calls a running wafcanary's admin API. The zero Timeout means 30
// seconds. It is safe for concurrent use.
type Client struct {
	// URL is the admin listener's base URL, e.g. http://127.0.0.1:9090.
	URL   string
	Token string
	// TokenFrom says where Token came from, for the message when the
	// server refuses it.
	TokenFrom string
	// Timeout bounds each call (a start runs the gates first: minutes).
	Timeout time.Duration
	// HTTP is the client to use; nil means one with Timeout.
	HTTP *http.Client

	checked atomic.Bool // the health check answered as wafcanary's
}

// Error is an answer other than 200: its status and the server's message.
type Error struct {
	Method, Path string
	Status       int
	Message      string
	// Kind refines a status, such as KindInvalidRuleset for a 400.
	Kind string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("%s %s: %s", e.Method, e.Path, msg)
}

// ErrUnreachable wraps a call that got no answer at all.
var ErrUnreachable = errors.New("admin API unreachable")

// ErrNotWafcanary is an address whose /healthz does not answer as a
// wafcanary admin listener's: the token is not sent to it.
var ErrNotWafcanary = errors.New("not a wafcanary admin listener")

// Header is set on every answer of the admin listener's health check, so
// a client can tell it from the proxy, the upstream or Prometheus before
// it sends a token.
const Header = "X-Wafcanary-Admin"

// Status returns GET /api/v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.call(ctx, http.MethodGet, "/api/v1/status", nil, &st)
}

// Start starts a rollout; the server runs the gates before it answers.
func (c *Client) Start(ctx context.Context, req StartRequest) (Status, error) {
	var st Status
	return st, c.call(ctx, http.MethodPost, "/api/v1/rollout/start", req, &st)
}

// Do carries out an action (pause, resume, promote, rollback, undo).
func (c *Client) Do(ctx context.Context, action Action, req ActionRequest) (Status, error) {
	var st Status
	return st, c.call(ctx, http.MethodPost, "/api/v1/rollout/"+string(action), req, &st)
}

// Gates returns what a start's gates are doing.
func (c *Client) Gates(ctx context.Context) (GateProgress, error) {
	var g GateProgress
	return g, c.call(ctx, http.MethodGet, "/api/v1/rollout/gates", nil, &g)
}

// ServedBaseline returns the bundle of the baseline in service.
func (c *Client) ServedBaseline(ctx context.Context) (ruleset.Bundle, error) {
	var b ruleset.Bundle
	return b, c.call(ctx, http.MethodGet, "/api/v1/rulesets/baseline", nil, &b)
}

// Ruleset returns the bundle of a version the server keeps: in service,
// a kept baseline, or the last rollout's candidate.
func (c *Client) Ruleset(ctx context.Context, version string) (ruleset.Bundle, error) {
	var b ruleset.Bundle
	return b, c.call(ctx, http.MethodGet, "/api/v1/rulesets/"+url.PathEscape(version), nil, &b)
}

// ErrMixedRulesets is blocks of more than one ruleset given to tune
// together: an exclusion is written into one.
var ErrMixedRulesets = errors.New("blocked by different rulesets")

// RulesetOfBlocks is the ruleset whose blocks recs are, which tune writes
// the exceptions into: the served baseline, or, when the requests are a
// candidate's new blocks (on its arm, or seen in shadow) and that version
// does not serve as the baseline, the candidate, which the server keeps
// after a rollback; true then.
func (c *Client) RulesetOfBlocks(ctx context.Context, served ruleset.Bundle, recs []capture.Record) (ruleset.Bundle, bool, error) {
	var cand []string
	baseline := 0
	for _, rec := range recs {
		switch {
		case rec.Arm != verdict.Candidate.String() || rec.Version == served.Version:
			baseline++
		case !slices.Contains(cand, rec.Version):
			cand = append(cand, rec.Version)
		}
	}
	switch {
	case len(cand) == 0:
		return served, false, nil
	case baseline > 0:
		return ruleset.Bundle{}, false, fmt.Errorf("%w: the requests were blocked by the served baseline %s and by the candidate %s: tune each ruleset's apart", ErrMixedRulesets, short(served.Version), short(cand[0]))
	case len(cand) > 1:
		return ruleset.Bundle{}, false, fmt.Errorf("%w: the requests were blocked by %d candidates (%s): tune each one's apart", ErrMixedRulesets, len(cand), strings.Join(cand, ", "))
	}
	b, err := c.Ruleset(ctx, cand[0])
	if err != nil {
		return ruleset.Bundle{}, false, fmt.Errorf("the requests are the new blocks of candidate %s, and tune writes that candidate with their exceptions: %w", short(cand[0]), err)
	}
	return b, true, nil
}

func short(v string) string { return v[:min(len(v), 12)] }

// Exceptions lists the exceptions of the baseline in service.
func (c *Client) Exceptions(ctx context.Context) (ExceptionList, error) {
	var l ExceptionList
	return l, c.call(ctx, http.MethodGet, "/api/v1/exceptions", nil, &l)
}

// Explain asks why request id was blocked.
func (c *Client) Explain(ctx context.Context, id string) (Explanation, error) {
	var e Explanation
	err := c.call(ctx, http.MethodGet, "/api/v1/requests/"+url.PathEscape(id), nil, &e)
	return e, err
}

// Blocks lists the n signatures of blocked requests seen most recently.
func (c *Client) Blocks(ctx context.Context, n int) (BlockList, error) {
	var l BlockList
	return l, c.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/blocks?n=%d", n), nil, &l)
}

// Block returns one signature (sig: and at least 8 hex digits) with the
// requests it keeps.
func (c *Client) Block(ctx context.Context, ref string) (BlockGroup, error) {
	var g BlockGroup
	return g, c.call(ctx, http.MethodGet, "/api/v1/blocks/"+url.PathEscape(ref), nil, &g)
}

// Pin pins (pinned) or unpins a signature.
func (c *Client) Pin(ctx context.Context, ref string, pinned bool) (capture.Summary, error) {
	action := "unpin"
	if pinned {
		action = "pin"
	}
	var sum capture.Summary
	return sum, c.call(ctx, http.MethodPost, "/api/v1/blocks/"+url.PathEscape(ref)+"/"+action, nil, &sum)
}

// History returns the last n journal entries (all for n = 0), oldest first.
func (c *Client) History(ctx context.Context, n int) ([]rollout.Entry, error) {
	var h []rollout.Entry
	return h, c.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/rollout/history?n=%d", n), nil, &h)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &http.Client{Timeout: timeout}
}

// check asks /healthz, without the token, whether c.URL is a wafcanary
// admin listener: a wrong --admin (the proxy's port, Prometheus's) must
// not receive the bearer token, nor have its HTML page printed.
func (c *Client) check(ctx context.Context) error {
	if c.checked.Load() {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("admin URL %q: %w", c.URL, err)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach wafcanary at %s: %w: %w", c.URL, ErrUnreachable, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(Header) == "" {
		return fmt.Errorf("%s: %w: GET /healthz answered %d %s without the %s header; is it the proxy's or another service's address? The admin listener is admin.listen in the server's configuration (default 127.0.0.1:9090); the token was not sent",
			c.URL, ErrNotWafcanary, resp.StatusCode, resp.Header.Get("Content-Type"), Header)
	}
	c.checked.Store(true)
	return nil
}

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("admin URL %q: %w", c.URL, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach wafcanary at %s: %w: %w", c.URL, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(b))
		var e struct{ Error, Kind string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			from := c.TokenFrom
			if from == "" {
				from = "the client"
			}
			msg = fmt.Sprintf("the admin token from %s was refused (%s): the server's token is admin.token in its configuration, or state_dir/admin.token when that is empty, or your own whose hash is in admin.users (`wafcanary token new`); set WAFCANARY_ADMIN_TOKEN, --token-file or -c", from, msg)
		}
		return &Error{Method: method, Path: path, Status: resp.StatusCode, Message: msg, Kind: e.Kind}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not wafcanary's: %w", method, path, err)
	}
	return nil
}
