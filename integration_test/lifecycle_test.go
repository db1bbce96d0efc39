package integration_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// A client connects and shuts down locally: the closing side gets no
// "initiated" event; the server sees the peer's code in ShutdownInitiatedByPeer.
func TestClientConnectsThenShutsDownLocally(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c := f.dial()
	connected := expectNext[*quicx.DatagramStateChanged](t, c.Events())
	if connected.SendEnabled {
		t.Errorf("datagrams enabled although the server did not advertise them: %v", connected)
	}
	ev := expectNext[*quicx.Connected](t, c.Events())
	if ev.NegotiatedALPN != "test" || ev.SessionResumed {
		t.Errorf("Connected = %v", ev)
	}
	s := f.serverConn()
	expectNext[*quicx.Connected](t, s.Events())

	must(t, c.Shutdown(quicx.ShutdownNone, 0x42))
	evs := drain(t, c.Events())
	expectTypes(t, evs, "ConnectionShutdownComplete")
	done := evs[0].(*quicx.ConnectionShutdownComplete)
	if !done.HandshakeCompleted || done.AppCloseInProgress || done.PeerAcknowledgedShutdown {
		t.Errorf("client %v", done)
	}
	must(t, c.Close())

	sevs := drain(t, s.Events())
	expectTypes(t, sevs, "ShutdownInitiatedByPeer", "ConnectionShutdownComplete")
	if code := sevs[0].(*quicx.ShutdownInitiatedByPeer).ErrorCode; code != 0x42 {
		t.Errorf("server saw code %#x, want 0x42", code)
	}
	must(t, s.Close())
	expectTypes(t, f.listenerEvents(), "NewConnection")
}

// The server accepts, then the peer (client) shuts down: the server's exact
// sequence, from the listener's NewConnection on.
func TestServerAcceptsThenPeerShutsDown(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c := f.dial()
	s := f.serverConn()
	expectNext[*quicx.Connected](t, s.Events())
	nc := f.listenerEvents()[0].(*quicx.NewConnection)
	// No SNI: TLS sends none for an IP address.
	if nc.Info.NegotiatedALPN != "test" || nc.Info.ServerName != "" || nc.Info.QUICVersion != 1 {
		t.Errorf("NewConnection info %+v", nc.Info)
	}
	if local, _ := c.LocalAddr(); nc.Info.RemoteAddress != local {
		t.Errorf("server saw remote %v, client is %v", nc.Info.RemoteAddress, local)
	}
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	must(t, c.Shutdown(quicx.ShutdownNone, 7))
	drain(t, c.Events())
	must(t, c.Close())

	evs := drain(t, s.Events())
	expectTypes(t, evs, "ShutdownInitiatedByPeer", "ConnectionShutdownComplete")
	if e := evs[0].(*quicx.ShutdownInitiatedByPeer); e.ErrorCode != 7 {
		t.Errorf("%v", e)
	}
	if e := evs[1].(*quicx.ConnectionShutdownComplete); !e.HandshakeCompleted || e.AppCloseInProgress {
		t.Errorf("%v", e)
	}
	must(t, s.Close())
}

// The server closes with an application code; the client sees it as
// ShutdownInitiatedByPeer, the server gets no initiated event.
func TestServerApplicationCloseCode(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c, s := connectPair(t, f)
	must(t, s.SetCloseReason("bye"))
	must(t, s.Shutdown(quicx.ShutdownNone, 0x3fffffffffffffff))
	expectTypes(t, drain(t, s.Events()), "ConnectionShutdownComplete")
	evs := drain(t, c.Events())
	expectTypes(t, evs, "ShutdownInitiatedByPeer", "ConnectionShutdownComplete")
	if code := evs[0].(*quicx.ShutdownInitiatedByPeer).ErrorCode; code != 0x3fffffffffffffff {
		t.Errorf("code %#x", code)
	}
	must(t, s.Close())
	must(t, c.Close())
}

func TestShutdownArgumentErrors(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c := f.dial()
	if err := c.Shutdown(quicx.ShutdownNone, 1<<62); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("code 2^62: %v", err)
	}
	s := f.serverConn()
	if err := s.Shutdown(quicx.ShutdownSilent, 0); !errors.Is(err, quicx.ErrNotSupported) {
		t.Errorf("silent server shutdown: %v", err)
	}
	// Nothing changed: the connections are still up.
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	expectNext[*quicx.Connected](t, s.Events())
	must(t, c.Close())
	expectTypes(t, drain(t, c.Events()), "ConnectionShutdownComplete")
	expectTypes(t, drain(t, s.Events()), "ShutdownInitiatedByPeer", "ConnectionShutdownComplete")
	must(t, s.Close())
	if err := c.Close(); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("second close: %v", err)
	}
	if _, err := c.OpenStream(quicx.StreamOpenNone); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("open stream on a closed connection: %v", err)
	}
}

