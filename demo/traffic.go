package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Kind classifies a synthetic request.
type Kind string

// Request kinds.
const (
	// KindBenign is ordinary traffic that no WAF should block.
	KindBenign Kind = "benign"
	// KindAttack is malicious traffic that a WAF should block.
	KindAttack Kind = "attack"
	// KindFalsePositive is legitimate traffic that a WAF is known or
	// suspected to block wrongly.
	KindFalsePositive Kind = "false_positive"
)

// Traffic defaults and limits.
const (
	// DefaultRate is the request rate used when Traffic.Rate is not positive.
	DefaultRate = 20.0
	// MaxRate caps Traffic.Rate; higher values are treated as MaxRate.
	MaxRate = 1000.0
	// DefaultClients is the number of simulated clients used when
	// Traffic.Clients is not positive.
	DefaultClients = 200
	// MaxInFlight is the most requests Traffic.Run has outstanding at once.
	MaxInFlight = 8
	// DefaultSeed seeds request selection when Traffic.Seed is zero.
	DefaultSeed uint64 = 0x5eed_ca7a_2d0c_0001
)

// Kind weights (out of 100) when every category has requests; categories
// with no requests are left out and the rest keep their relative weights.
const (
	weightBenign        = 80
	weightAttack        = 5
	weightFalsePositive = 15
)

// requestTimeout bounds each request sent with the default client.
const requestTimeout = 10 * time.Second

// maxResponseDrain is how much of each response body Run reads (and
// discards) so that connections can be reused.
const maxResponseDrain = 1 << 20

// Request describes one synthetic HTTP request.
type Request struct {
	// Kind is the request's category; if empty, the category of the list
	// it was picked from (Traffic.Benign, .Attacks or .FalsePositives).
	Kind Kind
	// Name identifies the request in results, e.g. "sqli-union".
	Name string
	// Method is the HTTP method; empty means GET.
	Method string
	// Path is the request target exactly as it goes on the wire: an
	// absolute path starting with "/", already percent-encoded, optionally
	// followed by "?" and a raw query. It is never cleaned, so dot
	// segments such as "/static/../../etc/passwd" reach the server intact.
	// It is appended to the path of Traffic.Target, if any.
	Path string
	// Header holds extra request headers; they override the simulated
	// client's defaults (User-Agent, Accept, Accept-Language) but not its
	// X-Client-ID and X-Forwarded-For.
	Header http.Header
	// Body is the request body; empty means none.
	Body string
}

// Result reports one completed request.
type Result struct {
	Kind     Kind
	Name     string
	Method   string
	Path     string        // Request.Path as sent
	Status   int           // response status; 0 if no response arrived
	Err      error         // transport or response-body error, if any
	ClientID string        // the simulated client's X-Client-ID
	Duration time.Duration // from sending until the response body was read
}

// Traffic sends a mix of benign and attack requests to a target.
//
// Requests are picked from three lists with weights of roughly 80% Benign,
// 5% Attacks and 15% FalsePositives, or Weights; a list with no entries
// gets no traffic and the others keep their relative weights. Picks (kind, request
// and simulated client) come from a math/rand/v2 PCG source seeded with
// Seed, so the sequence of requests sent is the same on every run.
//
// A Traffic must not be modified while Run is running; Run itself does not
// modify it, so one Traffic may be Run several times, even concurrently.
type Traffic struct {
	Target   string       // base URL of the proxy, e.g. http://127.0.0.1:8080
	Rate     float64      // requests per second across all simulated clients (default 20, capped at MaxRate)
	Clients  int          // number of distinct simulated clients (default 200)
	Client   *http.Client // optional; default: a private client that does not follow redirects
	OnResult func(Result) // optional, called for each completed request; must be safe for concurrent use

	// Benign overrides BenignRequests(); nil means the defaults.
	Benign []Request
	// Attacks overrides AttackRequests(); nil means the defaults.
	Attacks []Request
	// FalsePositives lists legitimate requests a WAF is expected to block
	// wrongly (they depend on the rulesets being compared). nil or empty
	// means no false-positive traffic; FalsePositiveRequests() offers some
	// samples.
	FalsePositives []Request

	// Weights, when set, replace the default mix of 80 benign, 5 attack
	// and 15 false-positive requests in 100, in any unit: {Benign: 96,
	// Attacks: 1, FalsePositives: 3} makes 1% of the traffic attacks.
	Weights *Weights

	// Seed seeds request selection; zero means DefaultSeed.
	Seed uint64
}

