package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wafcanary/wafcanary/rollout"
)

// recorder is the rollouts as the handler drives them: it keeps the last
// request so a test can see whom the server took it to be from.
type recorder struct {
	mu     sync.Mutex
	action Action
	actor  string
	claim  string
	by     Identity
	emerg  bool
}

func (r *recorder) Start(_ context.Context, req StartRequest) (Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.action, r.by, r.emerg = "start", req.By, false
	r.actor, r.claim = req.Who()
	return Status{State: "shadow"}, nil
}

func (r *recorder) Do(_ context.Context, a Action, req ActionRequest) (Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.action, r.by, r.emerg = a, req.By, req.Emergency
	r.actor, r.claim = req.Who()
	return Status{State: "progressing"}, nil
}
func (r *recorder) History(int) ([]rollout.Entry, error) { return nil, nil }
func (r *recorder) Gates() GateProgress                  { return GateProgress{} }

// The tokens of the people in these tests, and the shared admin.token.
var peopleTokens = map[string]string{
	"alice": "alice-token-0123456789",
	"bob":   "bob-token-0123456789",
	"carol": "carol-token-0123456789",
	"dave":  "dave-token-0123456789",
	"admin": "shared-admin-token-0123",
}

var people = []User{
	{Name: "alice", Role: Operator, TokenSHA256: HashToken(peopleTokens["alice"])},
	{Name: "bob", Role: Approver, TokenSHA256: HashToken(peopleTokens["bob"])},
	{Name: "carol", Role: Viewer, TokenSHA256: HashToken(peopleTokens["carol"])},
	{Name: "dave", Role: Admin, TokenSHA256: HashToken(peopleTokens["dave"])},
}

// Every /api/ route checks the role of the identity the credential
// proves, answering 403 with the identity, its role and the role needed;
// the actor passed on is the identity, the client's name kept as a claim.
func TestRoles(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Token: peopleTokens["admin"], Users: people,
		Status: func() Status { return Status{State: "idle"} }, Rollouts: rec}))
	defer srv.Close()
	for _, tc := range []struct {
		name, who, method, path, body string
		status                        int
		want                          string // in the answer
		actor, claim                  string // passed on, for a 200 action
	}{
		{"a viewer reads the status", "carol", "GET", "/api/v1/status", "", 200, `"idle"`, "", ""},
		{"a viewer reads the history", "carol", "GET", "/api/v1/rollout/history", "", 200, "[]", "", ""},
		{"a viewer cannot start", "carol", "POST", "/api/v1/rollout/start", `{"candidate":"c.conf","reason":"r"}`, 403, "carol (role viewer) may not POST /api/v1/rollout/start: it needs the operator role", "", ""},
		{"a viewer cannot roll back", "carol", "POST", "/api/v1/rollout/rollback", `{}`, 403, "carol (role viewer) may not POST /api/v1/rollout/rollback: it needs the operator role", "", ""},
		// Why: the body's actor is what the client claims, not who it is.
		{"an operator starts, as herself", "alice", "POST", "/api/v1/rollout/start", `{"candidate":"c.conf","reason":"r","actor":"mallory"}`, 200, `"shadow"`, "alice", "mallory"},
		{"an operator cannot override the gates", "alice", "POST", "/api/v1/rollout/start", `{"candidate":"c.conf","reason":"r","override_gates":"trust me"}`, 403, "alice (role operator) may not start a rollout with --override-gates: it needs the approver role", "", ""},
		{"an operator cannot promote", "alice", "POST", "/api/v1/rollout/promote", `{"reason":"r"}`, 403, "alice (role operator) may not promote: it needs the approver role", "", ""},
		{"an operator pauses", "alice", "POST", "/api/v1/rollout/pause", `{}`, 200, "progressing", "alice", ""},
		// Why: rollback is the emergency action, never held from an operator.
		{"an operator rolls back", "alice", "POST", "/api/v1/rollout/rollback", `{"actor":"alice"}`, 200, "progressing", "alice", ""},
		{"an operator undoes", "alice", "POST", "/api/v1/rollout/undo", `{"reason":"r"}`, 200, "progressing", "alice", ""},
		{"an approver promotes", "bob", "POST", "/api/v1/rollout/promote", `{"reason":"r","actor":"web"}`, 200, "progressing", "bob", "web"},
		{"an approver promotes in full", "bob", "POST", "/api/v1/rollout/promote", `{"reason":"r","full":true}`, 200, "progressing", "bob", ""},
		{"an approver overrides the gates", "bob", "POST", "/api/v1/rollout/start", `{"candidate":"c.conf","reason":"r","override_gates":"known FP"}`, 200, "shadow", "bob", ""},
		{"an emergency is an admin's", "bob", "POST", "/api/v1/rollout/promote", `{"reason":"r","emergency":true}`, 403, "bob (role approver) may not promote as an emergency: it needs the admin role", "", ""},
		{"an emergency needs a reason", "dave", "POST", "/api/v1/rollout/promote", `{"emergency":true}`, 400, "emergency: only a promote takes it, and with a reason", "", ""},
		{"an emergency is a promote's", "dave", "POST", "/api/v1/rollout/undo", `{"reason":"r","emergency":true}`, 400, "only a promote takes it", "", ""},
		{"an admin's emergency", "dave", "POST", "/api/v1/rollout/promote", `{"reason":"outage","emergency":true}`, 200, "progressing", "dave", ""},
		// Why: the shared token still works, as one admin identity.
		{"the shared token", "admin", "POST", "/api/v1/rollout/promote", `{"reason":"r","actor":"erin"}`, 200, "progressing", "admin", "erin"},
		{"a ticket with a line break", "alice", "POST", "/api/v1/rollout/rollback", `{"ticket":"CHG-1\nforged line"}`, 400, "ticket: want at most 200 bytes of printable text", "", ""},
		{"an unknown token", "nobody", "GET", "/api/v1/status", "", 401, "missing or wrong bearer token", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			token := peopleTokens[tc.who]
			if token == "" {
				token = "not-anyones-token-000"
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d %s, want %d with %q", resp.StatusCode, b, tc.status, tc.want)
			}
			if tc.actor == "" {
				return
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.actor != tc.actor || rec.claim != tc.claim || rec.by.Personal != (tc.who != "admin") {
				t.Errorf("passed on as %q claiming %q (%+v), want %q claiming %q", rec.actor, rec.claim, rec.by, tc.actor, tc.claim)
			}
		})
	}
}