// Close before shutdown aborts with code 0 and still delivers the final
// events, with AppCloseInProgress, on the connection and its streams.
func TestCloseBeforeShutdownDeliversFinalEvents(t *testing.T) {
	f := newFixture(t, with(4, 0))
	c := f.dial()
	expectNext[*quicx.StreamsAvailable](t, c.Events())
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	s := f.serverConn()
	expectNext[*quicx.Connected](t, s.Events())

	cs, err := c.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, cs.Send([][]byte{[]byte("data")}, quicx.SendStart, nil))
	expectNext[*quicx.StartComplete](t, cs.Events())
	expectNext[*quicx.SendComplete](t, cs.Events())
	ps := expectNext[*quicx.PeerStreamStarted](t, s.Events())
	r := expectNext[*quicx.Receive](t, ps.Stream.Events())
	r.Complete(r.TotalLength())

	// Close the stream, then the connection, neither shut down.
	must(t, cs.Close())
	evs := drain(t, cs.Events())
	expectTypes(t, evs, "SendShutdownComplete", "StreamShutdownComplete")
	if e := evs[1].(*quicx.StreamShutdownComplete); !e.AppCloseInProgress || e.ConnectionShutdown {
		t.Errorf("%v", e)
	}
	// RESET_STREAM and STOP_SENDING arrive together and reach quicx through
	// different goroutines: either may be reported first, but the send
	// direction's abort follows STOP_SENDING at once.
	pevs := drain(t, ps.Stream.Events())
	names := typeNames(pevs)
	want1 := []string{"PeerSendAborted", "PeerReceiveAborted", "SendShutdownComplete", "StreamShutdownComplete"}
	want2 := []string{"PeerReceiveAborted", "SendShutdownComplete", "PeerSendAborted", "StreamShutdownComplete"}
	if !slices.Equal(names, want1) && !slices.Equal(names, want2) {
		t.Fatalf("peer stream events:\n%s", timelineOf(pevs))
	}
	for _, ev := range pevs {
		switch e := ev.(type) {
		case *quicx.PeerSendAborted:
			if e.ErrorCode != 0 {
				t.Errorf("%v", e)
			}
		case *quicx.PeerReceiveAborted:
			if e.ErrorCode != 0 {
				t.Errorf("%v", e)
			}
		}
	}
	must(t, ps.Stream.Close())

	must(t, c.Close())
	cevs := drain(t, c.Events())
	expectTypes(t, cevs, "ConnectionShutdownComplete")
	if e := cevs[0].(*quicx.ConnectionShutdownComplete); !e.AppCloseInProgress || !e.HandshakeCompleted {
		t.Errorf("%v", e)
	}
	sevs := drain(t, s.Events())
	expectTypes(t, sevs, "ShutdownInitiatedByPeer", "ConnectionShutdownComplete")
	if code := sevs[0].(*quicx.ShutdownInitiatedByPeer).ErrorCode; code != 0 {
		t.Errorf("code %#x, want 0", code)
	}
	must(t, s.Close())
}

