package quicx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errCertificateRejected is the error crypto/tls turns into a bad_certificate
// alert when the app rejects the peer's certificate.
var errCertificateRejected = errors.New("quicx: certificate rejected by the application")

// installCertificateHook arranges for PeerCertificateReceived when the
// credential asks for it (CredentialIndicateCertificateReceived). With
// CredentialDeferCertificateValidation, crypto/tls's own validation is turned
// off and quicx validates itself, reporting a failure in DeferredStatus
// instead of failing the handshake.
func (c *Connection) installCertificateHook(conf *tls.Config, cred *loadedCredential, timeout time.Duration) {
	if cred.flags&CredentialIndicateCertificateReceived == 0 {
		return
	}
	validate := cred.flags&CredentialNoCertificateValidation == 0
	deferred := validate && cred.flags&CredentialDeferCertificateValidation != 0
	roots, clientRoots := conf.RootCAs, conf.ClientCAs
	if deferred {
		if cred.client {
			conf.InsecureSkipVerify = true
		} else if conf.ClientAuth == tls.RequireAndVerifyClientCert {
			conf.ClientAuth = tls.RequireAnyClientCert
		}
	}
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil // a client that sent no certificate, where none is required
		}
		var status error
		if deferred {
			opts := x509.VerifyOptions{Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			if cred.client {
				opts.Roots, opts.DNSName = roots, cs.ServerName
			} else {
				opts.Roots, opts.KeyUsages = clientRoots, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				status = &Error{Op: "certificate validation", Status: certificateStatus(err), Err: err}
			}
		}
		return c.awaitCertificateDecision(cs.PeerCertificates, status, timeout)
	}
}

// certificateStatus maps an x509 validation error onto MsQuic's statuses.
func certificateStatus(err error) Status {
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return ErrCertExpired
	case errors.As(err, &unknown):
		return ErrCertUntrustedRoot
	}
	return ErrBadCertificate
}

// awaitCertificateDecision raises PeerCertificateReceived and waits for the
// app's answer. It runs inside crypto/tls with the connection frozen, so the
// wait is bounded by the handshake idle timeout and ends at once when the
// connection is shut down locally. No answer means rejection.
func (c *Connection) awaitCertificateDecision(chain []*x509.Certificate, status error, timeout time.Duration) error {
	answer := make(chan bool, 1)
	var once sync.Once
	ev := &PeerCertificateReceived{
		Certificate:    chain[0],
		Chain:          chain,
		DeferredStatus: status,
		answer:         func(accept bool) { once.Do(func() { answer <- accept }) },
	}
	c.mu.Lock()
	if c.final || c.localShut {
		c.mu.Unlock()
		return errCertificateRejected
	}
	abort := c.abortWaits()
	c.tlsWaits++
	c.q.Push(ev)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.tlsWaits--
		c.mu.Unlock()
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ok := <-answer:
		select {
		case <-abort: // a shutdown wins over an answer that raced it
			return errShutdownInHandshake
		default:
		}
		if ok {
			return nil
		}
	case <-timer.C:
		c.log.Debug("PeerCertificateReceived not answered in time: rejected")
	case <-abort:
		return errShutdownInHandshake
	}
	return errCertificateRejected
}

// errShutdownInHandshake ends a TLS callback's wait when the app shuts the
// connection down: crypto/tls and quic-go turn the alert it carries,
// user_canceled (90), into CONNECTION_CLOSE with CRYPTO_ERROR 0x15a, which
// MsQuic's peers report as USER_CANCELED.
var errShutdownInHandshake = fmt.Errorf("quicx: connection shut down by the application: %w", tls.AlertError(90))

// abortWaits returns the channel closed when the app shuts the connection down
// locally, which ends any wait inside a TLS callback. Call with c.mu held.
func (c *Connection) abortWaits() <-chan struct{} {
	if c.abort == nil {
		c.abort = make(chan struct{})
	}
	return c.abort
}
