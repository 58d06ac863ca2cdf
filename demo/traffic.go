package demo

import (
	"context"
	"encoding/json"
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

// Headers for the default requests.
var (
	jsonHeader = http.Header{"Accept": {"application/json"}}
	formHeader = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	postJSON   = http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
	cssHeader  = http.Header{"Accept": {"text/css,*/*;q=0.1"}}
	jsHeader   = http.Header{"Accept": {"*/*"}}
)

func searchPath(q string) string { return "/search?" + url.Values{"q": {q}}.Encode() }

func commentForm(name, email, comment string) string {
	return url.Values{"name": {name}, "email": {email}, "comment": {comment}}.Encode()
}

// BenignRequests returns the default benign requests: the home page, static
// assets, searches for ordinary words, product JSON GETs, JSON order POSTs
// of about 1 KB and blog comment form posts with ordinary text. Each call
// returns a fresh slice.
func BenignRequests() []Request {
	reqs := []Request{
		{Name: "home", Method: http.MethodGet, Path: "/"},
		{Name: "static-css", Method: http.MethodGet, Path: "/static/app.css", Header: cssHeader.Clone()},
		{Name: "static-js", Method: http.MethodGet, Path: "/static/app.js", Header: jsHeader.Clone()},
		{Name: "healthz", Method: http.MethodGet, Path: "/healthz", Header: http.Header{"Accept": {"text/plain"}}},
	}
	for _, q := range []string{"tent", "hiking boots", "rain jacket", "sleeping bag", "water bottle", "trail map"} {
		reqs = append(reqs, Request{Name: "search", Method: http.MethodGet, Path: searchPath(q)})
	}
	for _, id := range []int{1, 2, 3, 5, 7, 8, 10, 12} {
		reqs = append(reqs, Request{Name: "product", Method: http.MethodGet,
			Path: fmt.Sprintf("/api/products/%d", id), Header: jsonHeader.Clone()})
	}
	for i := range 3 {
		reqs = append(reqs, Request{Name: "order", Method: http.MethodPost, Path: "/api/orders",
			Header: postJSON.Clone(), Body: orderBody(i)})
	}
	for _, c := range [][3]string{
		{"Alice Martin", "alice@example.com", "Great write-up on packing light. The checklist at the end is really useful for weekend trips."},
		{"Bob Chen", "bob@example.org", "We used the two-person tent on a three day hike last month and it kept us dry the whole time."},
		{"Carla Diaz", "carla@example.net", "Could you do a follow up post about choosing a sleeping mat for colder nights? Thanks!"},
	} {
		reqs = append(reqs, Request{Name: "comment", Method: http.MethodPost, Path: "/blog/comment",
			Header: formHeader.Clone(), Body: commentForm(c[0], c[1], c[2])})
	}
	for i := range reqs {
		reqs[i].Kind = KindBenign
	}
	return reqs
}

// AttackRequests returns the default attack requests: SQL injection in the
// search query, XSS in a blog comment, path traversal (sent with its dot
// segments intact) and shell injection in a form field. Each call returns a
// fresh slice.
func AttackRequests() []Request {
	reqs := []Request{
		{Name: "sqli-tautology", Method: http.MethodGet, Path: searchPath("1' OR '1'='1' --")},
		{Name: "sqli-union", Method: http.MethodGet, Path: searchPath("' UNION SELECT username, password FROM users--")},
		{Name: "xss-comment", Method: http.MethodPost, Path: "/blog/comment", Header: formHeader.Clone(),
			Body: commentForm("Mallory", "mallory@example.com", "<script>alert(1)</script>")},
		{Name: "path-traversal", Method: http.MethodGet, Path: "/static/../../etc/passwd"},
		{Name: "shell-injection", Method: http.MethodPost, Path: "/blog/comment", Header: formHeader.Clone(),
			Body: commentForm("eve;cat /etc/passwd", "eve@example.com", "Nice post")},
	}
	for i := range reqs {
		reqs[i].Kind = KindAttack
	}
	return reqs
}

// FalsePositiveRequests returns legitimate requests that the shipped
// baseline or candidates block, verified against CRS 4.25 (see
// configs/rulesets/README.md): a support ticket mentioning /etc/hosts
// (930120 at paranoia level 1, fixed by candidate-exclusion.conf), and a
// quoted search and a comment with quotes that only paranoia level 2
// blocks (942520, 942200: new blocks for candidate-pl2.conf). They are
// not sent unless assigned to Traffic.FalsePositives. Each call returns a
// fresh slice.
func FalsePositiveRequests() []Request {
	reqs := []Request{
		{Name: "fp-ticket-etc-hosts", Method: http.MethodPost, Path: "/support/tickets", Header: formHeader.Clone(),
			Body: "email=jane.doe%40example.com&subject=Dashboard+times+out&message=Since+the+last+update+I+can%27t+reach+the+dashboard.+I+added+the+server+IP+to+%2Fetc%2Fhosts+as+your+setup+guide+says%2C+but+it+still+times+out."},
		{Name: "fp-search-quoted-phrase", Method: http.MethodGet, Path: "/search?q=%22wireless+headphones%22+-refurbished"},
		{Name: "fp-comment-quotes", Method: http.MethodPost, Path: "/blog/comment", Header: formHeader.Clone(),
			Body: "name=Jane&email=jane%40example.com&comment=It%27s+not+working%3A+when+I+click+%27Save%27+nothing+happens%2C+and+the+%27Cancel%27+button+is+greyed+out."},
	}
	for i := range reqs {
		reqs[i].Kind = KindFalsePositive
	}
	return reqs
}

// orderBody returns a realistic JSON order body of about 1 KB; variant
// selects one of a few customers and baskets.
func orderBody(variant int) string {
	type item struct {
		ProductID int     `json:"product_id"`
		SKU       string  `json:"sku"`
		Name      string  `json:"name"`
		Quantity  int     `json:"quantity"`
		UnitPrice float64 `json:"unit_price"`
	}
	type address struct {
		Line1      string `json:"line1"`
		Line2      string `json:"line2,omitempty"`
		City       string `json:"city"`
		PostalCode string `json:"postal_code"`
		Country    string `json:"country"`
	}
	type customer struct {
		Name  string `json:"name"`
		Email string `json:"email"`
		Phone string `json:"phone"`
	}
	type order struct {
		Customer customer `json:"customer"`
		Shipping address  `json:"shipping_address"`
		Billing  address  `json:"billing_address"`
		Items    []item   `json:"items"`
		Currency string   `json:"currency"`
		Coupon   string   `json:"coupon,omitempty"`
		Notes    string   `json:"notes"`
		Consent  bool     `json:"marketing_consent"`
	}
	customers := []customer{
		{"Alice Martin", "alice@example.com", "+33 1 23 45 67 89"},
		{"Bob Chen", "bob@example.org", "+44 20 7946 0958"},
		{"Carla Diaz", "carla@example.net", "+34 912 345 678"},
	}
	addrs := []address{
		{"12 Rue des Lilas", "Apartment 4B", "Lyon", "69003", "FR"},
		{"221 Baker Street", "", "London", "NW1 6XE", "GB"},
		{"Calle Mayor 45", "Piso 2", "Madrid", "28013", "ES"},
	}
	v := variant % len(customers)
	var items []item
	for k := range 4 {
		p := catalogue[(v*4+k*3)%len(catalogue)]
		items = append(items, item{p.ID, p.SKU, p.Name, 1 + (v+k)%3, p.Price})
	}
	o := order{
		Customer: customers[v],
		Shipping: addrs[v],
		Billing:  addrs[v],
		Items:    items,
		Currency: "EUR",
		Coupon:   []string{"SPRING10", "", "WELCOME5"}[v],
		Notes:    "Please deliver on a weekday morning if possible and ring the bell twice. If nobody answers, the neighbours at number 14 are happy to take the parcel. Thank you very much!",
		Consent:  v%2 == 0,
	}
	data, err := json.Marshal(o)
	if err != nil {
		panic(err) // static data; cannot happen
	}
	return string(data)
}
