package integration_test

import (
	"errors"
	"testing"

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
