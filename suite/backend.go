package suite

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Backend is the application the suite's requests reach through wafcanary.
// It plays the parts of the backends the suite was written for, so that the
// response-phase rules (RESPONSE-95x) have something to inspect:
//   - /reflect answers with the status, headers and body described by a
//     JSON request body, like the albedo backend CRS tests with;
//   - /anything echoes the request body (form bodies URL-decoded), and
//     /base64/DATA answers with DATA decoded, like httpbin;
//   - everything else answers 200 with a short text.
func Backend() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "text/plain")
		switch {
		case r.URL.Path == "/reflect":
			reflect(w, body)
		case r.URL.Path == "/anything":
			if r.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
				if s, err := url.QueryUnescape(string(body)); err == nil {
					body = []byte(s)
				}
			}
			_, _ = w.Write(body)
		case strings.HasPrefix(r.URL.Path, "/base64/"):
			b, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(r.URL.Path, "/base64/"))
			if err != nil {
				b, _ = base64.StdEncoding.DecodeString(strings.TrimPrefix(r.URL.Path, "/base64/"))
			}
			_, _ = w.Write(b)
		default:
			_, _ = io.WriteString(w, "Hello!")
		}
	})
}

// reflect writes the response a /reflect request describes. Fields it does
// not know (some negative tests send arbitrary JSON) are ignored, as albedo
// does, giving an empty 200.
func reflect(w http.ResponseWriter, spec []byte) {
	var s struct {
		Status      int               `json:"status"`
		Headers     map[string]string `json:"headers"`
		Body        string            `json:"body"`
		EncodedBody string            `json:"encodedBody"`
	}
	_ = json.Unmarshal(spec, &s)
	for k, v := range s.Headers {
		w.Header().Set(k, v)
	}
	body := []byte(s.Body)
	if s.EncodedBody != "" {
		if b, err := base64.StdEncoding.DecodeString(s.EncodedBody); err == nil {
			body = b
		}
	}
	if s.Status >= 100 && s.Status <= 599 {
		w.WriteHeader(s.Status)
	}
	_, _ = w.Write(body)
}
