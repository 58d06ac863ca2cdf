package replay

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wafcanary/wafcanary/demo"
	"github.com/wafcanary/wafcanary/modsec"
)

// sent is one request of the test traffic, as the client sent it.
type sent struct {
	demo.Request
	// binary marks the request with a body that is not text.
	binary bool
}

// traffic is what the tests send through ModSecurity: the demo's benign
// requests twice, its attacks, the shipped false positives, the note
// false positive no candidate fixes, a request with a header repeated,
// and a binary upload.
func traffic() []sent {
	var out []sent
	for range 2 {
		for _, r := range demo.BenignRequests() {
			out = append(out, sent{Request: r})
		}
	}
	for _, r := range demo.AttackRequests() {
		out = append(out, sent{Request: r})
	}
	for _, r := range demo.FalsePositiveRequests() {
		out = append(out, sent{Request: r})
	}
	out = append(out, sent{Request: demo.NoteFalsePositive()})
	out = append(out, sent{Request: demo.Request{Name: "repeated-header", Kind: demo.KindBenign, Method: http.MethodGet, Path: "/api/products/3",
		Header: http.Header{"Accept": {"application/json"}, "X-Trace": {"a", "b"}}}})
	bin := make([]byte, 512)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	out = append(out, sent{binary: true, Request: demo.Request{Name: "binary-upload", Kind: demo.KindBenign, Method: http.MethodPost, Path: "/echo",
		Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: string(bin)}})
	return out
}

// bulkBenign is how many benign requests follow traffic() in the serial
// log: enough pairs (about 4,600 with the default policy) for the
// controller's checks to pass at their 0.1% limits.
const bulkBenign = 5000

func bulkLog() bool { return os.Getenv("TEST_REPLAY_BULK") == "1" }

// bulk is traffic() followed, with TEST_REPLAY_BULK=1 (a step of its own
// in .ci/run), by bulkBenign of the demo's benign requests: sending them
// through ModSecurity and replaying them twice takes half a minute of both
// cores, which `go test ./...` leaves to that step. Without them the
// serial log is as small as the concurrent one, and as inconclusive.
func bulk() []sent {
	out := traffic()
	if !bulkLog() {
		return out
	}
	benign := demo.BenignRequests()
	for i := range bulkBenign {
		out = append(out, sent{Request: benign[i%len(benign)]})
	}
	return out
}

// send sends reqs to base (http://host:port) as shop.example.com, with a
// browser's headers, the path verbatim (dot segments kept), on 4
// connections, and returns the statuses.
func send(t testing.TB, base string, reqs []sent) []int {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	statuses := make([]int, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(reqs); i += 4 {
				statuses[i], errs[i] = sendOne(client, base, i, reqs[i])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s %s: %v", reqs[i].Method, reqs[i].Path, err)
		}
	}
	return statuses
}

