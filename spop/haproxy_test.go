package spop

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	realHAProxy.stop()
	os.Exit(code)
}

// realHAProxy is Debian's haproxy binary, started once for the package on
// loopback ports with the agent below behind a SPOE filter, and killed by
// TestMain.
var realHAProxy haproxyFixture

type haproxyFixture struct {
	once     sync.Once
	skip     string
	err      error
	frontend string // the HTTP frontend
	stats    string // the stats page, to read the health check's result
	cmd      *exec.Cmd
	exited   chan struct{}
	output   logBuffer
	dir      string
	agent    *Server
	backend  *httptest.Server
	mu       sync.Mutex
	inFlight map[string]int // frames being handled now, per connection
	maxIn    int            // the most ever handled at once on one connection
	engines  sync.Map       // engine-ids seen
}

// haproxyCfg denies on the variables the agent sets, and fails closed on
// HAProxy's own SPOE errors (set-on-error), as coraza-spoa's example does.
const haproxyCfg = `global
    nbthread 1
    maxconn 200

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend fe
    bind 127.0.0.1:{{frontend}}
    option http-buffer-request
    filter spoe engine x config {{dir}}/spoe.cfg
    http-request deny deny_status 403 if { var(txn.x.action) -m str deny }
    http-request deny deny_status 500 if { var(txn.x.error) -m int gt 0 }
    http-request deny deny_status 502 if { var(txn.x.agent_error) -m int gt 0 }
    http-response set-header X-Agent-Seen %[var(txn.x.seen)]
    default_backend app

backend app
    server app {{backend}}

backend agents
    mode tcp
    option spop-check
    timeout server 30s
    server agent {{agent}} check inter 200ms

listen stats
    bind 127.0.0.1:{{stats}}
    stats enable
    stats uri /stats
`

const spoeCfg = `[x]
spoe-agent x-agent
    messages check
    option var-prefix x
    option set-on-error error
    timeout hello 2s
    timeout idle 30s
    timeout processing 2s
    use-backend agents

spoe-message check
    args method=method path=path src=src headers=req.hdrs_bin body=req.body body-size=req.body_size id=unique-id
    event on-frontend-http-request
`

// haproxyAgent answers the "check" message: deny /blocked and bodies with
// "attack" in them, panic on /panic, and report what it saw.
func haproxyAgent(ctx context.Context, n *Notify) ([]Action, error) {
	h := &realHAProxy
	conn := n.RemoteAddr.String()
	h.mu.Lock()
	h.inFlight[conn]++
	h.maxIn = max(h.maxIn, h.inFlight[conn])
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.inFlight[conn]--
		h.mu.Unlock()
	}()
	realHAProxy.engines.Store(n.EngineID, true)
	m, ok := n.Message("check")
	if !ok {
		return nil, errors.New("no check message")
	}
	arg := func(name string) Value { v, _ := m.Arg(name); return v }
	path := arg("path").Text()
	switch path {
	case "/panic":
		panic("the handler fails")
	case "/slow":
		time.Sleep(20 * time.Millisecond)
	}
	hdrs, err := ParseHdrsBin(arg("headers").Text())
	if err != nil {
		return nil, err
	}
	host := ""
	for _, h := range hdrs {
		if h.Name == "host" {
			host = h.Value
		}
	}
	body := arg("body").Text()
	seen := fmt.Sprintf("%s %s host=%s body=%d/%d src=%v", arg("method").Text(), path, host, len(body), arg("body-size").Int(), arg("src").Addr())
	acts := []Action{SetVar(ScopeTxn, "seen", String(seen))}
	// HAProxy sends what its buffer holds (tune.bufsize), not the whole
	// body, and nothing else says so: comparing with req.body_size is the
	// only way to refuse a body the agent did not see in full.
	cut := int64(len(body)) < arg("body-size").Int()
	if path == "/blocked" || strings.Contains(body, "attack") || cut {
		acts = append(acts, SetVar(ScopeTxn, "action", String("deny")))
	}
	return acts, nil
}

// startHAProxy starts the agent, an upstream and haproxy, or says why the
// test must skip (no binary) or fail.
func startHAProxy(t *testing.T) {
	t.Helper()
	h := &realHAProxy
	h.once.Do(func() {
		bin, err := exec.LookPath("haproxy")
		if err != nil {
			h.skip = "haproxy is not installed (apt-get install haproxy; .ci/run installs it)"
			return
		}
		h.err = h.start(bin)
	})
	if h.skip != "" {
		t.Skip(h.skip)
	}
	if h.err != nil {
		t.Fatalf("starting haproxy: %v\n%s", h.err, h.output.String())
	}
}

func (h *haproxyFixture) start(bin string) error {
	h.exited = make(chan struct{})
	close(h.exited) // until a process runs
	h.inFlight = map[string]int{}
	h.agent = &Server{
		Handler: HandlerFunc(haproxyAgent),
		Logger:  quietLogger(),
		// Fail closed on the agent's own errors, through a variable the
		// configuration denies on.
		ErrorActions: func(*Notify, error) []Action { return []Action{SetVar(ScopeTxn, "agent_error", Int64(1))} },
	}
	agentL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go h.agent.Serve(agentL)
	h.backend = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "upstream")
	}))
	if h.dir, err = os.MkdirTemp("", "spop-haproxy-"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.dir, "spoe.cfg"), []byte(spoeCfg), 0o644); err != nil {
		return err
	}
	// HAProxy binds its own ports: take free ones, release them and hope
	// nobody takes them in between; a bind failure is retried.
	for attempt := 0; ; attempt++ {
		fe, st := freePort(), freePort()
		cfg := strings.NewReplacer("{{frontend}}", fe, "{{stats}}", st, "{{dir}}", h.dir,
			"{{backend}}", h.backend.Listener.Addr().String(), "{{agent}}", agentL.Addr().String()).Replace(haproxyCfg)
		path := filepath.Join(h.dir, "haproxy.cfg")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return err
		}
		h.frontend, h.stats = "127.0.0.1:"+fe, "127.0.0.1:"+st
		err := h.run(bin, path)
		if err == nil || attempt == 2 || !strings.Contains(h.output.String(), "cannot bind") {
			return err
		}
	}
}

