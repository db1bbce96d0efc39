package integration_test

import (
	"errors"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// A client stores the ticket of its first connection and resumes with it:
// the server's app data comes back in Resumed, before Connected.
func TestResumption(t *testing.T) {
	// The server puts app data into the ticket before accepting: the handshake,
	// which issues the ticket, cannot complete before.
	ticketErrs := make(chan error, 2)
	f := newFixture(t, quicx.Settings{ServerResumptionLevel: quicx.ServerResumeOnly}, withBeforeAccept(func(nc *quicx.NewConnection) {
		ticketErrs <- nc.Connection.SendResumptionTicket(quicx.SendResumptionNone, []byte("user=42"))
	}))
	first := f.dial()
	s1 := f.serverConn()
	must(t, <-ticketErrs)
	expectNext[*quicx.DatagramStateChanged](t, first.Events())
	c1 := expectNext[*quicx.Connected](t, first.Events())
	if c1.SessionResumed {
		t.Fatalf("%v", c1)
	}
	ticket := expectNext[*quicx.ResumptionTicketReceived](t, first.Events())
	expectNext[*quicx.Connected](t, s1.Events())
	if err := s1.SendResumptionTicket(quicx.SendResumptionNone, nil); !errors.Is(err, quicx.ErrNotSupported) {
		t.Errorf("second ticket: %v", err)
	}
	closePair(t, first, s1)

	second, err := f.reg.OpenConnection()
	must(t, err)
	if err := second.SetResumptionTicket([]byte("not a ticket")); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("bad ticket: %v", err)
	}
	must(t, second.SetResumptionTicket(ticket.ResumptionTicket))
	must(t, second.Start(f.clientCfg, quicx.AddressFamilyINET, "127.0.0.1", f.addr.Port()))
	s2 := f.serverConn()
	must(t, <-ticketErrs)
	expectNext[*quicx.DatagramStateChanged](t, second.Events())
	if c := expectNext[*quicx.Connected](t, second.Events()); !c.SessionResumed {
		t.Errorf("%v", c)
	}
	r := expectNext[*quicx.Resumed](t, s2.Events())
	if string(r.ResumptionState) != "user=42" {
		t.Errorf("resumed state %q", r.ResumptionState)
	}
	if c := expectNext[*quicx.Connected](t, s2.Events()); !c.SessionResumed {
		t.Errorf("%v", c)
	}
	expectNext[*quicx.ResumptionTicketReceived](t, second.Events())
	closePair(t, second, s2)
}

// Without resumption (MsQuic's default) the server sends no ticket.
func TestNoResumptionByDefault(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	c := f.dial()
	s := f.serverConn()
	if err := s.SendResumptionTicket(quicx.SendResumptionNone, nil); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("%v", err)
	}
	if err := c.SendResumptionTicket(quicx.SendResumptionNone, nil); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("client: %v", err)
	}
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	expectNext[*quicx.Connected](t, c.Events())
	expectNext[*quicx.Connected](t, s.Events())
	must(t, c.Shutdown(quicx.ShutdownNone, 0))
	expectTypes(t, drain(t, c.Events()), "ConnectionShutdownComplete")
	drain(t, s.Events())
	must(t, c.Close())
	must(t, s.Close())
}

// zeroRTTTicket connects once to f and returns the ticket the client stored.
func zeroRTTTicket(t *testing.T, f *fixture) []byte {
	t.Helper()
	c, s := connectPair(t, f)
	ticket := waitFor[*quicx.ResumptionTicketReceived](t, c.Events())
	closePair(t, c, s)
	return ticket.ResumptionTicket
}

