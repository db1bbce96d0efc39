package integration_test

import (
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// A peer stream can switch to app-owned buffers after PeerStreamStarted even
// when all its data has already arrived: quicx indicates nothing before the
// app first asks for its events, and copies what it read meanwhile into the
// app's buffers, so every Receive points into the app's memory (MsQuic:
// StreamProvideReceiveBuffers inline in PEER_STREAM_STARTED).
func TestSimPeerStreamSwitchesToAppOwnedBuffers(t *testing.T) {
	simTest(t, func(t *testing.T) {
		s, cw, ps := simUniStream(t, 12, []byte("0123456789"), quicx.SendStart|quicx.SendFin)
		synctest.Wait() // the data and the FIN came with the stream; nothing read them

		first, second := make([]byte, 4), make([]byte, 16)
		simMust(t, ps.ProvideReceiveBuffers([][]byte{first, second}))
		w := quicxtest.NewWatcher(ps.Events(), quicxtest.CompleteReceives())
		if _, err := w.ExpectExactly(
			// One Receive: the data read before the switch, copied into
			// both app buffers, and the FIN that came with it.
			quicxtest.Match(func(r *quicx.Receive) bool {
				return r.AbsoluteOffset == 0 && r.TotalLength() == 10 && r.Flags == quicx.ReceiveFin
			}),
			quicxtest.Type[*quicx.PeerSendShutdown](),
			quicxtest.Type[*quicx.StreamShutdownComplete](),
		); err != nil {
			t.Fatal(err)
		}
		// The watcher keeps copies of the data; the app's buffers show where
		// quicx read it to.
		var got []byte
		for _, ev := range w.Events() {
			r, ok := ev.(*quicx.Receive)
			if !ok {
				continue
			}
			for _, b := range r.Buffers {
				got = append(got, b...)
			}
		}
		if string(got) != "0123456789" || string(first) != "0123" || string(second[:6]) != "456789" {
			t.Fatalf("got %q; app buffers %q %q\n%s", got, first, second, w.Timeline())
		}
		simMust(t, ps.Close())
		<-w.Done()
		simMust(t, s.Close())
		<-cw.Done()
	})
}

// A peer stream whose receive the app disables before its first Events call
// (MsQuic: inline in PEER_STREAM_STARTED) indicates no data, but the peer's
// reset still comes at once: PeerSendAborted with the peer's code.
func TestSimPeerStreamResetWhileReceiveDisabled(t *testing.T) {
	simTest(t, func(t *testing.T) {
		s, cw, ps := simUniStream(t, 13, []byte("data"), quicx.SendStart)
		simMust(t, ps.SetReceiveEnabled(false))
		simMust(t, s.Shutdown(quicx.StreamShutdownAbortSend, 42))
		time.Sleep(50 * time.Millisecond) // simulated: the reset reaches the server
		synctest.Wait()
		w := quicxtest.NewWatcher(ps.Events())
		if _, err := w.ExpectExactly(
			quicxtest.Equal(&quicx.PeerSendAborted{ErrorCode: 42}),
			quicxtest.Type[*quicx.StreamShutdownComplete](),
		); err != nil {
			t.Fatal(err)
		}
		simMust(t, ps.Close())
		<-w.Done()
		simMust(t, s.Close())
		<-cw.Done()
	})
}

// simUniStream connects a pair on a 5 ms link, sends data on a client
// unidirectional stream with flags and returns that stream, a watcher of its
// events and the server's end, whose events nobody has asked for yet.
func simUniStream(t *testing.T, seed uint64, data []byte, flags quicx.SendFlags) (*quicx.Stream, *quicxtest.Watcher[quicx.StreamEvent], *quicx.Stream) {
	t.Helper()
	p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: seed, Link: quicxtest.Link{Latency: 5 * time.Millisecond},
		Settings: quicx.Settings{PeerUnidiStreamCount: 1}})
	s, err := p.Client.Conn.OpenStream(quicx.StreamOpenUnidirectional)
	simMust(t, err)
	cw := quicxtest.NewWatcher(s.Events())
	simMust(t, s.Send([][]byte{data}, flags, nil))
	return s, cw, simAwaitStream(t, p.Server.Events)
}

// The same switch with app buffers smaller than what quicx read meanwhile:
// what fits is indicated from the app's memory, then ReceiveBufferNeeded
// asks for room for the rest, which follows once the app gives more.
func TestSimPeerStreamSwitchWithTooLittleRoom(t *testing.T) {
	simTest(t, func(t *testing.T) {
		s, cw, ps := simUniStream(t, 14, []byte("0123456789"), quicx.SendStart|quicx.SendFin)
		synctest.Wait() // the data and the FIN came with the stream and were read
		first, second := make([]byte, 4), make([]byte, 8)
		simMust(t, ps.ProvideReceiveBuffers([][]byte{first}))
		w := quicxtest.NewWatcher(ps.Events(), quicxtest.CompleteReceives())
		if _, err := w.ExpectExactly(
			quicxtest.Match(func(r *quicx.Receive) bool {
				return r.AbsoluteOffset == 0 && r.TotalLength() == 4 && r.Flags == 0
			}),
			quicxtest.Equal(&quicx.ReceiveBufferNeeded{BufferLengthNeeded: 6}),
		); err != nil {
			t.Fatal(err)
		}
		simMust(t, ps.ProvideReceiveBuffers([][]byte{second}))
		if _, err := w.ExpectExactly(
			quicxtest.Match(func(r *quicx.Receive) bool {
				return r.AbsoluteOffset == 4 && r.TotalLength() == 6 && r.Flags == quicx.ReceiveFin
			}),
			quicxtest.Type[*quicx.PeerSendShutdown](),
			quicxtest.Type[*quicx.StreamShutdownComplete](),
		); err != nil {
			t.Fatal(err)
		}
		if string(first) != "0123" || string(second[:6]) != "456789" || string(w.Received()) != "0123456789" {
			t.Fatalf("app buffers %q %q, received %q", first, second, w.Received())
		}
		simMust(t, ps.Close())
		<-w.Done()
		simMust(t, s.Close())
		<-cw.Done()
	})
}
