package integration_test

import (
	"errors"
	"fmt"
	"testing"

	"quicx.dev/quicx"
)

func TestDatagrams(t *testing.T) {
	settings := quicx.Settings{DatagramReceiveEnabled: true, TransportEvents: quicx.TrackDatagrams}
	f := newFixture(t, settings)
	client, err := f.reg.OpenConnection()
	must(t, err)
	// Queued before the connection starts: sent once it is up.
	must(t, client.SendDatagram([][]byte{[]byte("early")}, quicx.SendNone, "early"))
	must(t, client.Start(f.clientCfg, quicx.AddressFamilyINET, "127.0.0.1", f.addr.Port()))
	server := f.serverConn()
	ds := expectNext[*quicx.DatagramStateChanged](t, client.Events())
	if !ds.SendEnabled || ds.MaxSendLength < 1000 || ds.MaxSendLength > 1500 {
		t.Fatalf("%v", ds)
	}
	expectNext[*quicx.Connected](t, client.Events())
	expectNext[*quicx.Connected](t, server.Events())

	if err := client.SendDatagram(nil, quicx.SendNone, nil); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("no buffers: %v", err)
	}
	big := make([]byte, int(ds.MaxSendLength)+1)
	if err := client.SendDatagram([][]byte{big}, quicx.SendNone, nil); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("above MaxSendLength: %v", err)
	}
	if err := client.SendDatagram([][]byte{[]byte("x")}, quicx.SendFin, nil); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("stream flag on a datagram: %v", err)
	}

	const n = 20
	for i := range n {
		must(t, client.SendDatagram([][]byte{[]byte("quack "), []byte(fmt.Sprint(i))}, quicx.SendNone, i))
	}
	// Every datagram: SENT then ACKNOWLEDGED (loopback does not lose them).
	states := map[any][]quicx.DatagramSendState{}
	final := 0
	for final < n+1 {
		// (A path MTU increase may raise another DatagramStateChanged meanwhile.)
		ev := waitFor[*quicx.DatagramSendStateChanged](t, client.Events())
		states[ev.Context] = append(states[ev.Context], ev.State)
		if ev.State.IsFinal() {
			final++
		}
	}
	for ctx, seq := range states {
		if len(seq) != 2 || seq[0] != quicx.DatagramSendSent || seq[1] != quicx.DatagramSendAcknowledged {
			t.Errorf("datagram %v: %v", ctx, seq)
		}
	}
	got := map[string]bool{}
	for len(got) < n+1 {
		ev := waitFor[*quicx.DatagramReceived](t, server.Events())
		got[string(ev.Buffer)] = true
	}
	for i := range n {
		if !got[fmt.Sprintf("quack %d", i)] {
			t.Errorf("datagram %d not received", i)
		}
	}
	if !got["early"] {
		t.Error("the datagram queued before start was not received")
	}

	// Server to client, untracked on this side's events is irrelevant: the
	// client advertised datagram support too.
	must(t, server.SendDatagram([][]byte{[]byte("quack-ack")}, quicx.SendNone, "ack"))
	waitFor[*quicx.DatagramSendStateChanged](t, server.Events()) // SENT
	for {
		ev := next(t, client.Events())
		if d, ok := ev.(*quicx.DatagramReceived); ok {
			if string(d.Buffer) != "quack-ack" {
				t.Errorf("got %q", d.Buffer)
			}
			break
		}
	}
	closePair(t, client, server)
	if err := client.SendDatagram([][]byte{[]byte("x")}, quicx.SendNone, nil); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("after close: %v", err)
	}
}

// A peer that did not advertise datagram support: sending is an ErrInvalidState,
// and a datagram queued before the handshake is canceled.
func TestDatagramsNotNegotiated(t *testing.T) {
	f := newFixture(t, quicx.Settings{})
	client, err := f.reg.OpenConnection()
	must(t, err)
	must(t, client.SendDatagram([][]byte{[]byte("early")}, quicx.SendNone, "early"))
	must(t, client.Start(f.clientCfg, quicx.AddressFamilyINET, "127.0.0.1", f.addr.Port()))
	server := f.serverConn()
	ds := expectNext[*quicx.DatagramStateChanged](t, client.Events())
	if ds.SendEnabled || ds.MaxSendLength != 0 {
		t.Fatalf("%v", ds)
	}
	expectNext[*quicx.Connected](t, client.Events())
	st := expectNext[*quicx.DatagramSendStateChanged](t, client.Events())
	if st.Context != "early" || st.State != quicx.DatagramSendCanceled {
		t.Errorf("%v", st)
	}
	if err := client.SendDatagram([][]byte{[]byte("x")}, quicx.SendNone, nil); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("%v", err)
	}
	expectNext[*quicx.Connected](t, server.Events())
	closePair(t, client, server)
}
