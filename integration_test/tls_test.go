package integration_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// clientWith starts a client with its own configuration, built from cred and
// settings, against the fixture's server.
func (f *fixture) clientWith(cred quicx.Credential, settings *quicx.Settings) *quicx.Connection {
	f.t.Helper()
	cfg, err := f.reg.OpenConfiguration([]string{"test"}, settings)
	must(f.t, err)
	f.t.Cleanup(func() { _ = cfg.Close() })
	must(f.t, cfg.LoadCredential(&cred))
	c, err := f.reg.OpenConnection()
	must(f.t, err)
	must(f.t, c.Start(cfg, quicx.AddressFamilyINET, "localhost", f.addr.Port()))
	return c
}

// With deferred validation the client sees the untrusted self-signed
// certificate in PeerCertificateReceived, before Connected, and accepts it.
func TestPeerCertificateDeferredAccept(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c := f.clientWith(quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialIndicateCertificateReceived | quicx.CredentialDeferCertificateValidation}, nil)
	ev := expectNext[*quicx.PeerCertificateReceived](t, c.Events())
	if !errors.Is(ev.DeferredStatus, quicx.ErrCertUntrustedRoot) {
		t.Errorf("deferred status %v", ev.DeferredStatus)
	}
	if ev.Certificate == nil || len(ev.Chain) != 1 || ev.Certificate.Subject.CommonName != "localhost" {
		t.Errorf("%v", ev)
	}
	ev.Complete(true)
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	s := f.serverConn()
	expectNext[*quicx.Connected](t, s.Events())
	closePair(t, c, s)
}

// Rejecting the certificate fails the handshake with BAD_CERTIFICATE on both
// sides.
func TestPeerCertificateReject(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c := f.clientWith(quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation | quicx.CredentialIndicateCertificateReceived}, nil)
	ev := expectNext[*quicx.PeerCertificateReceived](t, c.Events())
	if ev.DeferredStatus != nil {
		t.Errorf("no validation asked, got status %v", ev.DeferredStatus)
	}
	ev.Complete(false)
	evs := drain(t, c.Events())
	expectTypes(t, evs, "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
	if st := evs[0].(*quicx.ShutdownInitiatedByTransport); !errors.Is(st.Status, quicx.ErrBadCertificate) || st.ErrorCode != 0x12a {
		t.Errorf("%v", st)
	}
	s := f.serverConn()
	sevs := drain(t, s.Events())
	expectTypes(t, sevs, "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
	if st := sevs[0].(*quicx.ShutdownInitiatedByTransport); !errors.Is(st.Status, quicx.ErrBadCertificate) {
		t.Errorf("server %v", st)
	}
	must(t, c.Close())
	must(t, s.Close())
}

// A server demanding client certificates, validating them itself.
func TestClientCertificateOnServer(t *testing.T) {
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{})
	must(t, err)
	defer reg.Close()
	serverCert, err := quicx.SelfSignedCertificate()
	must(t, err)
	clientCert, err := quicx.SelfSignedCertificate("client")
	must(t, err)
	scfg, err := reg.OpenConfiguration([]string{"mtls"}, nil)
	must(t, err)
	defer scfg.Close()
	must(t, scfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: serverCert,
		Flags: quicx.CredentialRequireClientAuthentication | quicx.CredentialIndicateCertificateReceived | quicx.CredentialDeferCertificateValidation}))
	ccfg, err := reg.OpenConfiguration([]string{"mtls"}, nil)
	must(t, err)
	defer ccfg.Close()
	must(t, ccfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: clientCert,
		Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}))
	l, err := reg.OpenListener()
	must(t, err)
	defer l.Close()
	must(t, l.Start([]string{"mtls"}, netip.MustParseAddrPort("127.0.0.1:0")))
	addr, _ := l.Addr()
	c, err := reg.OpenConnection()
	must(t, err)
	must(t, c.Start(ccfg, quicx.AddressFamilyINET, "127.0.0.1", addr.Port()))
	nc := expectNext[*quicx.NewConnection](t, l.Events())
	must(t, nc.Accept(scfg))
	s := nc.Connection
	ev := expectNext[*quicx.PeerCertificateReceived](t, s.Events())
	if ev.Certificate.Subject.CommonName != "client" || !errors.Is(ev.DeferredStatus, quicx.ErrCertUntrustedRoot) {
		t.Errorf("%v", ev)
	}
	ev.Complete(true)
	expectNext[*quicx.Connected](t, s.Events())
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	closePair(t, c, s)
	must(t, l.Stop())
	drain(t, l.Events())
}