// run starts haproxy in the foreground (-db) and waits for its frontend.
func (h *haproxyFixture) run(bin, cfg string) error {
	h.cmd = exec.Command(bin, "-db", "-f", cfg)
	h.cmd.Stdout, h.cmd.Stderr = &h.output, &h.output
	if err := h.cmd.Start(); err != nil {
		return err
	}
	h.exited = make(chan struct{})
	go func() { h.cmd.Wait(); close(h.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-h.exited:
			return fmt.Errorf("haproxy exited: %v", h.cmd.ProcessState)
		default:
		}
		if c, err := net.DialTimeout("tcp", h.frontend, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.cmd.Process.Kill()
	<-h.exited
	return errors.New("haproxy did not listen within 10s")
}

func (h *haproxyFixture) stop() {
	if h.cmd != nil && h.cmd.Process != nil {
		h.cmd.Process.Kill()
		<-h.exited
	}
	if h.agent != nil {
		h.agent.Close()
	}
	if h.backend != nil {
		h.backend.Close()
	}
	if h.dir != "" {
		os.RemoveAll(h.dir)
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// The real HAProxy 2.6 talks to the Server: the handshake, NOTIFY frames
// with headers and bodies, ACKs whose variables HAProxy acts on, the
// agent's panics failing closed, and HAProxy's own SPOP health check.
func TestRealHAProxy(t *testing.T) {
	startHAProxy(t)
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+realHAProxy.frontend+path, strings.NewReader(body))
		req.Host = "example.test"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, realHAProxy.output.String())
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Agent-Seen")
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		seen                     string
	}{
		{"allowed", "GET", "/hello?x=1", "", 200, "GET /hello host=example.test body=0/0 src=127.0.0.1"},
		{"denied by path", "GET", "/blocked", "", 403, ""},
		{"body reaches the agent", "POST", "/form", "name=value", 200, "POST /form host=example.test body=10/10 src=127.0.0.1"},
		{"denied by body", "POST", "/form", "q=an attack", 403, ""},
		{"body near the frame size", "POST", "/big", strings.Repeat("a", 12000), 200, "POST /big host=example.test body=12000/12000 src=127.0.0.1"},
		// HAProxy 2.6 sent 15134 of these 17000 bytes: the agent denies.
		{"body over HAProxy's buffer", "POST", "/bigger", strings.Repeat("a", 17000), 403, ""},
		// The agent's ErrorActions set agent_error; the connection lives.
		{"handler panic", "GET", "/panic", "", 502, ""},
		{"after the panic", "GET", "/again", "", 200, "GET /again host=example.test body=0/0 src=127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, seen := do(tc.method, tc.path, tc.body)
			if status != tc.status || seen != tc.seen {
				t.Fatalf("%d %q, want %d %q", status, seen, tc.status, tc.seen)
			}
		})
	}

	t.Run("concurrent requests", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan string, 100)
		for g := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					path, want := fmt.Sprintf("/slow?g=%d&i=%d", g, i), 200
					if i%3 == 0 {
						path, want = "/blocked", 403
					}
					resp, err := client.Get("http://" + realHAProxy.frontend + path)
					if err != nil {
						errs <- err.Error()
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != want {
						errs <- fmt.Sprintf("%s: %d, want %d", path, resp.StatusCode, want)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		realHAProxy.mu.Lock()
		defer realHAProxy.mu.Unlock()
		// Informative: whether HAProxy pipelines depends on its load.
		t.Logf("at most %d frames in flight on one connection", realHAProxy.maxIn)
	})

	t.Run("health check", func(t *testing.T) {
		// HAProxy's spop-check sends a HELLO with healthcheck=true every
		// 200ms; its result is on the stats page.
		deadline := time.Now().Add(5 * time.Second)
		var row map[string]string
		for time.Now().Before(deadline) {
			if row = statsRow(t, "agents", "agent"); row["check_status"] == "L7OK" && row["status"] == "UP" {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("agent server: status %q check_status %q check_desc %q", row["status"], row["check_status"], row["check_desc"])
	})

	engine := ""
	realHAProxy.engines.Range(func(k, _ any) bool { engine = k.(string); return engine == "" })
	if engine == "" {
		t.Error("HAProxy's HELLO carried no engine-id")
	}
}

// statsRow reads one server's row from HAProxy's CSV stats.
func statsRow(t *testing.T, proxy, server string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + realHAProxy.stats + "/stats;csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("stats: %v", err)
	}
	head := recs[0]
	head[0] = strings.TrimPrefix(head[0], "# ")
	for _, rec := range recs[1:] {
		if len(rec) >= 2 && rec[0] == proxy && rec[1] == server {
			row := map[string]string{}
			for i, k := range head {
				if i < len(rec) {
					row[k] = rec[i]
				}
			}
			return row
		}
	}
	t.Fatalf("no stats row for %s/%s", proxy, server)
	return nil
}
