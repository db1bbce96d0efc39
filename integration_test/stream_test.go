package integration_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"quicx.dev/quicx"
)

// connectPair dials the fixture and consumes the handshake events on both
// sides: the client's [StreamsAvailable] DatagramStateChanged Connected and the
// server's Connected.
func connectPair(t *testing.T, f *fixture) (client, server *quicx.Connection) {
	t.Helper()
	client = f.dial()
	server = f.serverConn()
	if f.settings.TransportEvents&quicx.TrackStreamCredit != 0 && (f.settings.PeerBidiStreamCount > 0 || f.settings.PeerUnidiStreamCount > 0) {
		sa := expectNext[*quicx.StreamsAvailable](t, client.Events())
		if sa.BidirectionalCount != f.settings.PeerBidiStreamCount || sa.UnidirectionalCount != f.settings.PeerUnidiStreamCount {
			t.Errorf("%v", sa)
		}
	}
	expectNext[*quicx.DatagramStateChanged](t, client.Events())
	expectNext[*quicx.Connected](t, client.Events())
	expectNext[*quicx.Connected](t, server.Events())
	return client, server
}

// closePair shuts the client down and drains both connections.
func closePair(t *testing.T, client, server *quicx.Connection) {
	t.Helper()
	must(t, client.Shutdown(quicx.ShutdownNone, 0))
	drain(t, client.Events())
	drain(t, server.Events())
	must(t, client.Close())
	must(t, server.Close())
}

// Stream start → send with FIN → receive → shutdown complete, exactly, on a
// unidirectional stream.
func TestUniStreamEventSequence(t *testing.T) {
	f := newFixture(t, with(0, 1))
	client, server := connectPair(t, f)

	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	if _, err := s.ID(); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("ID before start: %v", err)
	}
	must(t, s.Start(quicx.StreamStartNone))
	sc := expectNext[*quicx.StartComplete](t, s.Events())
	if sc.Status != nil || sc.ID != 2 || !sc.PeerAccepted {
		t.Fatalf("%v", sc)
	}
	must(t, s.Send([][]byte{[]byte("hello "), []byte("uni")}, quicx.SendFin, 7))
	evs := drain(t, s.Events())
	expectTypes(t, evs, "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
	if e := evs[0].(*quicx.SendComplete); e.Canceled || e.Context != 7 {
		t.Errorf("%v", e)
	}
	if e := evs[1].(*quicx.SendShutdownComplete); !e.Graceful {
		t.Errorf("%v", e)
	}
	if e := evs[2].(*quicx.StreamShutdownComplete); e.ConnectionShutdown || e.AppCloseInProgress {
		t.Errorf("%v", e)
	}
	if err := s.Send([][]byte{[]byte("late")}, quicx.SendNone, nil); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("send after FIN: %v", err)
	}
	if st, err := s.Stats(); err != nil || st.SendTotalBytes != 9 || st.SendSentBytes != 9 || st.SendAckedBytes != 9 {
		t.Errorf("stats %+v, %v", st, err)
	}
	must(t, s.Close())

	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	if ps.Flags != quicx.StreamOpenUnidirectional {
		t.Errorf("%v", ps)
	}
	pevs, data := drainStream(t, ps.Stream)
	pevs = foldFin(t, pevs)
	expectTypes(t, pevs, "Receive", "PeerSendShutdown", "StreamShutdownComplete")
	if r := pevs[0].(*quicx.Receive); r.AbsoluteOffset != 0 {
		t.Errorf("%v", r)
	}
	if string(data) != "hello uni" {
		t.Errorf("got %q", data)
	}
	if st, err := ps.Stream.Stats(); err != nil || st.RecvTotalBytes != 9 || st.RecvConsumed != 9 {
		t.Errorf("receiver stats %+v, %v", st, err)
	}
	if err := ps.Stream.Send([][]byte{[]byte("x")}, quicx.SendNone, nil); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("send on a peer's uni stream: %v", err)
	}
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}

// foldFin checks that the stream's first event is a Receive with the FIN, or
// a Receive followed by an empty one with the FIN, and returns evs without that
// empty Receive. Data and FIN of one send may reach the peer apart: quicx hands
// them to quic-go in two calls (Write, Close), and quic-go may send the data in
// between, so the peer indicates the FIN alone, as MsQuic does for a FIN that
// comes after the data.
func foldFin(t testing.TB, evs []quicx.StreamEvent) []quicx.StreamEvent {
	t.Helper()
	r, ok := evs[0].(*quicx.Receive)
	if !ok {
		t.Fatalf("events:\n%s", timelineOf(evs))
	}
	if r.Flags == quicx.ReceiveFin {
		return evs
	}
	if len(evs) > 1 {
		if fin, ok := evs[1].(*quicx.Receive); ok && fin.Flags == quicx.ReceiveFin && len(fin.Buffers) == 0 {
			return slices.Delete(slices.Clone(evs), 1, 2)
		}
	}
	t.Fatalf("no FIN after the data:\n%s", timelineOf(evs))
	return nil
}