func sendOne(client *http.Client, base string, i int, r sent) (int, error) {
	{
		path, query, _ := strings.Cut(r.Path, "?")
		hr, err := http.NewRequest(r.Method, base+"/", bytes.NewReader([]byte(r.Body)))
		if err != nil {
			return 0, err
		}
		hr.URL.Path, hr.URL.Opaque, hr.URL.RawQuery = "", path, query
		hr.Host = "shop.example.com"
		hr.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
		hr.Header.Set("Accept", "text/html,application/json;q=0.9,*/*;q=0.8")
		hr.Header.Set("Accept-Language", "en-US,en;q=0.9")
		for k, v := range r.Header {
			hr.Header[k] = v
		}
		hr.Header.Set("X-Request-Seq", fmt.Sprint(i))
		resp, err := client.Do(hr)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
}

// modsecLogs are the audit logs the ModSecurity servers wrote for the
// test traffic, produced once per package run.
type modsecLogs struct {
	// Serial and Concurrent are libmodsecurity v3's (nginx): the log of
	// bulk(), and the index of the concurrent one of traffic() with its
	// storage directory.
	Serial, ConcurrentIndex, ConcurrentDir string
	// Apache is mod_security2's serial JSON log of traffic(); "" when
	// Apache is not installed.
	Apache string
	// Statuses are what nginx answered, per request of bulk().
	Statuses []int
	dir      string
	err      error
}

// TestMain removes the logs once every test has read them.
func TestMain(m *testing.M) {
	code := m.Run()
	if logs.dir != "" {
		_ = os.RemoveAll(logs.dir)
	}
	os.Exit(code)
}

var (
	logsOnce sync.Once
	logs     modsecLogs
)

// auditLogs starts nginx (and Apache when installed) with ModSecurity in
// front of the demo application, once, sends traffic() through each, and
// returns the logs. A test that needs them fails when nginx or its
// ModSecurity module is missing: .ci/run installs them.
func auditLogs(t testing.TB) modsecLogs {
	t.Helper()
	logsOnce.Do(func() { logs = produceLogs() })
	if logs.err != nil {
		t.Fatal(logs.err)
	}
	return logs
}

const nginxModule = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"

func produceLogs() (out modsecLogs) {
	dir, err := os.MkdirTemp("", "wafcanary-replay-modsec-")
	if err != nil {
		return modsecLogs{err: err}
	}
	out.dir = dir
	app := httptest.NewServer(demo.NewApp())
	defer app.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out.err = os.Chmod(dir, 0o777); out.err != nil {
		return out
	}
	if _, out.err = modsec.WriteCRS(filepath.Join(dir, "crs")); out.err != nil {
		return out
	}
	out.Serial = filepath.Join(dir, "serial", "audit.log")
	out.ConcurrentIndex = filepath.Join(dir, "concurrent", "index.log")
	out.ConcurrentDir = filepath.Join(dir, "concurrent", "storage")
	for _, d := range []string{"tmp", "serial", "concurrent", "concurrent/storage", "nginx", "apache"} {
		if out.err = os.MkdirAll(filepath.Join(dir, d), 0o777); out.err != nil {
			return out
		}
		_ = os.Chmod(filepath.Join(dir, d), 0o777)
	}
	settings := func(a modsec.AuditLog) string {
		return modsec.Config(modsec.Settings{TmpDir: filepath.Join(dir, "tmp"), Includes: modsec.CRSIncludes(filepath.Join(dir, "crs")), Audit: &a})
	}
	files := map[string]string{
		"serial.conf":     settings(modsec.AuditLog{Type: modsec.Serial, File: out.Serial}),
		"concurrent.conf": settings(modsec.AuditLog{Type: modsec.Concurrent, File: out.ConcurrentIndex, StorageDir: out.ConcurrentDir}),
	}
	serialAddr, concAddr := freeAddr(), freeAddr()
	files["nginx/nginx.conf"] = nginxConf(dir, app.Listener.Addr().String(), serialAddr, concAddr)
	for name, text := range files {
		if out.err = os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); out.err != nil {
			return out
		}
	}
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(nginxModule); err != nil {
		out.err = fmt.Errorf("nginx's ModSecurity module is not installed (apt-get install nginx libnginx-mod-http-modsecurity): %w", err)
		return out
	}
	cmd := exec.CommandContext(ctx, bin, "-p", filepath.Join(dir, "nginx"), "-c", filepath.Join(dir, "nginx", "nginx.conf"), "-e", filepath.Join(dir, "nginx", "error.log"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if out.err = cmd.Start(); out.err != nil {
		return out
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	for _, addr := range []string{serialAddr, concAddr} {
		if out.err = waitListening(ctx, addr); out.err != nil {
			out.err = fmt.Errorf("nginx: %w: %s", out.err, stderr.String())
			return out
		}
	}
	t := &collect{}
	defer func() {
		if p := recover(); p != nil && t.err != nil {
			out.err = t.err
		} else if p != nil {
			panic(p)
		}
	}()
	out.Statuses = send(t, "http://"+serialAddr, bulk())
	send(t, "http://"+concAddr, traffic())
	// ModSecurity writes a transaction in its logging phase, after the
	// response: wait for every record before reading or stopping. nginx
	// refuses the path traversal itself; ModSecurity never sees it.
	if out.err = waitRecords(ctx, out.Serial, len(bulk())-1); out.err != nil {
		return out
	}
	if out.err = waitRecords(ctx, out.ConcurrentIndex, len(traffic())-1); out.err != nil {
		return out
	}
	if _, err := os.Stat(apacheBin); err != nil {
		return out // Apache is optional; the tests that need it skip
	}
	apacheLog := filepath.Join(dir, "apache", "audit.log")
	apacheAddr := freeAddr()
	if out.err = os.WriteFile(filepath.Join(dir, "apache.conf"), []byte(settings(modsec.AuditLog{Type: modsec.Serial, File: apacheLog})), 0o644); out.err != nil {
		return out
	}
	if out.err = os.WriteFile(filepath.Join(dir, "apache", "httpd.conf"), []byte(apacheConf(dir, app.Listener.Addr().String(), apacheAddr)), 0o644); out.err != nil {
		return out
	}
	ap := exec.CommandContext(ctx, apacheBin, "-X", "-d", filepath.Join(dir, "apache"), "-f", filepath.Join(dir, "apache", "httpd.conf"))
	var apErr bytes.Buffer
	ap.Stdout, ap.Stderr = &apErr, &apErr
	if out.err = ap.Start(); out.err != nil {
		return out
	}
	defer func() {
		_ = ap.Process.Signal(syscall.SIGTERM)
		_ = ap.Wait()
	}()
	if out.err = waitListening(ctx, apacheAddr); out.err != nil {
		out.err = fmt.Errorf("apache: %w: %s", out.err, apErr.String())
		return out
	}
	send(t, "http://"+apacheAddr, traffic())
	if out.err = waitRecords(ctx, apacheLog, len(traffic())); out.err != nil {
		return out
	}
	out.Apache = apacheLog
	return out
}

const apacheBin = "/usr/sbin/apache2"

// apacheConf is Apache (one process, -X) with mod_security2 in front of
// upstream, logging serially in JSON.
func apacheConf(dir, upstream, listen string) string {
	const mods = "/usr/lib/apache2/modules"
	user := ""
	if os.Geteuid() == 0 {
		user = "User nobody\nGroup nogroup\n"
	}
	return fmt.Sprintf(`ServerRoot %[1]s/apache
PidFile %[1]s/apache/httpd.pid
ErrorLog %[1]s/apache/error.log
Mutex file:%[1]s/apache default
%[2]sListen %[3]s
LoadModule mpm_event_module %[4]s/mod_mpm_event.so
LoadModule authz_core_module %[4]s/mod_authz_core.so
LoadModule unique_id_module %[4]s/mod_unique_id.so
LoadModule proxy_module %[4]s/mod_proxy.so
LoadModule proxy_http_module %[4]s/mod_proxy_http.so
LoadModule security2_module %[4]s/mod_security2.so
ServerName shop.example.com
ProxyPass / http://%[5]s/
ProxyPreserveHost On
Include %[1]s/apache.conf
`, dir, user, listen, mods, upstream)
}

// collect is enough of testing.TB for send outside a test.
type collect struct {
	testing.TB
	err error
}

func (c *collect) Helper() {}
func (c *collect) Fatal(args ...any) {
	c.err = fmt.Errorf("%s", fmt.Sprint(args...))
	panic(c.err)
}
func (c *collect) Fatalf(f string, args ...any) { c.Fatal(fmt.Sprintf(f, args...)) }

// nginxConf serves two ModSecurity set-ups in front of upstream: serial
// logging on one address, concurrent on the other.
func nginxConf(dir, upstream, serial, concurrent string) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user nobody nogroup;\n"
	}
	server := func(listen, rules string) string {
		return fmt.Sprintf(`    server {
        listen %s;
        modsecurity on;
        modsecurity_rules_file %s/%s;
        location / {
            proxy_pass http://%s;
            proxy_set_header Host $host;
        }
    }
`, listen, dir, rules, upstream)
	}
	return fmt.Sprintf(`%sdaemon off;
master_process on;
worker_processes 1;
pid %[2]s/nginx/nginx.pid;
error_log %[2]s/nginx/error.log warn;
load_module %[3]s;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[2]s/tmp;
    proxy_temp_path %[2]s/tmp;
    fastcgi_temp_path %[2]s/tmp;
    uwsgi_temp_path %[2]s/tmp;
    scgi_temp_path %[2]s/tmp;
%[4]s%[5]s}
`, user, dir, nginxModule, server(serial, "serial.conf"), server(concurrent, "concurrent.conf"))
}

// waitRecords waits until the log holds n records (non-empty lines).
func waitRecords(ctx context.Context, log string, n int) error {
	got := 0
	for {
		b, _ := os.ReadFile(log)
		got = 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(l) != "" {
				got++
			}
		}
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s holds %d records, want %d", log, got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not listening: %w", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
