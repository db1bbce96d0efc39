package quicx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"time"

	"quicx.dev/quicx/internal/selfca"
)

// SelfSignedCertificate makes a fresh ECDSA P-256 certificate for hosts (DNS
// names or IP addresses; "localhost", 127.0.0.1 and ::1 when none are given),
// valid for a day. It is its own CA, for tests, samples and clients that set
// CredentialNoCertificateValidation or trust it through CAFile.
func SelfSignedCertificate(hosts ...string) (*tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return selfca.Make(selfca.Template{
		Key:          key,
		Serial:       serial,
		Organization: "quicx self-signed",
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}, hosts)
}

// WriteSelfSignedFiles writes a SelfSignedCertificate for hosts as PEM files,
// for CredentialCertificateFile (and, the certificate being its own CA, for
// CAFile).
func WriteSelfSignedFiles(certFile, keyFile string, hosts ...string) error {
	cert, err := SelfSignedCertificate(hosts...)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyFile, keyPEM, 0o600)
}
