package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wafcanary/wafcanary/admin"
	"github.com/wafcanary/wafcanary/node"
)

// clientOptions are the flags every command that talks to a running
// wafcanary shares.
type clientOptions struct {
	admin     string
	tokenFile string
	config    string
	// caFile verifies an https:// admin listener; certFile and keyFile
	// are the client certificate one that requires them asks for.
	caFile, certFile, keyFile string
	output                    string
	// timeout bounds the whole call; 0 means 30 seconds.
	timeout time.Duration
	flags   *pflag.FlagSet
}

// defaultAdmin is admin.listen's default, as a URL.
const defaultAdmin = "http://127.0.0.1:9090"

func addClientFlags(cmd *cobra.Command, o *clientOptions) {
	f := cmd.Flags()
	o.flags = f
	f.StringVar(&o.admin, "admin", defaultAdmin, "admin URL of the running wafcanary (default: WAFCANARY_ADMIN, else admin.listen of --config, else this)")
	f.StringVar(&o.tokenFile, "token-file", "state/admin.token", "file holding the admin token, used when WAFCANARY_ADMIN_TOKEN is unset (default with --config: admin.token, else state_dir/admin.token)")
	f.StringVarP(&o.config, "config", "c", "", "the server's configuration file: the admin address and token come from it")
	f.DurationVar(&o.timeout, "timeout", o.timeout, "give up on an unresponsive server after this long (default 30s; start waits for the gates)")
	f.StringVar(&o.caFile, "ca-file", "", "CA certificates (PEM) that sign an https:// admin listener's certificate")
	f.StringVar(&o.certFile, "cert-file", "", "client certificate (PEM) for an admin listener with admin.tls.client_ca_file")
	f.StringVar(&o.keyFile, "key-file", "", "the client certificate's key (PEM)")
}

// Errors mapped to exit codes.
type (
	errConflict     struct{ error }
	errUnauthorized struct{ error }
	errUnreachable  struct{ error }
)

func (e errConflict) Unwrap() error     { return e.error }
func (e errUnauthorized) Unwrap() error { return e.error }
func (e errUnreachable) Unwrap() error  { return e.error }

// target says where the admin API is and where its token comes from: a
// flag given wins, then the environment, then the server's configuration
// file, then the defaults.
type target struct {
	url, token, tokenFrom string
}

func (o *clientOptions) target() (target, error) {
	var cfg *node.Config
	if o.config != "" {
		c, err := loadConfig(o.config, nil)
		if err != nil {
			return target{}, errUsage{err}
		}
		cfg = &c
	}
	changed := func(name string) bool { return o.flags != nil && o.flags.Changed(name) }
	var t target
	switch {
	case changed("admin"):
		t.url = o.admin
	case os.Getenv("WAFCANARY_ADMIN") != "":
		t.url = os.Getenv("WAFCANARY_ADMIN")
	case cfg != nil:
		t.url = adminURL(cfg.Admin.Listen)
		if cfg.Admin.TLS.Enabled() {
			t.url = "https" + strings.TrimPrefix(t.url, "http")
		}
	default:
		t.url = o.admin
	}
	u, err := normalURL(t.url)
	if err != nil {
		return target{}, errUsage{err}
	}
	t.url = u
	file := o.tokenFile
	switch {
	case os.Getenv("WAFCANARY_ADMIN_TOKEN") != "":
		t.token, t.tokenFrom = os.Getenv("WAFCANARY_ADMIN_TOKEN"), "WAFCANARY_ADMIN_TOKEN"
		return t, nil
	case changed("token-file"):
	case cfg != nil && cfg.Admin.Token != "":
		t.token, t.tokenFrom = cfg.Admin.Token, "admin.token in "+o.config
		return t, nil
	case cfg != nil:
		file = filepath.Join(cfg.StateDir, "admin.token")
	}
	b, err := os.ReadFile(file)
	if err != nil && o.certFile != "" {
		// The client certificate may be the identity (admin.users'
		// client_cert_subject): no token then.
		return t, nil
	}
	if err != nil {
		return target{}, errUnauthorized{fmt.Errorf("no admin token: set WAFCANARY_ADMIN_TOKEN, or give --token-file or -c with the server's configuration (the server keeps a generated token in state_dir/admin.token): %w", err)}
	}
	t.token, t.tokenFrom = strings.TrimSpace(string(b)), file
	return t, nil
}

// adminURL turns admin.listen into the URL a client on this machine
// reaches it at: an unspecified address is reached on loopback.
func adminURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// normalURL accepts host:port as http://host:port and refuses anything
// that is not an http(s) URL, saying what was wanted.
func normalURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--admin %q: want the admin listener's URL, such as http://127.0.0.1:9090", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// client is the admin API client these options describe.
func (o *clientOptions) client() (*admin.Client, error) {
	// Before anything is asked: an action must not be carried out and
	// then fail on how to print its answer.
	if o.output != "" && o.output != "text" && o.output != "json" {
		return nil, errUsage{fmt.Errorf("--output: want text or json, got %q", o.output)}
	}
	t, err := o.target()
	if err != nil {
		return nil, err
	}
	timeout := o.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	c := &admin.Client{URL: t.url, Token: t.token, TokenFrom: t.tokenFrom, Timeout: timeout}
	if o.caFile != "" || o.certFile != "" || o.keyFile != "" {
		tc, err := o.tlsConfig()
		if err != nil {
			return nil, errUsage{err}
		}
		c.HTTP = &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	}
	return c, nil
}

// tlsConfig trusts --ca-file (with the system's roots) and presents
// --cert-file, for an https:// admin listener.
func (o *clientOptions) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", o.caFile)
		}
		tc.RootCAs = pool
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("--cert-file and --key-file go together")
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file, --key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// exitError maps what the admin client returned to the error kinds that
// pick the exit code.
func exitError(err error) error {
	var e *admin.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrUnreachable), errors.Is(err, admin.ErrNotWafcanary):
		return errUnreachable{err}
	case !errors.As(err, &e):
		return errUsage{err}
	}
	if e.Kind == admin.KindInvalidRuleset {
		return errInvalidRuleset{err}
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return errUnauthorized{err}
	case http.StatusConflict:
		return errConflict{err}
	case http.StatusUnprocessableEntity:
		return errRefused{err}
	case http.StatusBadRequest, http.StatusNotFound:
		return errUsage{err}
	}
	return err
}

// do runs one call with the client these options describe.
func do[T any](o *clientOptions, call func(*admin.Client) (T, error)) (T, error) {
	c, err := o.client()
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := call(c)
	return v, exitError(err)
}

func actor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "cli"
}
