// Package demo provides a small upstream web application and a synthetic
// traffic generator used by the `wafcanary demo` command to show the proxy
// working with nothing but the checkout.
//
// The application (NewApp) is deliberately ordinary: an HTML home page,
// static assets, a search page that echoes its query, a blog comment form,
// a small JSON API, a reflecting /echo endpoint and a short server-sent
// events stream. The traffic generator (Traffic) sends a repeatable mix of
// benign, attack and known false-positive requests to it through the proxy.
package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Body size limits applied by the demo application.
const (
	maxFormBytes  = 1 << 20 // blog comment form
	maxOrderBytes = 64 << 10
	maxEchoBytes  = 8 << 20
)

// Content types served by the demo application.
const (
	contentTypeHTML  = "text/html; charset=utf-8"
	contentTypeText  = "text/plain; charset=utf-8"
	contentTypeCSS   = "text/css; charset=utf-8"
	contentTypeJS    = "text/javascript; charset=utf-8"
	contentTypeJSON  = "application/json"
	contentTypeEvent = "text/event-stream"
)

// sseEvents and sseInterval define the /events stream.
const (
	sseEvents   = 3
	sseInterval = 100 * time.Millisecond
)

// product is one entry of the demo catalogue served by /api/products/{id}.
type product struct {
	ID       int      `json:"id"`
	SKU      string   `json:"sku"`
	Name     string   `json:"name"`
	Price    float64  `json:"price"`
	Currency string   `json:"currency"`
	InStock  bool     `json:"in_stock"`
	Tags     []string `json:"tags"`
}

// catalogue is the fixed product list; product IDs are 1..len(catalogue).
var catalogue = []product{
	{1, "TENT-2P", "Two-person hiking tent", 189.00, "EUR", true, []string{"camping", "tents"}},
	{2, "BAG-40L", "Forty litre trekking backpack", 129.50, "EUR", true, []string{"bags", "hiking"}},
	{3, "STOVE-GAS", "Compact gas stove", 39.90, "EUR", true, []string{"camping", "cooking"}},
	{4, "LAMP-HEAD", "Rechargeable head lamp", 24.99, "EUR", false, []string{"lighting"}},
	{5, "BOTTLE-1L", "Insulated steel bottle", 19.00, "EUR", true, []string{"hydration"}},
	{6, "JACKET-RAIN", "Lightweight rain jacket", 99.00, "EUR", true, []string{"clothing"}},
	{7, "BOOTS-MID", "Mid-cut hiking boots", 149.00, "EUR", true, []string{"footwear", "hiking"}},
	{8, "MAT-SLEEP", "Inflatable sleeping mat", 59.95, "EUR", true, []string{"camping", "sleeping"}},
	{9, "BAG-SLEEP", "Three-season sleeping bag", 119.00, "EUR", false, []string{"camping", "sleeping"}},
	{10, "POLES-CARB", "Carbon trekking poles", 79.00, "EUR", true, []string{"hiking"}},
	{11, "MAP-ALPS", "Alpine trail map set", 14.50, "EUR", true, []string{"maps", "books"}},
	{12, "KIT-AID", "First aid kit", 29.00, "EUR", true, []string{"safety"}},
}