// Weights are the relative shares of the request kinds.
type Weights struct {
	Benign, Attacks, FalsePositives int
}

// Run sends requests at Rate until ctx is done, with at most MaxInFlight
// requests outstanding; when all are busy it waits rather than queueing, so
// the rate is never exceeded. Each request carries its simulated client's
// X-Client-ID ("client-NNNN") and X-Forwarded-For (a stable address in the
// 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 documentation ranges;
// header values only, never dialed) headers.
//
// When ctx is done Run cancels outstanding requests, waits for them and
// returns nil. Requests cut short by the cancellation are not reported to
// OnResult. Run returns an error without sending anything if Target is not
// an absolute http or https URL or if there is nothing to send.
func (t *Traffic) Run(ctx context.Context) error {
	base, err := parseTarget(t.Target)
	if err != nil {
		return err
	}
	p, err := t.newPicker()
	if err != nil {
		return err
	}
	client := t.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = MaxInFlight
		defer tr.CloseIdleConnections()
		client = &http.Client{
			Transport: tr,
			Timeout:   requestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}

	ticker := time.NewTicker(rateInterval(t.Rate))
	defer ticker.Stop()
	sem := make(chan struct{}, MaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		select {
		case <-ctx.Done():
			return nil
		case sem <- struct{}{}:
		}
		req, sc := p.next()
		wg.Go(func() {
			defer func() { <-sem }()
			res := send(ctx, client, base, req, sc)
			if ctx.Err() != nil && res.Err != nil {
				return
			}
			if t.OnResult != nil {
				t.OnResult(res)
			}
		})
	}
}

// rateInterval converts a rate in requests per second to a ticker period,
// applying DefaultRate and MaxRate.
func rateInterval(rate float64) time.Duration {
	if math.IsNaN(rate) || rate <= 0 {
		rate = DefaultRate
	}
	rate = min(rate, MaxRate)
	return time.Duration(float64(time.Second) / rate)
}

// parseTarget validates Traffic.Target.
func parseTarget(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("demo: invalid target %q: %w", target, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("demo: target %q is not an absolute http(s) URL", target)
	}
	return u, nil
}

// simClient is one simulated client.
type simClient struct {
	ID        string // X-Client-ID
	IP        string // X-Forwarded-For
	UserAgent string
}

var docNets = []string{"192.0.2", "198.51.100", "203.0.113"}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
}

// newSimClient returns simulated client i (0-based). IDs are unique; the
// addresses repeat only beyond 762 clients.
func newSimClient(i int) simClient {
	return simClient{
		ID:        fmt.Sprintf("client-%04d", i+1),
		IP:        fmt.Sprintf("%s.%d", docNets[i%len(docNets)], 1+(i/len(docNets))%254),
		UserAgent: userAgents[i%len(userAgents)],
	}
}

// category is one weighted list of requests.
type category struct {
	kind   Kind
	weight int
	reqs   []Request
}

// picker deterministically chooses (request, client) pairs.
type picker struct {
	rng     *rand.Rand
	cats    []category
	total   int
	clients []simClient
}

