// Package fleet lets several wafcanary replicas serve one rollout: the
// rollout state, journal, ruleset bundles and routing secret live in etcd,
// one replica at a time leads (etcd's election, with every decision fenced
// on it), every replica follows the state within a second, and the
// evidence is read from Prometheus, summed over the replicas.
package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config is the etcd part of the state section.
type Config struct {
	Endpoints []string `mapstructure:"endpoints"`
	// Prefix keeps one fleet's keys apart from another's in one etcd.
	Prefix      string        `mapstructure:"prefix"`
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// RequestTimeout bounds every read and write of the state.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// LeaseTTL is how long a dead or cut-off leader keeps leadership
	// before another replica takes over.
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
	Username string        `mapstructure:"username"`
	Password string        `mapstructure:"password"`
	TLS      TLSConfig     `mapstructure:"tls"`
}

// TLSConfig names PEM files; all empty means plain HTTP to etcd.
type TLSConfig struct {
	CAFile   string `mapstructure:"ca_file"`
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// DefaultConfig is the etcd section's default.
var DefaultConfig = Config{
	Endpoints:      []string{"http://127.0.0.1:2379"},
	Prefix:         "/wafcanary/",
	DialTimeout:    5 * time.Second,
	RequestTimeout: 2 * time.Second,
	LeaseTTL:       5 * time.Second,
}

// Validate names the first bad key.
func (c Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("endpoints: at least one etcd endpoint is required")
	}
	for _, e := range c.Endpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			return fmt.Errorf("endpoints: want http:// or https:// URLs, got %q", e)
		}
	}
	switch {
	case !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("prefix: want a key prefix starting and ending with /, got %q", c.Prefix)
	case c.DialTimeout <= 0:
		return fmt.Errorf("dial_timeout: must be positive, got %s", c.DialTimeout)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("request_timeout: must be positive, got %s", c.RequestTimeout)
	case c.LeaseTTL < time.Second:
		return fmt.Errorf("lease_ttl: at least 1s (etcd leases count whole seconds), got %s", c.LeaseTTL)
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return errors.New("tls.cert_file: cert_file and key_file go together")
	case c.Username == "" && c.Password != "":
		return errors.New("username: a password without a username")
	}
	return nil
}

// Client connects to etcd as c says. It does not wait for the cluster:
// a replica must start and serve even while etcd is down.
func (c Config) Client() (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.DialTimeout,
		Username:    c.Username,
		Password:    c.Password,
		// Keepalives notice a dead connection quickly, so the watch
		// moves to another endpoint.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		// The client logs every retry at warning level; the replica
		// reports the store's health itself.
		Logger: zap.NewNop(),
	}
	if c.TLS != (TLSConfig{}) {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLS.CAFile != "" {
			pem, err := os.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tls.ca_file: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls.ca_file: no certificate in %s", c.TLS.CAFile)
			}
		}
		if c.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls.cert_file: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		cc.TLS = t
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	return cli, nil
}