// NewApp returns the demo upstream application as an http.Handler.
//
// Routes:
//
//	GET  /                    HTML home page
//	GET  /static/app.css      stylesheet (text/css)
//	GET  /static/app.js       script (text/javascript)
//	GET  /search?q=...        HTML page echoing q, HTML-escaped
//	POST /blog/comment        urlencoded form (name, email, comment) -> 201 HTML
//	POST /api/orders          JSON order -> 201 JSON
//	GET  /api/products/{id}   JSON product (404 JSON for unknown ids)
//	GET  /healthz             200 "ok"
//	GET  /echo, POST /echo    reflects method, URI, headers (except Cookie,
//	                          Authorization, Proxy-Authorization) and body
//	GET  /events              text/event-stream, 3 events 100ms apart
//
// Any other path is 404; a known path with the wrong method is 405. As with
// any http.ServeMux, a request whose path is not clean (for example
// /static/../../etc/passwd) is answered with a redirect (307 with Go 1.26) to the cleaned
// path. Each call returns an independent application (its own order counter).
func NewApp() http.Handler {
	a := &app{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /static/app.css", a.static(contentTypeCSS, appCSS))
	mux.HandleFunc("GET /static/app.js", a.static(contentTypeJS, appJS))
	mux.HandleFunc("GET /search", a.search)
	mux.HandleFunc("POST /blog/comment", a.comment)
	mux.HandleFunc("POST /support/tickets", a.ticket)
	mux.HandleFunc("POST /api/notes", a.note)
	mux.HandleFunc("POST /api/orders", a.createOrder)
	mux.HandleFunc("GET /api/products/{id}", a.getProduct)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /echo", a.echo)
	mux.HandleFunc("POST /echo", a.echo)
	mux.HandleFunc("GET /events", a.events)
	return mux
}

// app holds the (small) mutable state of one demo application.
type app struct {
	orderSeq atomic.Uint64
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	b.WriteString(pageHead("Canary Outfitters"))
	b.WriteString(`<h1>Canary Outfitters</h1>
<p>Everything for the trail, protected by two WAFs at once.</p>
<form action="/search" method="get"><input name="q" placeholder="Search products"> <button>Search</button></form>
<h2>Products</h2>
<ul>
`)
	for _, p := range catalogue {
		fmt.Fprintf(&b, "<li><a href=\"/api/products/%d\">%s</a> &mdash; %.2f %s</li>\n",
			p.ID, html.EscapeString(p.Name), p.Price, p.Currency)
	}
	b.WriteString(`</ul>
<h2>Leave a comment</h2>
<form action="/blog/comment" method="post">
<input name="name" placeholder="Name"> <input name="email" type="email" placeholder="Email"><br>
<textarea name="comment" rows="4" cols="60"></textarea><br>
<button>Post comment</button>
</form>
`)
	b.WriteString(pageFoot)
	writeBody(w, http.StatusOK, contentTypeHTML, b.String())
}

func (a *app) static(contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		writeBody(w, http.StatusOK, contentType, body)
	}
}

func (a *app) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	var b strings.Builder
	b.WriteString(pageHead("Search"))
	fmt.Fprintf(&b, "<h1>Search results for &quot;%s&quot;</h1>\n", html.EscapeString(q))
	needle := strings.ToLower(strings.TrimSpace(q))
	n := 0
	b.WriteString("<ul>\n")
	for _, p := range catalogue {
		if needle != "" && (strings.Contains(strings.ToLower(p.Name), needle) || slices.Contains(p.Tags, needle)) {
			fmt.Fprintf(&b, "<li><a href=\"/api/products/%d\">%s</a></li>\n", p.ID, html.EscapeString(p.Name))
			n++
		}
	}
	b.WriteString("</ul>\n")
	fmt.Fprintf(&b, "<p>%d result(s).</p>\n", n)
	b.WriteString(pageFoot)
	writeBody(w, http.StatusOK, contentTypeHTML, b.String())
}

func (a *app) comment(w http.ResponseWriter, r *http.Request) {
	if !hasMediaType(r, "application/x-www-form-urlencoded") {
		writeBody(w, http.StatusUnsupportedMediaType, contentTypeText, "expected application/x-www-form-urlencoded\n")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeBody(w, http.StatusBadRequest, contentTypeText, "invalid form\n")
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	comment := strings.TrimSpace(r.PostForm.Get("comment"))
	if name == "" || comment == "" {
		writeBody(w, http.StatusBadRequest, contentTypeText, "name and comment are required\n")
		return
	}
	var b strings.Builder
	b.WriteString(pageHead("Comment received"))
	fmt.Fprintf(&b, "<p>Thanks, %s! Your comment (%d characters) is awaiting moderation.</p>\n",
		html.EscapeString(name), len([]rune(comment)))
	b.WriteString(pageFoot)
	writeBody(w, http.StatusCreated, contentTypeHTML, b.String())
}

// ticket accepts a support ticket form (email, subject, message): the
// endpoint of the shipped exclusion candidate's false positive.
func (a *app) ticket(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || strings.TrimSpace(r.PostForm.Get("message")) == "" {
		writeBody(w, http.StatusBadRequest, contentTypeText, "message is required\n")
		return
	}
	writeBody(w, http.StatusCreated, contentTypeHTML, pageHead("Ticket received")+"<p>Thanks, we will get back to you.</p>\n"+pageFoot)
}

// note accepts a note form (title, text) from the team's notes page: the
// endpoint of the false positive `wafcanary tune` is shown on, a developer
// writing down front-end markup.
func (a *app) note(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || strings.TrimSpace(r.PostForm.Get("text")) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "text is required"})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"saved": true, "characters": len([]rune(r.PostForm.Get("text")))})
}

