package quicx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"software.sslmate.com/src/go-pkcs12"
)

// CredentialType is QUIC_CREDENTIAL_TYPE: where the certificate comes from.
type CredentialType uint8

// Credential types, with MsQuic's values.
const (
	CredentialNone                     CredentialType = 0 // QUIC_CREDENTIAL_TYPE_NONE: no certificate (a client)
	CredentialCertificateHash          CredentialType = 1 // Windows certificate store: ErrNotSupported
	CredentialCertificateHashStore     CredentialType = 2 // Windows certificate store: ErrNotSupported
	CredentialCertificateContext       CredentialType = 3 // an in-memory certificate: Credential.Certificate
	CredentialCertificateFile          CredentialType = 4 // PEM files: CertFile and KeyFile
	CredentialCertificateFileProtected CredentialType = 5 // an encrypted key file: ErrNotSupported (Go cannot decrypt PKCS#8)
	CredentialCertificatePKCS12        CredentialType = 6 // PKCS#12 bytes: PKCS12 and PKCS12Password
)

func (t CredentialType) String() string {
	names := [...]string{"NONE", "CERTIFICATE_HASH", "CERTIFICATE_HASH_STORE", "CERTIFICATE_CONTEXT", "CERTIFICATE_FILE", "CERTIFICATE_FILE_PROTECTED", "CERTIFICATE_PKCS12"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("CredentialType(%d)", uint8(t))
}

// CredentialFlags is QUIC_CREDENTIAL_FLAGS.
type CredentialFlags uint32

// Credential flags, with MsQuic's values. Flags quic-go and crypto/tls cannot
// honour are refused with ErrNotSupported by LoadCredential.
const (
	CredentialFlagNone                           CredentialFlags = 0
	CredentialClient                             CredentialFlags = 0x1      // QUIC_CREDENTIAL_FLAG_CLIENT
	CredentialLoadAsynchronous                   CredentialFlags = 0x2      // refused: loading is synchronous
	CredentialNoCertificateValidation            CredentialFlags = 0x4      // do not validate the peer's certificate
	CredentialEnableOCSP                         CredentialFlags = 0x8      // refused
	CredentialIndicateCertificateReceived        CredentialFlags = 0x10     // raise PeerCertificateReceived
	CredentialDeferCertificateValidation         CredentialFlags = 0x20     // report validation errors in PeerCertificateReceived instead of failing
	CredentialRequireClientAuthentication        CredentialFlags = 0x40     // server: demand a client certificate
	CredentialUseTLSBuiltinCertificateValidation CredentialFlags = 0x80     // accepted: crypto/tls always validates
	CredentialSetAllowedCipherSuites             CredentialFlags = 0x2000   // refused: Go fixes the TLS 1.3 suites
	CredentialUsePortableCertificates            CredentialFlags = 0x4000   // accepted: certificates are always *x509.Certificate
	CredentialSetCACertificateFile               CredentialFlags = 0x100000 // trust Credential.CAFile
)

var credentialFlagNames = []string{
	0: "CLIENT", 1: "LOAD_ASYNCHRONOUS", 2: "NO_CERTIFICATE_VALIDATION", 3: "ENABLE_OCSP",
	4: "INDICATE_CERTIFICATE_RECEIVED", 5: "DEFER_CERTIFICATE_VALIDATION", 6: "REQUIRE_CLIENT_AUTHENTICATION",
	7: "USE_TLS_BUILTIN_CERTIFICATE_VALIDATION", 13: "SET_ALLOWED_CIPHER_SUITES", 14: "USE_PORTABLE_CERTIFICATES",
	20: "SET_CA_CERTIFICATE_FILE",
}

func (f CredentialFlags) String() string { return flagNames(uint32(f), "NONE", credentialFlagNames) }

const supportedCredentialFlags = CredentialClient | CredentialNoCertificateValidation |
	CredentialIndicateCertificateReceived | CredentialDeferCertificateValidation |
	CredentialRequireClientAuthentication | CredentialUseTLSBuiltinCertificateValidation |
	CredentialUsePortableCertificates | CredentialSetCACertificateFile

// Credential is QUIC_CREDENTIAL_CONFIG.
type Credential struct {
	Type  CredentialType
	Flags CredentialFlags

	CertFile string // CredentialCertificateFile: PEM certificate chain
	KeyFile  string // CredentialCertificateFile: PEM private key

	Certificate *tls.Certificate // CredentialCertificateContext

	PKCS12         []byte // CredentialCertificatePKCS12
	PKCS12Password string

	CAFile string // with CredentialSetCACertificateFile: PEM roots to trust for the peer
}

// loadedCredential is a credential turned into a TLS template.
type loadedCredential struct {
	client bool
	flags  CredentialFlags
	tls    *tls.Config
}

// with returns a copy of the credential whose TLS template was changed by f.
// Connections take their own copy of the template when they start, without
// the configuration's lock, so the template itself is never modified.
func (lc *loadedCredential) with(f func(*tls.Config)) *loadedCredential {
	cp := *lc
	cp.tls = lc.tls.Clone()
	f(cp.tls)
	return &cp
}

func (c *Credential) load(op string) (*loadedCredential, error) {
	if c == nil {
		return nil, newErr(op, ErrInvalidParameter, "nil credential")
	}
	if c.Flags&^supportedCredentialFlags != 0 {
		return nil, newErr(op, ErrNotSupported, "credential flags %s", c.Flags&^supportedCredentialFlags)
	}
	client := c.Flags&CredentialClient != 0
	if !client && c.Type == CredentialNone {
		return nil, newErr(op, ErrInvalidParameter, "a server credential needs a certificate")
	}
	if client && c.Flags&CredentialRequireClientAuthentication != 0 {
		return nil, newErr(op, ErrInvalidParameter, "REQUIRE_CLIENT_AUTHENTICATION is a server flag")
	}
	if c.Flags&CredentialDeferCertificateValidation != 0 && c.Flags&CredentialIndicateCertificateReceived == 0 {
		return nil, newErr(op, ErrInvalidParameter, "DEFER_CERTIFICATE_VALIDATION needs INDICATE_CERTIFICATE_RECEIVED")
	}
	if (c.CAFile != "") != (c.Flags&CredentialSetCACertificateFile != 0) {
		return nil, newErr(op, ErrInvalidParameter, "CAFile and SET_CA_CERTIFICATE_FILE go together")
	}

	conf := &tls.Config{MinVersion: tls.VersionTLS13}
	var cert *tls.Certificate
	switch c.Type {
	case CredentialNone:
	case CredentialCertificateFile:
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, newErr(op, ErrInvalidParameter, "CertFile and KeyFile are required")
		}
		kp, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, wrapErr(op, fileStatus(err), err, "loading certificate files")
		}
		cert = &kp
	case CredentialCertificateContext:
		if c.Certificate == nil || len(c.Certificate.Certificate) == 0 || c.Certificate.PrivateKey == nil {
			return nil, newErr(op, ErrInvalidParameter, "Certificate must hold a chain and a private key")
		}
		cp := *c.Certificate
		cert = &cp
	case CredentialCertificatePKCS12:
		if len(c.PKCS12) == 0 {
			return nil, newErr(op, ErrInvalidParameter, "PKCS12 is empty")
		}
		key, leaf, chain, err := pkcs12.DecodeChain(c.PKCS12, c.PKCS12Password)
		if err != nil {
			return nil, wrapErr(op, ErrTLSError, err, "decoding PKCS#12")
		}
		kp := tls.Certificate{PrivateKey: key, Leaf: leaf, Certificate: [][]byte{leaf.Raw}}
		for _, ca := range chain {
			kp.Certificate = append(kp.Certificate, ca.Raw)
		}
		cert = &kp
	case CredentialCertificateHash, CredentialCertificateHashStore:
		return nil, newErr(op, ErrNotSupported, "%s needs the Windows certificate store", c.Type)
	case CredentialCertificateFileProtected:
		return nil, newErr(op, ErrNotSupported, "Go's standard library cannot decrypt an encrypted private key; use PKCS#12")
	default:
		return nil, newErr(op, ErrInvalidParameter, "unknown credential type %d", c.Type)
	}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}

	var roots *x509.CertPool
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, wrapErr(op, fileStatus(err), err, "reading CAFile")
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, newErr(op, ErrInvalidParameter, "CAFile holds no PEM certificate")
		}
	}
	noValidation := c.Flags&CredentialNoCertificateValidation != 0
	if client {
		conf.RootCAs = roots
		conf.InsecureSkipVerify = noValidation
	} else if c.Flags&CredentialRequireClientAuthentication != 0 {
		conf.ClientCAs = roots
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		if noValidation {
			conf.ClientAuth = tls.RequireAnyClientCert
		}
	}
	return &loadedCredential{client: client, flags: c.Flags, tls: conf}, nil
}

func fileStatus(err error) Status {
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotFound
	}
	return ErrInvalidParameter
}