// Closing a connection with a stream still open ends the stream first
// (ConnectionShutdown set), then the connection.
func TestConnectionCloseEndsStreamsFirst(t *testing.T) {
	f := newFixture(t, with(1, 0))
	c := f.dial()
	cs, err := c.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, cs.Send([][]byte{[]byte("x")}, quicx.SendStart, "a"))
	s := f.serverConn()
	for _, want := range []string{"StreamsAvailable", "DatagramStateChanged", "Connected"} {
		ev := next(t, c.Events())
		if got := typeNames([]quicx.ConnectionEvent{ev})[0]; got != want {
			t.Fatalf("got %v want %s", ev, want)
		}
	}
	expectNext[*quicx.Connected](t, s.Events())
	ps := expectNext[*quicx.PeerStreamStarted](t, s.Events())
	r := expectNext[*quicx.Receive](t, ps.Stream.Events())
	if string(r.Buffers[0]) != "x" {
		t.Fatalf("server got %q", r.Buffers)
	}
	r.Complete(1)
	must(t, c.Close())
	evs := drain(t, cs.Events())
	expectTypes(t, evs, "StartComplete", "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
	last := evs[3].(*quicx.StreamShutdownComplete)
	if !last.ConnectionShutdown || !last.ConnectionShutdownByApp || last.ConnectionClosedRemotely || last.ConnectionErrorCode != 0 {
		t.Errorf("%v", last)
	}
	expectTypes(t, drain(t, c.Events()), "ConnectionShutdownComplete")

	// The server's stream ends with its connection, before the connection's final event.
	sevs := drain(t, s.Events())
	expectTypes(t, sevs, "ShutdownInitiatedByPeer", "ConnectionShutdownComplete")
	// Its send direction was still open: the connection's end completes it.
	pevs := drain(t, ps.Stream.Events())
	expectTypes(t, pevs, "SendShutdownComplete", "StreamShutdownComplete")
	end := pevs[1].(*quicx.StreamShutdownComplete)
	if !end.ConnectionShutdown || !end.ConnectionClosedRemotely || end.ConnectionShutdownByApp {
		t.Errorf("%v", end)
	}
	must(t, ps.Stream.Close())
	must(t, s.Close())
}

// Connecting to a port nobody listens on fails with UNREACHABLE (the kernel's
// ICMP report), without waiting for the handshake timeout.
func TestConnectToClosedPortIsUnreachable(t *testing.T) {
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "unreachable"})
	must(t, err)
	defer reg.Close()
	cfg, err := reg.OpenConfiguration([]string{"test"}, nil)
	must(t, err)
	defer cfg.Close()
	must(t, cfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}))
	// A port that was free a moment ago.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	must(t, pc.Close())

	c, err := reg.OpenConnection()
	must(t, err)
	start := time.Now()
	must(t, c.Start(cfg, quicx.AddressFamilyINET, "127.0.0.1", uint16(port)))
	evs := drain(t, c.Events())
	expectTypes(t, evs, "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
	if st := evs[0].(*quicx.ShutdownInitiatedByTransport); !errors.Is(st.Status, quicx.ErrUnreachable) {
		t.Errorf("status %v", st)
	}
	if e := evs[1].(*quicx.ConnectionShutdownComplete); e.HandshakeCompleted {
		t.Errorf("%v", e)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the handshake timeout, not the ICMP report", d)
	}
	must(t, c.Close())
}

// An idle connection times out on both sides with CONNECTION_IDLE.
func TestIdleTimeout(t *testing.T) {
	f := newFixture(t, quicx.Settings{IdleTimeout: 300 * time.Millisecond})
	c := f.dial()
	s := f.serverConn()
	for _, conn := range []*quicx.Connection{c, s} {
		evs := drain(t, conn.Events())
		n := len(evs)
		if n < 3 {
			t.Fatalf("events:\n%s", timelineOf(evs))
		}
		expectTypes(t, evs[n-2:], "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
		if st := evs[n-2].(*quicx.ShutdownInitiatedByTransport); !errors.Is(st.Status, quicx.ErrConnectionIdle) || st.ErrorCode != 1 {
			t.Errorf("%v", st)
		}
		must(t, conn.Close())
	}
}

// Registration.Close waits for every child to be closed.
func TestRegistrationCloseWaitsForChildren(t *testing.T) {
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "close"})
	must(t, err)
	cfg, err := reg.OpenConfiguration([]string{"test"}, nil)
	must(t, err)
	c, err := reg.OpenConnection()
	must(t, err)
	l, err := reg.OpenListener()
	must(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err = reg.CloseContext(ctx)
	cancel()
	if !errors.Is(err, quicx.ErrAborted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with open children: %v", err)
	}
	if _, err := reg.OpenConnection(); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("open after close began: %v", err)
	}

	closed := make(chan error, 1)
	go func() { closed <- reg.Close() }()
	must(t, cfg.Close())
	must(t, l.Close())
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v with a connection still open", err)
	default:
	}
	must(t, c.Close()) // never started: it completes at once
	expectTypes(t, drain(t, c.Events()), "ConnectionShutdownComplete")
	select {
	case err := <-closed:
		must(t, err)
	case <-time.After(eventTimeout):
		t.Fatal("Close did not return after the last child closed")
	}
	if got := len(drain(t, l.Events())); got != 0 {
		t.Errorf("never-started listener raised %d events", got)
	}
}

