package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Role is what an identity may do through /api/. Each role may do what
// the ones before it may: viewer, operator, approver, admin.
type Role string

// Roles.
const (
	// Viewer reads: status, history, explain, blocks, exceptions,
	// rulesets (the metrics and the page need no credential at all).
	Viewer Role = "viewer"
	// Operator starts, pauses, resumes, rolls back, undoes, and pins
	// blocks. Rollback is never held from an operator: it is the
	// emergency action.
	Operator Role = "operator"
	// Approver promotes (past an approval step, one step, or --full) and
	// starts a candidate despite its gates or base (--override-gates,
	// --force-base).
	Approver Role = "approver"
	// Admin does everything, including a promotion past four-eyes
	// (promote --emergency with a reason).
	Admin Role = "admin"
)

// Roles lists the roles, each allowed what the ones before it are.
var Roles = []Role{Viewer, Operator, Approver, Admin}

// Allows reports whether r may do what need requires.
func (r Role) Allows(need Role) bool {
	return slices.Index(Roles, r) >= slices.Index(Roles, need) && slices.Contains(Roles, r)
}

// User is one entry of admin.users: a person (or a script) and its role,
// known by the SHA-256 of its bearer token (the configuration holds no
// secret; `wafcanary token new` prints both) or, when
// admin.tls.client_ca_file is set, by the subject of its client
// certificate.
type User struct {
	Name string `mapstructure:"name"`
	Role Role   `mapstructure:"role"`
	// TokenSHA256 is the hex SHA-256 of the user's bearer token.
	TokenSHA256 string `mapstructure:"token_sha256"`
	// ClientCertSubject is the subject of the user's client certificate
	// as Go and RFC 2253 print it, most specific first: "CN=alice,O=Example".
	ClientCertSubject string `mapstructure:"client_cert_subject"`
}

// TokenIdentity is the name admin.token's holder acts under: one admin
// identity, shared by whoever holds the token.
const TokenIdentity = "admin"

// userName is what a user may be called: a name a journal line, a
// command line and a notification show as it is.
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validateUsers checks admin.users against the rest of the section.
func (c Config) validateUsers() error {
	names := map[string]bool{}
	hashes := map[string]bool{}
	subjects := map[string]bool{}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		switch {
		case !userName.MatchString(u.Name):
			return fmt.Errorf("%s.name: want letters, digits, '.', '_', '@' or '-' (at most 64), got %q", key, u.Name)
		case names[u.Name]:
			return fmt.Errorf("%s.name: %q is given twice", key, u.Name)
		case u.Name == TokenIdentity && c.Token != "":
			return fmt.Errorf("%s.name: %q is admin.token's identity while token is set; name the person", key, u.Name)
		case !slices.Contains(Roles, u.Role):
			return fmt.Errorf("%s.role: want viewer, operator, approver or admin, got %q", key, u.Role)
		case (u.TokenSHA256 == "") == (u.ClientCertSubject == ""):
			return fmt.Errorf("%s: give token_sha256 or client_cert_subject (one of them) for %s", key, u.Name)
		case u.TokenSHA256 != "" && !sha256Hex.MatchString(u.TokenSHA256):
			return fmt.Errorf("%s.token_sha256: want 64 lower-case hex digits (`wafcanary token new %s` prints them), got %q", key, u.Name, u.TokenSHA256)
		case hashes[u.TokenSHA256]:
			return fmt.Errorf("%s.token_sha256: the same token as another user's; each person has their own", key)
		case u.ClientCertSubject != "" && c.TLS.ClientCAFile == "":
			return fmt.Errorf("%s.client_cert_subject: needs tls.client_ca_file, the CA that signs the certificates", key)
		case subjects[u.ClientCertSubject]:
			return fmt.Errorf("%s.client_cert_subject: %q is another user's", key, u.ClientCertSubject)
		}
		names[u.Name] = true
		if u.TokenSHA256 != "" {
			hashes[u.TokenSHA256] = true
		}
		if u.ClientCertSubject != "" {
			subjects[u.ClientCertSubject] = true
		}
	}
	return nil
}

