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
	"strings"
	"time"

	"github.com/wafcanary/wafcanary/rollout"
	"github.com/wafcanary/wafcanary/ruleset"
)

// Client calls a running wafcanary's admin API. The zero Timeout means 30
// seconds. It is safe for concurrent use.
type Client struct {
	// URL is the admin listener's base URL, e.g. http://127.0.0.1:9090.
	URL   string
	Token string
	// Timeout bounds each call (a start runs the gates first: minutes).
	Timeout time.Duration
	// HTTP is the client to use; nil means one with Timeout.
	HTTP *http.Client
}

// Error is an answer other than 200: its status and the server's message.
type Error struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *Error) Error() string { return fmt.Sprintf("%s %s: %s", e.Method, e.Path, e.Message) }

// ErrUnreachable wraps a call that got no answer at all.
var ErrUnreachable = errors.New("admin API unreachable")

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

// ServedBaseline returns the bundle of the baseline in service.
func (c *Client) ServedBaseline(ctx context.Context) (ruleset.Bundle, error) {
	var b ruleset.Bundle
	return b, c.call(ctx, http.MethodGet, "/api/v1/rulesets/baseline", nil, &b)
}

// Explain asks why request id was blocked.
func (c *Client) Explain(ctx context.Context, id string) (Explanation, error) {
	var e Explanation
	err := c.call(ctx, http.MethodGet, "/api/v1/requests/"+url.PathEscape(id), nil, &e)
	return e, err
}

// History returns the last n journal entries (all for n = 0), oldest first.
func (c *Client) History(ctx context.Context, n int) ([]rollout.Entry, error) {
	var h []rollout.Entry
	return h, c.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/rollout/history?n=%d", n), nil, &h)
}

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
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
	hc := c.HTTP
	if hc == nil {
		timeout := c.Timeout
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		hc = &http.Client{Timeout: timeout}
	}
	resp, err := hc.Do(req)
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
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &Error{Method: method, Path: path, Status: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not wafcanary's: %w", method, path, err)
	}
	return nil
}
