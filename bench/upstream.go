package main

import (
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// upstreamHandler is the application behind every target: pages, static
// assets and API answers of realistic sizes and types, so the targets that
// inspect response bodies do so on the same bytes. Request bodies are read
// and discarded.
func upstreamHandler() http.Handler {
	page := []byte(htmlPage(6 << 10))
	thanks := []byte(htmlPage(2 << 10))
	js := []byte(strings.Repeat("function f(a,b){return a.map(function(x){return x*b})}\n", (16<<10)/55))
	css := []byte(strings.Repeat(".card{margin:0 auto;padding:1rem;border:1px solid #ddd}\n", (8<<10)/56))
	img := make([]byte, 12<<10)
	for i := range img {
		img[i] = byte(i * 7)
	}
	api := []byte(`{"items":[` + strings.Repeat(`{"id":1042,"name":"Wireless headphones","price":279.99,"stock":12},`, 14) + `{"id":1}],"total":15}`)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		var body []byte
		ct := "text/html; charset=utf-8"
		switch ext := path.Ext(r.URL.Path); {
		case ext == ".js":
			body, ct = js, "application/javascript"
		case ext == ".css":
			body, ct = css, "text/css"
		case ext == ".png" || ext == ".jpg" || ext == ".ico" || ext == ".woff2":
			body, ct = img, "image/png"
		case strings.HasPrefix(r.URL.Path, "/api/"):
			body, ct = api, "application/json"
		case r.Method == http.MethodPost:
			body = thanks
		default:
			body = page
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

func htmlPage(size int) string {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>Shop</title></head><body><h1>Results</h1><ul>\n")
	for i := 0; b.Len() < size-30; i++ {
		fmt.Fprintf(&b, "<li><a href=\"/products/%d\">Product %d</a>: in stock, ships in 2 days.</li>\n", i, i)
	}
	b.WriteString("</ul></body></html>\n")
	return b.String()
}
