// Package selfca makes self-signed certificates that are their own CA, for
// quicx.SelfSignedCertificate and quicxtest.NewCertificate, which differ only
// in their key, serial number, validity and organization.
package selfca

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"
)

// Template says what differs between the certificates Make builds.
type Template struct {
	Key          crypto.Signer
	Serial       *big.Int
	Organization string
	NotBefore    time.Time
	NotAfter     time.Time
}

// Make builds a certificate for hosts (DNS names or IP addresses; the first
// is the common name), signed by its own key, usable by servers and clients.
// With an Ed25519 key the result depends only on t and hosts.
func Make(t Template, hosts []string) (*tls.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          t.Serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{t.Organization}},
		NotBefore:             t.NotBefore,
		NotAfter:              t.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	// Ed25519 signatures are deterministic: rand is not read for them.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, t.Key.Public(), t.Key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: t.Key, Leaf: leaf}, nil
}