// Registration.Shutdown shuts down every connection and stops listeners.
func TestRegistrationShutdown(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c, s := connectPair(t, f)
	idle, err := f.reg.OpenConnection() // not started: left alone
	must(t, err)

	must(t, f.reg.Shutdown(quicx.ShutdownNone, 9))
	// Both ends belong to the registration: each either shuts down first (no
	// initiated event) or sees the other's close first.
	for _, conn := range []*quicx.Connection{c, s} {
		evs := drain(t, conn.Events())
		if len(evs) == 2 {
			if e, ok := evs[0].(*quicx.ShutdownInitiatedByPeer); !ok || e.ErrorCode != 9 {
				t.Errorf("events:\n%s", timelineOf(evs))
			}
			evs = evs[1:]
		}
		expectTypes(t, evs, "ConnectionShutdownComplete")
	}
	if _, err := f.reg.OpenConnection(); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("open after shutdown: %v", err)
	}
	// A connection started after the shutdown ends at once.
	must(t, idle.Start(f.clientCfg, quicx.AddressFamilyINET, "127.0.0.1", f.addr.Port()))
	expectTypes(t, drain(t, idle.Events()), "ConnectionShutdownComplete")
	for _, conn := range []*quicx.Connection{c, s, idle} {
		must(t, conn.Close())
	}
	deadline := time.After(eventTimeout)
	for {
		evs := f.listenerEvents()
		if len(evs) > 0 {
			if _, ok := evs[len(evs)-1].(*quicx.ListenerStopComplete); ok {
				break
			}
		}
		select {
		case <-deadline:
			t.Fatalf("listener not stopped: %v", evs)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Several listeners may share a UDP port with disjoint ALPN sets; an
// overlapping set is refused with ErrAlpnInUse.
func TestListenersShareAPortByALPN(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	ports := f.addr
	l2, err := f.reg.OpenListener()
	must(t, err)
	defer l2.Close()
	if err := l2.Start([]string{"other", "test"}, ports); !errors.Is(err, quicx.ErrAlpnInUse) {
		t.Fatalf("overlapping ALPN: %v", err)
	}
	must(t, l2.Start([]string{"other"}, ports))

	cfg, err := f.reg.OpenConfiguration([]string{"other"}, nil)
	must(t, err)
	defer cfg.Close()
	must(t, cfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}))
	c, err := f.reg.OpenConnection()
	must(t, err)
	must(t, c.Start(cfg, quicx.AddressFamilyINET, "127.0.0.1", ports.Port()))
	nc := expectNext[*quicx.NewConnection](t, l2.Events())
	if nc.Info.NegotiatedALPN != "other" {
		t.Errorf("%+v", nc.Info)
	}
	nc.Reject(errors.New("no"))
	evs := drain(t, c.Events())
	expectTypes(t, evs, "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
	st := evs[0].(*quicx.ShutdownInitiatedByTransport)
	if alert, ok := quicx.StatusOf(st.Status).TLSAlert(); !ok || alert != 80 {
		t.Errorf("rejected connection: %v", st)
	}
	if got := len(drain(t, nc.Connection.Events())); got != 0 {
		t.Errorf("a rejected connection raised %d events", got)
	}
	must(t, c.Close())
	if len(f.listenerEvents()) != 0 {
		t.Errorf("the first listener saw %v", f.listenerEvents())
	}

	// No listener for the client's ALPN: ALPN_NEG_FAILURE.
	none, err := f.reg.OpenConfiguration([]string{"nobody"}, nil)
	must(t, err)
	defer none.Close()
	must(t, none.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}))
	c2, err := f.reg.OpenConnection()
	must(t, err)
	must(t, c2.Start(none, quicx.AddressFamilyINET, "127.0.0.1", ports.Port()))
	evs = drain(t, c2.Events())
	expectTypes(t, evs, "ShutdownInitiatedByTransport", "ConnectionShutdownComplete")
	if st := evs[0].(*quicx.ShutdownInitiatedByTransport); !errors.Is(st.Status, quicx.ErrAlpnNegFailure) {
		t.Errorf("%v", st)
	}
	must(t, c2.Close())
	must(t, l2.Stop())
	expectTypes(t, drain(t, l2.Events()), "ListenerStopComplete")
}

func TestListenerAddressInUse(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	defer pc.Close()
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{})
	must(t, err)
	defer reg.Close()
	l, err := reg.OpenListener()
	must(t, err)
	defer l.Close()
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	if err := l.Start([]string{"x"}, addr); !errors.Is(err, quicx.ErrAddressInUse) {
		t.Fatalf("%v", err)
	}
	if err := l.Start(nil, addr); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Fatalf("no ALPN: %v", err)
	}
}