func (t *Traffic) newPicker() (*picker, error) {
	benign, attacks := t.Benign, t.Attacks
	if benign == nil {
		benign = BenignRequests()
	}
	if attacks == nil {
		attacks = AttackRequests()
	}
	w := Weights{weightBenign, weightAttack, weightFalsePositive}
	if t.Weights != nil {
		w = *t.Weights
	}
	p := &picker{}
	for _, c := range []category{
		{KindBenign, w.Benign, benign},
		{KindAttack, w.Attacks, attacks},
		{KindFalsePositive, w.FalsePositives, t.FalsePositives},
	} {
		if len(c.reqs) > 0 && c.weight > 0 {
			p.cats = append(p.cats, c)
			p.total += c.weight
		}
	}
	if p.total == 0 {
		return nil, errors.New("demo: no requests to send")
	}
	n := t.Clients
	if n <= 0 {
		n = DefaultClients
	}
	p.clients = make([]simClient, n)
	for i := range p.clients {
		p.clients[i] = newSimClient(i)
	}
	seed := t.Seed
	if seed == 0 {
		seed = DefaultSeed
	}
	p.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return p, nil
}

// next returns the next request to send (with Kind filled in) and the
// client sending it.
func (p *picker) next() (Request, simClient) {
	c := p.clients[p.rng.IntN(len(p.clients))]
	w := p.rng.IntN(p.total)
	cat := p.cats[len(p.cats)-1]
	for _, cc := range p.cats {
		if w < cc.weight {
			cat = cc
			break
		}
		w -= cc.weight
	}
	req := cat.reqs[p.rng.IntN(len(cat.reqs))]
	if req.Kind == "" {
		req.Kind = cat.kind
	}
	return req, c
}

// buildRequest turns req into an *http.Request for the target base, sent
// by simulated client c. The path goes into URL.Opaque so that Go sends it
// verbatim (no dot-segment removal, no re-encoding).
func buildRequest(ctx context.Context, base *url.URL, req Request, c simClient) (*http.Request, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !strings.HasPrefix(req.Path, "/") {
		return nil, fmt.Errorf("demo: request %q: path %q does not start with /", req.Name, req.Path)
	}
	if strings.ContainsAny(req.Path, " \t\r\n#") {
		return nil, fmt.Errorf("demo: request %q: path %q is not a valid request target", req.Name, req.Path)
	}
	path, query, _ := strings.Cut(req.Path, "?")
	var body io.Reader
	if req.Body != "" {
		body = strings.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, base.Scheme+"://"+base.Host+"/", body)
	if err != nil {
		return nil, fmt.Errorf("demo: request %q: %w", req.Name, err)
	}
	hr.URL.Path = ""
	hr.URL.RawPath = ""
	hr.URL.Opaque = strings.TrimSuffix(base.EscapedPath(), "/") + path
	hr.URL.RawQuery = query
	hr.URL.ForceQuery = strings.HasSuffix(req.Path, "?")

	h := hr.Header
	h.Set("User-Agent", c.UserAgent)
	h.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	h.Set("Accept-Language", "en-US,en;q=0.9")
	for name, vals := range req.Header {
		h[http.CanonicalHeaderKey(name)] = append([]string(nil), vals...)
	}
	h.Set("X-Client-ID", c.ID)
	h.Set("X-Forwarded-For", c.IP)
	return hr, nil
}

// send performs req and returns its Result.
func send(ctx context.Context, client *http.Client, base *url.URL, req Request, c simClient) Result {
	res := Result{Kind: req.Kind, Name: req.Name, Method: req.Method, Path: req.Path, ClientID: c.ID}
	if res.Method == "" {
		res.Method = http.MethodGet
	}
	start := time.Now()
	hr, err := buildRequest(ctx, base, req, c)
	if err != nil {
		res.Err = err
		return res
	}
	resp, err := client.Do(hr)
	if err != nil {
		// *url.Error would print the URL from URL.String, which drops the
		// host when URL.Opaque is set; name the real target instead.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		res.Err = fmt.Errorf("demo: %s %s://%s%s: %w", hr.Method, hr.URL.Scheme, hr.URL.Host, hr.URL.RequestURI(), err)
		res.Duration = time.Since(start)
		return res
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	resp.Body.Close()
	res.Duration = time.Since(start)
	res.Status = resp.StatusCode
	if err != nil {
		res.Err = err
	}
	return res
}