// orderRequest is the accepted shape of a POST /api/orders body. Unknown
// fields are ignored.
type orderRequest struct {
	Customer struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"customer"`
	Items []struct {
		ProductID int     `json:"product_id"`
		Quantity  int     `json:"quantity"`
		UnitPrice float64 `json:"unit_price"`
	} `json:"items"`
	Currency string `json:"currency"`
}

func (a *app) createOrder(w http.ResponseWriter, r *http.Request) {
	if !hasMediaType(r, "application/json") {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "expected application/json"})
		return
	}
	var req orderRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxOrderBytes))
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON body"})
		return
	}
	if len(req.Items) == 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": "order has no items"})
		return
	}
	total := 0.0
	count := 0
	for _, it := range req.Items {
		if it.Quantity <= 0 || it.UnitPrice < 0 {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": "invalid item"})
			return
		}
		count += it.Quantity
		total += float64(it.Quantity) * it.UnitPrice
	}
	currency := req.Currency
	if currency == "" {
		currency = "EUR"
	}
	id := fmt.Sprintf("ord-%06d", a.orderSeq.Add(1))
	w.Header().Set("Location", "/api/orders/"+id)
	writeJSON(w, http.StatusCreated, map[string]any{
		"order_id":   id,
		"status":     "accepted",
		"item_count": count,
		"total":      float64(int64(total*100+0.5)) / 100,
		"currency":   currency,
	})
}

func (a *app) getProduct(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid product id"})
		return
	}
	if id < 1 || id > len(catalogue) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "product not found"})
		return
	}
	writeJSON(w, http.StatusOK, catalogue[id-1])
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, http.StatusOK, contentTypeText, "ok")
}

// echoOmitted lists request headers /echo never reflects (credentials).
var echoOmitted = []string{"Cookie", "Authorization", "Proxy-Authorization"}

// echo writes, as text/plain:
//
//	METHOD REQUEST-URI PROTO
//	Host: host
//	Name: value          (one line per value, names sorted)
//	<empty line>
//	body bytes, unchanged
func (a *app) echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEchoBytes))
	if err != nil {
		writeBody(w, http.StatusRequestEntityTooLarge, contentTypeText, "body too large or unreadable\n")
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\n", r.Method, r.RequestURI, r.Proto)
	fmt.Fprintf(&b, "Host: %s\n", r.Host)
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		if !slices.Contains(echoOmitted, http.CanonicalHeaderKey(name)) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range r.Header[name] {
			fmt.Fprintf(&b, "%s: %s\n", name, v)
		}
	}
	b.WriteByte('\n')
	b.Write(body)
	h := w.Header()
	h.Set("Content-Type", contentTypeText)
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// events streams sseEvents server-sent events, sseInterval apart, flushing
// after each so that buffering anywhere on the path is visible.
func (a *app) events(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", contentTypeEvent)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 1; i <= sseEvents; i++ {
		if i > 1 {
			timer.Reset(sseInterval)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "id: %d\nevent: tick\ndata: {\"seq\":%d,\"of\":%d,\"time\":%q}\n\n",
			i, i, sseEvents, time.Now().UTC().Format(time.RFC3339Nano))
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