// The same on a bidirectional stream: the server answers with its own FIN
// once the client's send direction is complete, so both sequences are exact.
func TestBidiStreamEventSequence(t *testing.T) {
	f := newFixture(t, with(1, 0))
	client, server := connectPair(t, f)

	s, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, s.Send([][]byte{[]byte("ping")}, quicx.SendStart|quicx.SendFin, "req"))
	for _, want := range []string{"StartComplete", "SendComplete", "SendShutdownComplete"} {
		ev := next(t, s.Events())
		if got := typeNames([]quicx.StreamEvent{ev})[0]; got != want {
			t.Fatalf("client got %v, want %s", ev, want)
		}
	}
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	r := expectNext[*quicx.Receive](t, ps.Stream.Events())
	if string(r.Buffers[0]) != "ping" {
		t.Fatalf("%v %q", r, r.Buffers)
	}
	fin := r.Flags == quicx.ReceiveFin
	r.Complete(r.TotalLength())
	if !fin { // apart from the data: see foldFin
		finOnly := expectNext[*quicx.Receive](t, ps.Stream.Events())
		if finOnly.Flags != quicx.ReceiveFin || finOnly.AbsoluteOffset != 4 || len(finOnly.Buffers) != 0 {
			t.Fatalf("%v", finOnly)
		}
		finOnly.Complete(0)
	}
	expectNext[*quicx.PeerSendShutdown](t, ps.Stream.Events())
	must(t, ps.Stream.Send([][]byte{[]byte("pong")}, quicx.SendFin, "resp"))
	sevs := drain(t, ps.Stream.Events())
	expectTypes(t, sevs, "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
	must(t, ps.Stream.Close())

	cevs, data := drainStream(t, s)
	expectTypes(t, foldFin(t, cevs), "Receive", "PeerSendShutdown", "StreamShutdownComplete")
	if string(data) != "pong" {
		t.Errorf("got %q", data)
	}
	must(t, s.Close())
	closePair(t, client, server)
}

// A FIN sent after the data arrives as its own empty Receive, then
// PeerSendShutdown.
func TestFinAfterDataIsAnEmptyReceive(t *testing.T) {
	f := newFixture(t, with(0, 1))
	client, server := connectPair(t, f)
	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	must(t, s.Send([][]byte{[]byte("data")}, quicx.SendStart, nil))
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	r := expectNext[*quicx.Receive](t, ps.Stream.Events())
	if r.Flags != quicx.ReceiveNone || r.TotalLength() != 4 {
		t.Fatalf("%v", r)
	}
	r.Complete(4)
	must(t, s.Shutdown(quicx.StreamShutdownGraceful, 0))
	fin := expectNext[*quicx.Receive](t, ps.Stream.Events())
	if fin.Flags != quicx.ReceiveFin || len(fin.Buffers) != 0 || fin.AbsoluteOffset != 4 {
		t.Fatalf("%v", fin)
	}
	fin.Complete(0)
	expectTypes(t, drain(t, ps.Stream.Events()), "PeerSendShutdown", "StreamShutdownComplete")
	expectTypes(t, drain(t, s.Events()), "StartComplete", "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
	must(t, s.Close())
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}

// 10 MiB echoed on one bidirectional stream, byte-exact, with the smallest
// event channels and handlers that call back into their own object.
func TestEcho10MiB(t *testing.T) {
	cases := []struct {
		buf    int
		events quicx.TransportEvents
	}{{-1, quicx.TrackAll}, {1, quicx.TrackAll}, {0, quicx.TrackAll}, {-1, 0}, {0, 0}}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("EventBuffer=%d/TransportEvents=%s", tc.buf, tc.events), func(t *testing.T) {
			settings := quicx.Settings{PeerBidiStreamCount: 1, TransportEvents: tc.events}
			f := newFixture(t, settings, withRegistration(quicx.RegistrationConfig{EventBuffer: tc.buf}))
			client, server := connectPair(t, f)
			payload := make([]byte, 10<<20)
			_, _ = rand.Read(payload)

			var wg sync.WaitGroup
			wg.Go(func() { echoServer(t, server) })
			s, err := client.OpenStream(quicx.StreamOpenNone)
			must(t, err)
			// Send in 64 KiB pieces, each one from inside the loop once the previous
			// completed, and read the echo at the same time.
			const piece = 64 << 10
			sent := 0
			sendNext := func() {
				end := min(sent+piece, len(payload))
				flags := quicx.SendNone
				if sent == 0 {
					flags |= quicx.SendStart
				}
				if end == len(payload) {
					flags |= quicx.SendFin
				}
				must(t, s.Send([][]byte{payload[sent:end]}, flags, end))
				sent = end
			}
			sendNext()
			var got []byte
			var evs []string
			for ev := range s.Events() {
				evs = append(evs, typeNames([]quicx.StreamEvent{ev})[0])
				switch e := ev.(type) {
				case *quicx.SendComplete:
					if e.Canceled {
						t.Fatalf("send canceled: %v", e)
					}
					if sent < len(payload) {
						sendNext()
					}
				case *quicx.Receive:
					if e.AbsoluteOffset != uint64(len(got)) {
						t.Fatalf("offset %d, have %d", e.AbsoluteOffset, len(got))
					}
					for _, b := range e.Buffers {
						got = append(got, b...)
					}
					e.Complete(e.TotalLength())
				case *quicx.StreamShutdownComplete:
					must(t, s.Close())
				}
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("echo differs: got %d bytes", len(got))
			}
			if n := countOf(evs, "StreamShutdownComplete"); n != 1 || evs[len(evs)-1] != "StreamShutdownComplete" {
				t.Errorf("final events: %d, last %s", n, evs[len(evs)-1])
			}
			if countOf(evs, "StartComplete") != 1 || countOf(evs, "PeerSendShutdown") != 1 || countOf(evs, "SendShutdownComplete") != 1 {
				t.Errorf("events %v", evs)
			}
			closePair(t, client, server)
			wg.Wait()
		})
	}
}