// A client that offers only QUIC v2 gets it.
func TestQUICv2(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c := f.clientWith(quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}, &quicx.Settings{Versions: []uint32{0x6b3343cf}})
	s := f.serverConn()
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	expectNext[*quicx.Connected](t, s.Events())
	for _, conn := range []*quicx.Connection{c, s} {
		if v, err := conn.QUICVersion(); err != nil || v != 0x6b3343cf {
			t.Errorf("version %#x, %v", v, err)
		}
	}
	closePair(t, c, s)
	if _, err := f.reg.OpenConfiguration([]string{"x"}, &quicx.Settings{Versions: []uint32{0xff00001d}}); !errors.Is(err, quicx.ErrNotSupported) {
		t.Errorf("draft version: %v", err)
	}
}

// Every connection proves its address with a Retry; qlog files are written.
func TestRetryAndQlog(t *testing.T) {
	dir := t.TempDir()
	retries := make(chan netip.AddrPort, 4)
	f := newFixture(t, quicx.Settings{}, withRegistration(quicx.RegistrationConfig{
		QlogDir:        dir,
		StatelessRetry: func(a netip.AddrPort) bool { retries <- a; return true },
	}))
	c := f.dial()
	s := f.serverConn()
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	expectNext[*quicx.Connected](t, s.Events())
	select {
	case a := <-retries:
		if local, _ := c.LocalAddr(); a != local {
			t.Errorf("retry asked for %v, client is %v", a, local)
		}
	default:
		t.Error("the retry policy was not consulted")
	}
	closePair(t, c, s)
	files, _ := filepath.Glob(filepath.Join(dir, "*.sqlog"))
	roles := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		if len(b) == 0 {
			t.Errorf("%s is empty", f)
		}
		roles[filepath.Base(f)[len(filepath.Base(f))-len("client.sqlog"):]] = true
	}
	if len(files) != 2 {
		t.Errorf("qlog files %v", files)
	}
}

// A client migrates to a new local port: LocalAddressChanged on the client,
// PeerAddressChanged on a server subscribed to it, and data still flows.
func TestClientMigration(t *testing.T) {
	settings := quicx.Settings{PeerUnidiStreamCount: 1, TransportEvents: quicx.TrackPeerAddress}
	f := newFixture(t, settings)
	c := f.dial()
	s := f.serverConn()
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	expectNext[*quicx.Connected](t, s.Events())
	before, _ := c.LocalAddr()
	must(t, c.SetLocalAddr(netip.MustParseAddrPort("127.0.0.1:0")))
	lc := expectNext[*quicx.LocalAddressChanged](t, c.Events())
	if lc.Address.Port() == before.Port() || lc.Address.Addr() != before.Addr() {
		t.Fatalf("moved from %v to %v", before, lc.Address)
	}
	if now, _ := c.LocalAddr(); now != lc.Address {
		t.Errorf("LocalAddr %v after %v", now, lc)
	}
	// The server notices once packets arrive from the new address.
	st, err := c.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	must(t, st.Send([][]byte{[]byte("after migration")}, quicx.SendStart|quicx.SendFin, nil))
	deadline := time.After(eventTimeout)
	var peerMoved *quicx.PeerAddressChanged
	var ps *quicx.PeerStreamStarted
	for peerMoved == nil || ps == nil {
		select {
		case ev := <-s.Events():
			switch e := ev.(type) {
			case *quicx.PeerAddressChanged:
				peerMoved = e
			case *quicx.PeerStreamStarted:
				ps = e
			}
		case <-deadline:
			t.Fatalf("server saw moved=%v stream=%v", peerMoved, ps)
		}
	}
	if peerMoved.Address != lc.Address {
		t.Errorf("server saw %v, client is %v", peerMoved.Address, lc.Address)
	}
	if _, data := drainStream(t, ps.Stream); string(data) != "after migration" {
		t.Errorf("got %q", data)
	}
	must(t, ps.Stream.Close())
	drain(t, st.Events())
	must(t, st.Close())
	closePair(t, c, s)
}
