package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"quicx.dev/quicx"
)

// Stopping a listener refuses the connections whose NewConnection is still
// unanswered, exactly as Reject does: each client sees crypto/tls's
// internal_error alert, TLS_ALERT(80) with wire code 0x150 (quic-go cannot
// send MsQuic's CONNECTION_REFUSED from the TLS callback where quicx waits).
// quic-go's own listener close would refuse them with CONNECTION_REFUSED
// instead; quicx closes it only once those refusals are out, so the code does
// not depend on scheduling. ListenerStopComplete follows the refusals.
//
// One accepted connection keeps the server's socket open meanwhile: a stop
// that leaves the socket without users closes it right after the refusals,
// and a client retransmission crossing that may make the client report the
// ICMP error (UNREACHABLE) before it reads the close (docs/limitations.md).
func TestListenerStopRefusesPendingConnections(t *testing.T) {
	for _, close := range []bool{false, true} {
		t.Run(fmt.Sprintf("close=%v", close), func(t *testing.T) {
			reg, serverCfg, clientCfg, l, addr := newBareListener(t)
			keeper, err := reg.OpenConnection()
			must(t, err)
			must(t, keeper.Start(clientCfg, quicx.AddressFamilyINET, "127.0.0.1", addr.Port()))
			kept := expectNext[*quicx.NewConnection](t, l.Events())
			must(t, kept.Accept(serverCfg))
			waitFor[*quicx.Connected](t, keeper.Events())
			waitFor[*quicx.Connected](t, kept.Connection.Events())

			const n = 8
			clients, pending := startPending(t, reg, clientCfg, l, addr, n)
			if close {
				must(t, l.Close())
			} else {
				must(t, l.Stop())
			}
			evs := drain(t, l.Events())
			expectTypes(t, evs, "ListenerStopComplete")
			if got := *evs[0].(*quicx.ListenerStopComplete); got.AppCloseInProgress != close {
				t.Errorf("%v", &got)
			}
			for i, c := range clients {
				evs := drain(t, c.Events())
				expectTypes(t, evs, "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
				if got := *evs[0].(*quicx.ShutdownInitiatedByTransport); got != (quicx.ShutdownInitiatedByTransport{Status: quicx.TLSAlertStatus(80), ErrorCode: 0x150}) {
					t.Errorf("client %d: %v", i, &got)
				}
				if got := *evs[1].(*quicx.ConnectionShutdownComplete); got != (quicx.ConnectionShutdownComplete{}) {
					t.Errorf("client %d: %v", i, &got)
				}
				must(t, c.Close())
			}
			for _, nc := range pending {
				if got := len(drain(t, nc.Connection.Events())); got != 0 {
					t.Errorf("a refused connection raised %d events", got)
				}
			}
			if st := l.Stats(); st.TotalRejectedConnections != n || st.TotalAcceptedConnections != 1 {
				t.Errorf("listener stats %+v", st)
			}
			must(t, keeper.Shutdown(quicx.ShutdownNone, 0))
			expectTypes(t, drain(t, keeper.Events()), "ConnectionShutdownComplete")
			expectTypes(t, drain(t, kept.Connection.Events()), "ShutdownInitiatedByPeer", "ConnectionShutdownComplete")
			must(t, keeper.Close())
			must(t, kept.Connection.Close())
		})
	}
}

// A connection accepted just before its listener stops lives on, as in MsQuic:
// quicx lets quic-go hand it over before closing quic-go's listener, which
// would otherwise refuse the handshakes it still holds.
func TestListenerStopKeepsAcceptedConnections(t *testing.T) {
	reg, serverCfg, clientCfg, l, addr := newBareListener(t)

	const n = 8
	clients, pending := startPending(t, reg, clientCfg, l, addr, n)
	for _, nc := range pending {
		must(t, nc.Accept(serverCfg))
	}
	must(t, l.Stop()) // while the accepted handshakes may still be inside quic-go's listener
	expectTypes(t, drain(t, l.Events()), "ListenerStopComplete")
	servers := map[netip.AddrPort]*quicx.Connection{}
	for _, nc := range pending {
		servers[nc.Info.RemoteAddress] = nc.Connection
	}
	for i, c := range clients {
		if ev := waitFor[*quicx.Connected](t, c.Events()); ev == nil {
			t.Fatalf("client %d", i)
		}
		local, err := c.LocalAddr()
		must(t, err)
		s := servers[local]
		if s == nil {
			t.Fatalf("client %d (%v): no server connection", i, local)
		}
		waitFor[*quicx.Connected](t, s.Events())
		must(t, c.Shutdown(quicx.ShutdownNone, 9))
		expectTypes(t, drain(t, c.Events()), "ConnectionShutdownComplete")
		sevs := drain(t, s.Events())
		expectTypes(t, sevs, "ShutdownInitiatedByPeer", "ConnectionShutdownComplete")
		if got := sevs[0].(*quicx.ShutdownInitiatedByPeer).ErrorCode; got != 9 {
			t.Errorf("server %d: code %d", i, got)
		}
		must(t, c.Close())
		must(t, s.Close())
	}
}

// newBareListener opens a registration with a started listener that answers
// nothing by itself, on loopback. Everything it opened, and every connection
// of the registration, is closed at cleanup.
func newBareListener(t *testing.T) (*quicx.Registration, *quicx.Configuration, *quicx.Configuration, *quicx.Listener, netip.AddrPort) {
	t.Helper()
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: t.Name()})
	must(t, err)
	cert, err := quicx.SelfSignedCertificate()
	must(t, err)
	serverCfg, err := reg.OpenConfiguration([]string{"test"}, nil)
	must(t, err)
	must(t, serverCfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert}))
	clientCfg, err := reg.OpenConfiguration([]string{"test"}, nil)
	must(t, err)
	must(t, clientCfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}))
	l, err := reg.OpenListener()
	must(t, err)
	must(t, l.Start([]string{"test"}, netip.MustParseAddrPort("127.0.0.1:0")))
	addr, err := l.Addr()
	must(t, err)
	t.Cleanup(func() {
		_ = l.Close()
		_ = serverCfg.Close()
		_ = clientCfg.Close()
		reg.Shutdown(quicx.ShutdownNone, 0) // ends what a failed test left open
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		defer cancel()
		if err := reg.CloseContext(ctx); err != nil {
			t.Errorf("registration close: %v", err)
		}
	})
	return reg, serverCfg, clientCfg, l, addr
}

// startPending starts n client connections to the listener at addr and
// returns them with the listener's NewConnection events, all unanswered.
func startPending(t *testing.T, reg *quicx.Registration, clientCfg *quicx.Configuration, l *quicx.Listener, addr netip.AddrPort, n int) ([]*quicx.Connection, []*quicx.NewConnection) {
	t.Helper()
	clients := make([]*quicx.Connection, n)
	for i := range clients {
		var err error
		clients[i], err = reg.OpenConnection()
		must(t, err)
		must(t, clients[i].Start(clientCfg, quicx.AddressFamilyINET, "127.0.0.1", addr.Port()))
	}
	var pending []*quicx.NewConnection
	for range n {
		pending = append(pending, expectNext[*quicx.NewConnection](t, l.Events()))
	}
	return clients, pending
}
