// Package certificate serves TLS from certificate and key files that can
// be swapped while the listener runs: SIGHUP loads them again, and new
// handshakes use the new pair while established connections carry on.
// A pair that does not load is refused, naming the file, and the one in
// service keeps serving.
package certificate

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Config names the files. Empty means no TLS.
type Config struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ClientCAFile, when set, requires every client to present a
	// certificate signed by one of these CAs (the admin listener's
	// optional client-certificate authentication).
	ClientCAFile string `mapstructure:"client_ca_file"`
}

// Enabled reports whether the section asks for TLS.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// Validate reports the first invalid key, named relative to the section.
func (c Config) Validate() error {
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("cert_file and key_file: give both, or neither for plain HTTP")
	case c.ClientCAFile != "" && !c.Enabled():
		return errors.New("client_ca_file: needs cert_file and key_file (client certificates are checked over TLS)")
	}
	return nil
}

// pair is what one Load read.
type pair struct {
	cert     *tls.Certificate
	clientCA *x509.CertPool
}

// Source serves the last pair that loaded. Safe for concurrent use.
type Source struct {
	cfg  Config
	cur  atomic.Pointer[pair]
	info atomic.Pointer[Info]
}

// Info describes the certificate in service, for logs.
type Info struct {
	Subject  string
	Serial   string
	NotAfter time.Time
}

// New loads cfg's files; an error names the file at fault.
func New(cfg Config) (*Source, error) {
	s := &Source{cfg: cfg}
	if _, err := s.Load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads the files again. On error the pair in service is kept.
func (s *Source) Load() (Info, error) {
	cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return Info{}, fmt.Errorf("tls: %s and %s: %w", s.cfg.CertFile, s.cfg.KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return Info{}, fmt.Errorf("tls: %s: %w", s.cfg.CertFile, err)
	}
	cert.Leaf = leaf
	p := &pair{cert: &cert}
	if s.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(s.cfg.ClientCAFile)
		if err != nil {
			return Info{}, fmt.Errorf("tls: client_ca_file: %w", err)
		}
		p.clientCA = x509.NewCertPool()
		if !p.clientCA.AppendCertsFromPEM(pem) {
			return Info{}, fmt.Errorf("tls: client_ca_file %s: no PEM certificate in it", s.cfg.ClientCAFile)
		}
	}
	info := Info{Subject: leaf.Subject.String(), Serial: leaf.SerialNumber.Text(16), NotAfter: leaf.NotAfter}
	s.cur.Store(p)
	s.info.Store(&info)
	return info, nil
}

// TLSConfig is the listener's configuration: TLS 1.2 at least, HTTP/2
// and HTTP/1.1 offered, the pair read at each handshake.
func (s *Source) TLSConfig() *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
	}
	if s.cfg.ClientCAFile != "" {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		// The pool is read per handshake too, so a CA swap takes effect
		// on SIGHUP like the pair.
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cc := c.Clone()
			cc.GetConfigForClient = nil
			cc.ClientCAs = s.cur.Load().clientCA
			return cc, nil
		}
	}
	return c
}
