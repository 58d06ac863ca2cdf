package demo

import (
	"encoding/json"
	"html"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// hasMediaType reports whether the request's Content-Type has media type want.
func hasMediaType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, want)
}

func writeBody(w http.ResponseWriter, status int, contentType, body string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeBody(w, http.StatusInternalServerError, contentTypeText, "internal error\n")
		return
	}
	data = append(data, '\n')
	writeBody(w, status, contentTypeJSON, string(data))
}

func pageHead(title string) string {
	return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>` + html.EscapeString(title) + `</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<nav><a href="/">Home</a> | <a href="/search?q=tent">Tents</a> | <a href="/healthz">Health</a></nav>
<main>
`
}

const pageFoot = `</main>
<footer>wafcanary demo application</footer>
</body>
</html>
`

const appCSS = `body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafaf7; }
nav { background: #2f5d50; padding: 0.6em 1em; }
nav a { color: #fff; text-decoration: none; }
main { max-width: 48em; margin: 1.5em auto; padding: 0 1em; }
footer { text-align: center; color: #777; font-size: 0.85em; padding: 2em 0; }
input, textarea, button { font: inherit; padding: 0.3em; }
`

const appJS = `// Demo client script: marks links to products as loaded on hover.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("a[href^='/api/products/']").forEach(function (a) {
    a.addEventListener("mouseenter", function () {
      fetch(a.getAttribute("href"), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (p) { a.title = p.in_stock ? "In stock" : "Out of stock"; })
        .catch(function () {});
    });
  });
});
`