// HashToken is the token_sha256 of token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh random bearer token: 32 bytes, hex.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Identity is who a request to /api/ comes from, as its credential
// proves it.
type Identity struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Personal is set for an identity of admin.users, a person's own; not
	// for admin.token's, which whoever holds the token shares.
	Personal bool `json:"personal,omitempty"`
	// Via says how the identity was proven: "token" (admin.users),
	// "admin.token", or "client certificate".
	Via string `json:"via"`
}

// Credential ways, Identity.Via.
const (
	ViaToken       = "token"
	ViaSharedToken = "admin.token"
	ViaCertificate = "client certificate"
)

type identityKey struct{}

// IdentityOf returns the identity the admin API found for the request
// whose context ctx is; false outside /api/.
func IdentityOf(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// authenticator finds a request's identity: by its verified client
// certificate's subject, then by its bearer token (admin.users' hashes,
// then admin.token). Safe for concurrent use.
type authenticator struct {
	token    []byte // "Bearer " + admin.token; nil when none
	users    []User
	subjects map[string]User
}

func newAuthenticator(token string, users []User) *authenticator {
	a := &authenticator{users: users, subjects: map[string]User{}}
	if token != "" {
		a.token = []byte("Bearer " + token)
	}
	for _, u := range users {
		if u.ClientCertSubject != "" {
			a.subjects[u.ClientCertSubject] = u
		}
	}
	return a
}

// identify returns r's identity, false when it has none.
func (a *authenticator) identify(r *http.Request) (Identity, bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		// Verified against admin.tls.client_ca_file by the handshake.
		if u, ok := a.subjects[r.TLS.PeerCertificates[0].Subject.String()]; ok {
			return Identity{Name: u.Name, Role: u.Role, Personal: true, Via: ViaCertificate}, true
		}
	}
	auth := strings.TrimSpace(r.Header.Get("Authorization"))
	bearer, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || bearer == "" {
		return Identity{}, false
	}
	// Every hash is compared, in constant time, whichever matches.
	sum := sha256.Sum256([]byte(bearer))
	got := []byte(hex.EncodeToString(sum[:]))
	found := -1
	for i, u := range a.users {
		if u.TokenSHA256 != "" && subtle.ConstantTimeCompare(got, []byte(u.TokenSHA256)) == 1 {
			found = i
		}
	}
	if found >= 0 {
		u := a.users[found]
		return Identity{Name: u.Name, Role: u.Role, Personal: true, Via: ViaToken}, true
	}
	if a.token != nil && subtle.ConstantTimeCompare([]byte(auth), a.token) == 1 {
		return Identity{Name: TokenIdentity, Role: Admin, Via: ViaSharedToken}, true
	}
	return Identity{}, false
}

// requireIdentity lets through to next only a same-origin request with a
// credential, its identity on the request's context. Each route checks
// the role it needs (role, allowed); beneath them, whatever a route
// forgets, a request that is not a read needs an operator at least, so a
// viewer never acts.
func requireIdentity(a *authenticator, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused: the admin API acts only on requests from its own page or a client without an Origin")
			return
		}
		id, ok := a.identify(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wafcanary"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !allowed(w, r, Operator, r.Method+" "+r.URL.Path) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowed answers 403 and returns false unless the request's identity
// has role need; what names the action for the answer.
func allowed(w http.ResponseWriter, r *http.Request, need Role, what string) bool {
	id, _ := IdentityOf(r.Context())
	if id.Role.Allows(need) {
		return true
	}
	writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("%s (role %s) may not %s: it needs the %s role (admin.users)", id.Name, id.Role, what, need), "kind": KindForbidden})
	return false
}

// role wraps h so that only an identity with role need reaches it.
func role(need Role, what string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if allowed(w, r, need, what) {
			h(w, r)
		}
	}
}

// KindForbidden is the kind of a 403 answer: an identity whose role does
// not allow the action, or an approval four-eyes refuses.
const KindForbidden = "forbidden"