// Without admin.users, admin.token's holder does everything, as before
// users existed: one admin identity, no four-eyes to bind it.
func TestSharedTokenAlone(t *testing.T) {
	rec := &recorder{}
	const token = "0123456789abcdef"
	srv := httptest.NewServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Token: token, Status: func() Status { return Status{} }, Rollouts: rec}))
	defer srv.Close()
	c := &Client{URL: srv.URL, Token: token}
	ctx := context.Background()
	if _, err := c.Start(ctx, StartRequest{Candidate: "c.conf", Reason: "r", Actor: "alice", OverrideGates: "known"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []Action{Promote, Pause, Rollback, Undo} {
		if _, err := c.Do(ctx, a, ActionRequest{Reason: "r", Actor: "alice", Full: a == Promote}); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	if rec.by != (Identity{Name: TokenIdentity, Role: Admin, Via: ViaSharedToken}) || rec.actor != "admin" || rec.claim != "alice" {
		t.Errorf("the shared token acted as %+v, actor %q claiming %q", rec.by, rec.actor, rec.claim)
	}
}

// A client certificate verified against admin.tls.client_ca_file is its
// subject's identity, with no token; a certificate of a subject no user
// has falls back to the bearer token.
func TestClientCertificateIdentity(t *testing.T) {
	ca, caKey := testCert(t, "wafcanary test CA", nil, nil, true)
	srvCert, srvKey := testCert(t, "127.0.0.1", ca, caKey, false)
	carolCert, carolKey := testCert(t, "carol", ca, caKey, false)
	otherCert, otherKey := testCert(t, "stranger", ca, caKey, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	rec := &recorder{}
	users := append([]User{{Name: "carol-ops", Role: Operator, ClientCertSubject: "CN=carol,O=wafcanary tests"}}, people...)
	srv := httptest.NewUnstartedServer(Handler(Options{Gatherer: prometheus.NewRegistry(), Users: users, Status: func() Status { return Status{} }, Rollouts: rec}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}}}
	srv.StartTLS()
	defer srv.Close()
	client := func(cert *x509.Certificate, key *ecdsa.PrivateKey, token string) *Client {
		return &Client{URL: srv.URL, Token: token, HTTP: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}}}}
	}
	if _, err := client(carolCert, carolKey, "").Do(context.Background(), Rollback, ActionRequest{Actor: "someone"}); err != nil {
		t.Fatalf("carol's certificate: %v", err)
	}
	if rec.actor != "carol-ops" || rec.by.Via != ViaCertificate || rec.claim != "someone" {
		t.Errorf("carol's certificate acted as %q (%+v) claiming %q", rec.actor, rec.by, rec.claim)
	}
	var e *Error
	if _, err := client(otherCert, otherKey, "").Status(context.Background()); !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Errorf("a certificate no user has, no token: %v, want 401", err)
	}
	if _, err := client(otherCert, otherKey, peopleTokens["bob"]).Do(context.Background(), Promote, ActionRequest{Reason: "r"}); err != nil || rec.actor != "bob" {
		t.Errorf("a certificate no user has, bob's token: %v, acted as %q", err, rec.actor)
	}
}

// testCert makes a certificate for cn signed by parent (self-signed for
// a CA when parent is nil), subject O=wafcanary tests.
func testCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"wafcanary tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if cn == "127.0.0.1" {
		tmpl.IPAddresses = append(tmpl.IPAddresses, []byte{127, 0, 0, 1})
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
