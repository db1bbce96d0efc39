package quicxtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"math/big"
	"net"
	"time"
)

// Validity of the certificates NewCertificate makes: wide enough for real time
// and for testing/synctest's clock, which starts at midnight UTC on 2000-01-01.
var (
	certNotBefore = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
)

// NewCertificate makes a self-signed Ed25519 certificate for hosts (DNS
// names or IP addresses; "localhost" when none are given), derived from seed:
// the same seed and hosts always give the same certificate, byte for byte, so
// handshakes have the same size in every run. It is its own CA, valid from
// 1999 to 2099.
func NewCertificate(seed uint64, hosts ...string) (*tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost"}
	}
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seed)
	keySeed := sha256.Sum256(append([]byte("quicxtest certificate key "), s[:]...))
	key := ed25519.NewKeyFromSeed(keySeed[:])
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetUint64(seed | 1<<62),
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"quicxtest"}},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