func countOf(names []string, name string) int {
	n := 0
	for _, s := range names {
		if s == name {
			n++
		}
	}
	return n
}

// echoServer echoes every peer stream of conn until the connection ends. Each
// stream's handler sends from inside its own event loop.
func echoServer(t *testing.T, conn *quicx.Connection) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ev := range conn.Events() {
		ps, ok := ev.(*quicx.PeerStreamStarted)
		if !ok {
			continue
		}
		wg.Go(func() {
			if _, err := echoStream(ps.Stream); err != nil {
				t.Errorf("echo send: %v", err)
			}
		})
	}
}

// A stream opened, started, sent on and shut down before its connection
// starts (MsQuic allows it; 0-RTT relies on it): Start completes at once with
// the locally assigned ID and PeerAccepted false, the queued data and FIN go
// out once the connection is up, and the events follow in MsQuic's order.
func TestStreamQueuedBeforeConnectionStart(t *testing.T) {
	f := newFixture(t, with(1, 0))
	client, err := f.reg.OpenConnection()
	must(t, err)
	s, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, s.Start(quicx.StreamStartNone))
	if e := expectNext[*quicx.StartComplete](t, s.Events()); e.Status != nil || e.ID != 0 || e.PeerAccepted {
		t.Fatalf("%v", e)
	}
	must(t, s.Send([][]byte{[]byte("queued "), []byte("early")}, quicx.SendNone, "a"))
	must(t, s.Send([][]byte{[]byte("!")}, quicx.SendNone, "b"))
	must(t, s.Shutdown(quicx.StreamShutdownGraceful, 0))
	if id, err := s.ID(); err != nil || id != 0 {
		t.Fatalf("ID %d, %v", id, err)
	}

	must(t, client.Start(f.clientCfg, quicx.AddressFamilyINET, "127.0.0.1", f.addr.Port()))
	server := f.serverConn()
	ps := waitFor[*quicx.PeerStreamStarted](t, server.Events())
	var data []byte
	for {
		ev := next(t, ps.Stream.Events())
		if r, ok := ev.(*quicx.Receive); ok {
			for _, b := range r.Buffers {
				data = append(data, b...)
			}
			r.Complete(r.TotalLength())
			continue
		}
		if _, ok := ev.(*quicx.PeerSendShutdown); !ok {
			t.Fatalf("server got %v", ev)
		}
		break
	}
	if string(data) != "queued early!" {
		t.Fatalf("server got %q", data)
	}
	must(t, ps.Stream.Shutdown(quicx.StreamShutdownGraceful, 0))
	expectTypes(t, drain(t, ps.Stream.Events()), "SendShutdownComplete", "StreamShutdownComplete")
	must(t, ps.Stream.Close())

	evs, _ := drainStream(t, s) // the server's side ended gracefully without sending
	expectTypes(t, evs, "SendComplete", "SendComplete", "SendShutdownComplete", "Receive", "PeerSendShutdown", "StreamShutdownComplete")
	if a, b := evs[0].(*quicx.SendComplete), evs[1].(*quicx.SendComplete); a.Context != "a" || b.Context != "b" || a.Canceled || b.Canceled {
		t.Errorf("%v %v", a, b)
	}
	if e := evs[2].(*quicx.SendShutdownComplete); !e.Graceful {
		t.Errorf("%v", e)
	}
	must(t, s.Close())
	closePair(t, client, server)
}