// zeroRTTExchange opens a resumed client connection to port with a
// unidirectional stream that sends msg with FIN in 0-RTT — queued before the
// connection starts — and checks both ends: the client's stream completes
// gracefully and the server reads msg byte-exact on stream 2.
func zeroRTTExchange(t *testing.T, f *fixture, accepted chan *quicx.Connection, ticket []byte, port uint16, msg string) {
	t.Helper()
	c, err := f.reg.OpenConnection()
	must(t, err)
	must(t, c.SetResumptionTicket(ticket))
	s, err := c.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	must(t, s.Send([][]byte{[]byte(msg)}, quicx.SendStart|quicx.SendFin|quicx.SendAllow0RTT, 1))
	must(t, c.Start(f.clientCfg, quicx.AddressFamilyINET, "127.0.0.1", port))
	var server *quicx.Connection
	select {
	case server = <-accepted:
	case <-time.After(eventTimeout):
		t.Fatal("no connection accepted")
	}

	evs := drain(t, s.Events())
	expectTypes(t, evs, "StartComplete", "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
	if sc := evs[0].(*quicx.StartComplete); sc.Status != nil || sc.ID != 2 {
		t.Errorf("%v", sc)
	}
	if e := evs[1].(*quicx.SendComplete); e.Canceled || e.Context != 1 {
		t.Errorf("%v", e)
	}
	if e := evs[2].(*quicx.SendShutdownComplete); !e.Graceful {
		t.Errorf("%v", e)
	}
	expectNext[*quicx.DatagramStateChanged](t, c.Events())
	if e := expectNext[*quicx.Connected](t, c.Events()); !e.SessionResumed {
		t.Errorf("client %v", e)
	}
	expectNext[*quicx.Resumed](t, server.Events())
	if e := expectNext[*quicx.Connected](t, server.Events()); !e.SessionResumed {
		t.Errorf("server %v", e)
	}
	ps := waitFor[*quicx.PeerStreamStarted](t, server.Events())
	if id, err := ps.Stream.ID(); err != nil || id != 2 {
		t.Errorf("server stream ID %d, %v", id, err)
	}
	sevs, data := drainStream(t, ps.Stream)
	// The FIN comes with the data or in an empty Receive of its own, depending
	// on whether quic-go's Read returned them together (docs/events.md).
	if len(sevs) == 4 {
		expectTypes(t, sevs, "Receive", "Receive", "PeerSendShutdown", "StreamShutdownComplete")
	} else {
		expectTypes(t, sevs, "Receive", "PeerSendShutdown", "StreamShutdownComplete")
	}
	if r := sevs[len(sevs)-3].(*quicx.Receive); r.Flags&quicx.ReceiveFin == 0 {
		t.Errorf("last Receive without FIN: %v", r)
	}
	if string(data) != msg {
		t.Errorf("server got %q, want %q", data, msg)
	}
	must(t, s.Close())
	must(t, ps.Stream.Close())
	closePair(t, c, server)
}

// Data sent with SendAllow0RTT before the connection starts goes out in 0-RTT
// on a resumed connection. When the server rejects 0-RTT, quicx sends it again
// on the same stream ID, as MsQuic does: the app sees the same events.
func TestZeroRTT(t *testing.T) {
	settings := quicx.Settings{ServerResumptionLevel: quicx.ServerResumeAndZeroRTT, PeerUnidiStreamCount: 4}
	f := newFixture(t, settings)

	t.Run("accepted", func(t *testing.T) {
		ticket := zeroRTTTicket(t, f)
		zeroRTTExchange(t, f, f.accepted, ticket, f.addr.Port(), "early hello")
	})

	t.Run("rejected", func(t *testing.T) {
		// A second server shares the ticket keys but does not allow 0-RTT: it
		// resumes the session and drops the early data.
		var key [32]byte
		key[0] = 7
		must(t, f.serverCfg.SetTicketKeys([][32]byte{key}))
		ticket := zeroRTTTicket(t, f)
		g := newFixture(t, quicx.Settings{ServerResumptionLevel: quicx.ServerResumeOnly, PeerUnidiStreamCount: 4})
		must(t, g.serverCfg.SetTicketKeys([][32]byte{key}))
		zeroRTTExchange(t, f, g.accepted, ticket, g.addr.Port(), "early hello, sent twice")
	})
}
