package integration_test

import (
	"testing"
	"time"

	"quicx.dev/quicx"
)

// A client shut down while the server app is still deciding on its
// NewConnection: the client's final event comes at once, and the server
// connection, once accepted, learns of the close from the client's Initial
// CONNECTION_CLOSE (APPLICATION_ERROR), not from a handshake timeout.
func TestClientShutdownWhileServerDecides(t *testing.T) {
	seen, gone := make(chan struct{}), make(chan struct{})
	f := newFixture(t, quicx.Settings{}, withBeforeAccept(func(*quicx.NewConnection) {
		close(seen)
		<-gone
	}))
	c := f.dial()
	select {
	case <-seen:
	case <-time.After(eventTimeout):
		t.Fatal("no NewConnection")
	}
	must(t, c.Shutdown(quicx.ShutdownNone, 0x42))
	evs := drain(t, c.Events())
	expectTypes(t, evs, "ConnectionShutdownComplete")
	if got := *evs[0].(*quicx.ConnectionShutdownComplete); got != (quicx.ConnectionShutdownComplete{}) {
		t.Errorf("client: %v", &got)
	}
	must(t, c.Close())
	close(gone)

	s := f.serverConn()
	sevs := drain(t, s.Events())
	expectTypes(t, sevs, "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
	if got := *sevs[0].(*quicx.ShutdownInitiatedByTransport); got != (quicx.ShutdownInitiatedByTransport{Status: quicx.ErrUserCanceled, ErrorCode: 0xc}) {
		t.Errorf("server: %v", &got)
	}
	if got := *sevs[1].(*quicx.ConnectionShutdownComplete); got != (quicx.ConnectionShutdownComplete{}) {
		t.Errorf("server: %v", &got)
	}
	must(t, s.Close())
}

// A client shut down while it waits for its app's verdict on the server's
// certificate (PeerCertificateReceived): the wait ends with alert
// user_canceled, which quic-go sends as CONNECTION_CLOSE with CRYPTO_ERROR
// 0x15a. The server reports USER_CANCELED, as MsQuic maps that code.
func TestClientShutdownWhileCertificateDecisionPending(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	cfg, err := f.reg.OpenConfiguration([]string{"test"}, nil)
	must(t, err)
	defer cfg.Close()
	must(t, cfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation | quicx.CredentialIndicateCertificateReceived}))
	c, err := f.reg.OpenConnection()
	must(t, err)
	must(t, c.Start(cfg, quicx.AddressFamilyINET, "127.0.0.1", f.addr.Port()))
	pc := expectNext[*quicx.PeerCertificateReceived](t, c.Events())
	must(t, c.Shutdown(quicx.ShutdownNone, 7))
	pc.Complete(true) // too late: harmless
	evs := drain(t, c.Events())
	expectTypes(t, evs, "ConnectionShutdownComplete")
	if got := *evs[0].(*quicx.ConnectionShutdownComplete); got != (quicx.ConnectionShutdownComplete{}) {
		t.Errorf("client: %v", &got)
	}
	must(t, c.Close())

	s := f.serverConn()
	sevs := drain(t, s.Events())
	expectTypes(t, sevs, "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
	if got := *sevs[0].(*quicx.ShutdownInitiatedByTransport); got != (quicx.ShutdownInitiatedByTransport{Status: quicx.ErrUserCanceled, ErrorCode: 0x15a}) {
		t.Errorf("server: %v", &got)
	}
	must(t, s.Close())
}
