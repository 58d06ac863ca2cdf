package demo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

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

// NoteFalsePositive returns the false positive no shipped candidate fixes,
// the README's `wafcanary tune` example: a developer's note on POST
// /api/notes that spells out an onclick attribute, which CRS 4.25 blocks at
// paranoia level 1 (941100 and 941120 on ARGS:text). It is not part of
// FalsePositiveRequests, whose traffic the shipped candidates are measured on.
func NoteFalsePositive() Request {
	return Request{Name: "fp-note-onclick", Kind: KindFalsePositive, Method: http.MethodPost, Path: "/api/notes",
		Header: formHeader.Clone(), Body: "title=Save+button&text=Remember+to+set+onclick%3D%22save()%22+on+the+button"}
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
