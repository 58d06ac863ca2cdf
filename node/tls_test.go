package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/certificate"
)

// testCA makes certificates the tests trust, written as PEM files.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wafcanary test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool(), dir: t.TempDir()}
	ca.pool.AddCert(cert)
	writePEM(t, filepath.Join(ca.dir, "ca.pem"), "CERTIFICATE", der)
	return ca
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue writes a leaf for 127.0.0.1 with serial n (server or client use)
// to name.pem and name.key.
func (ca *testCA) issue(t *testing.T, name string, n int64, client bool) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	writePEM(t, certFile+".tmp", "CERTIFICATE", der)
	writePEM(t, keyFile+".tmp", "PRIVATE KEY", kb)
	// Renamed into place, as a certificate manager does.
	os.Rename(keyFile+".tmp", keyFile)
	os.Rename(certFile+".tmp", certFile)
	return certFile, keyFile
}

// HTTPS and HTTP/2 through the proxy with generated certificates: an SQL
// injection is blocked over HTTP/2 by the same rules as over HTTP/1.1;
// a certificate swap on SIGHUP (Reload) fails no request, new connections
// get the new certificate, and a broken pair is refused while the old one
// serves. The admin listener requires a client certificate when asked.
func TestTLSListeners(t *testing.T) {
	ca := newTestCA(t)
	cert, key := ca.issue(t, "proxy", 10, false)
	admCert, admKey := ca.issue(t, "admin", 20, false)
	cliCert, cliKey := ca.issue(t, "operator", 30, true)
	cfg := testConfig(t, newUpstream(t).URL)
	cfg.TLS = certificate.Config{CertFile: cert, KeyFile: key}
	cfg.Admin.TLS = certificate.Config{CertFile: admCert, KeyFile: admKey, ClientCAFile: filepath.Join(ca.dir, "ca.pem")}
	ls := startLive(t, cfg)
	proxy := "https://" + strings.TrimPrefix(ls.proxy, "http://")
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: true}}
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	get := func(c *http.Client, path, id string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, proxy+path, nil)
		req.Header.Set("X-Request-ID", id)
		req.Header.Set("User-Agent", "Mozilla/5.0")
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get(h2, "/search?q=tent", "tls-benign"); r.StatusCode != 200 || r.Proto != "HTTP/2.0" {
		t.Fatalf("benign over TLS: %d %s", r.StatusCode, r.Proto)
	}
	const sqli = "/search?q=1%27%20OR%20%271%27%3D%271%27--"
	r2, r1 := get(h2, sqli, "tls-sqli-h2"), get(h1, sqli, "tls-sqli-h1")
	if r2.StatusCode != 403 || r2.Proto != "HTTP/2.0" || r1.StatusCode != 403 || r1.Proto != "HTTP/1.1" {
		t.Fatalf("SQL injection: HTTP/2 %d %s, HTTP/1.1 %d %s", r2.StatusCode, r2.Proto, r1.StatusCode, r1.Proto)
	}
	rules := func(id string) string {
		var e admin.Explanation
		var err error
		for range 100 {
			if e, err = ls.s.Explain(id); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		var ids []string
		for _, r := range e.Rules {
			ids = append(ids, r.Message)
		}
		return strings.Join(ids, "|")
	}
	if a, b := rules("tls-sqli-h2"), rules("tls-sqli-h1"); a == "" || a != b {
		t.Errorf("CRS saw the requests differently: HTTP/2 %q, HTTP/1.1 %q", a, b)
	}

	serial := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", strings.TrimPrefix(proxy, "https://"), &tls.Config{RootCAs: ca.pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	var failed, sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 { // keep-alive and fresh connections alike
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h2
			if w%2 == 1 {
				c = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, DisableKeepAlives: true}}
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(proxy + "/search?q=tent")
				sent.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	ca.issue(t, "proxy", 11, false) // the same files, a new pair
	ls.s.Reload()
	time.Sleep(300 * time.Millisecond)
	if s := serial(); s != 11 {
		t.Errorf("after the swap a new connection got serial %d, want 11", s)
	}
	os.WriteFile(cert, []byte("not a certificate"), 0o600)
	ls.s.Reload()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || sent.Load() < 20 {
		t.Errorf("%d of %d requests failed across the certificate swaps", failed.Load(), sent.Load())
	}
	if s := serial(); s != 11 {
		t.Errorf("after a broken pair a new connection got serial %d, want the old 11", s)
	}

	// The admin listener: the token travels over TLS, and only with a
	// client certificate signed by the configured CA.
	admURL := "https://" + strings.TrimPrefix(ls.admin, "http://")
	op, _ := tls.LoadX509KeyPair(cliCert, cliKey)
	withCert := &admin.Client{URL: admURL, Token: ls.s.adminToken, HTTP: &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{op}}}}}
	if st, err := withCert.Status(context.Background()); err != nil || st.Baseline == nil {
		t.Errorf("admin over TLS with a client certificate: %v", err)
	}
	without := &admin.Client{URL: admURL, Token: ls.s.adminToken, HTTP: &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}}
	if _, err := without.Status(context.Background()); err == nil {
		t.Error("admin answered a client without a certificate")
	}
	t.Logf("%d requests across two certificate reloads, none failed", sent.Load())
}
