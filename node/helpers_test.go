package node

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// response is what the tests look at in an HTTP answer.
type response struct {
	status int
	header http.Header
	body   string
}

// httpGet sends a GET with the given headers (name, value pairs) and reads
// the whole answer. Any transport error fails the test.
func httpGet(t *testing.T, c *http.Client, url string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// newClient returns an HTTP client with its own connections, closed when
// the test ends.
func newClient(t *testing.T) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// metricValue finds the sample of series (name{labels} exactly as the text
// exposition format prints it) in a /metrics body.
func metricValue(body, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		return v, err == nil
	}
	return 0, false
}

// servesVersion reports whether a scrape's wafcanary_ruleset_info has
// version in service on arm, whatever CRS it runs.
func servesVersion(body, arm, version string) bool {
	re := regexp.MustCompile(`(?m)^wafcanary_ruleset_info\{arm="` + regexp.QuoteMeta(arm) + `",crs="[^"]*",version="` + regexp.QuoteMeta(version) + `"\} 1$`)
	return re.MatchString(body)
}

// syncBuffer is a bytes.Buffer a logger may write from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
