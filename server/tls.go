package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// tlsConfigs returns the TLS configurations of the public and the admin
// listener, or nils when TLSCert and TLSKey are unset (plain HTTP). Both
// listeners serve the same certificate; with AdminClientCA set, the admin
// listener also demands a client certificate signed by that CA (mutual
// TLS), on top of the address allowlist.
func (c Config) tlsConfigs() (public, admin *tls.Config, err error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		if c.AdminClientCA != "" {
			return nil, nil, errors.New("an admin client CA needs a server certificate and key too")
		}
		return nil, nil, nil
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		return nil, nil, errors.New("TLS needs both a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	public = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	admin = public.Clone()
	if c.AdminClientCA != "" {
		pool, err := LoadCertPool(c.AdminClientCA)
		if err != nil {
			return nil, nil, fmt.Errorf("admin client CA: %w", err)
		}
		admin.ClientCAs = pool
		admin.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return public, admin, nil
}

// LoadCertPool returns the pool of the PEM certificates in the file at
// path: the CAs a client trusts for a server (--ca-cert) or a listener for
// its clients (--admin-client-ca).
func LoadCertPool(path string) (*x509.CertPool, error) {
	pemCA, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// withTLS wraps l in TLS when cfg is not nil.
func withTLS(l net.Listener, cfg *tls.Config) net.Listener {
	if cfg == nil {
		return l
	}
	return tls.NewListener(l, cfg)
}

// CheckTLS loads the certificate, key and client CA that c names, if any,
// and reports the first problem, so that a command can refuse to start
// before it opens the store; Serve loads them again.
func (c Config) CheckTLS() error {
	_, _, err := c.tlsConfigs()
	return err
}
