package integration_test

import (
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// A peer stream can switch to app-owned buffers after PeerStreamStarted even
// when all its data has already arrived: quicx reads nothing from it before
// the app first asks for its events, so every byte lands in the app's memory
// (MsQuic: StreamProvideReceiveBuffers inline in PEER_STREAM_STARTED).
func TestSimPeerStreamSwitchesToAppOwnedBuffers(t *testing.T) {
	simTest(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 12, Link: quicxtest.Link{Latency: 5 * time.Millisecond},
			Settings: quicx.Settings{PeerUnidiStreamCount: 1}})
		s, err := p.Client.Conn.OpenStream(quicx.StreamOpenUnidirectional)
		simMust(t, err)
		cw := quicxtest.NewWatcher(s.Events())
		simSendAll(t, s, []byte("0123456789"))
		ps := simAwaitStream(t, p.Server.Events)
		synctest.Wait() // the data and the FIN came with the stream; nothing read them

		first, second := make([]byte, 4), make([]byte, 16)
		simMust(t, ps.ProvideReceiveBuffers([][]byte{first, second}))
		w := quicxtest.NewWatcher(ps.Events(), quicxtest.CompleteReceives())
		if _, err := w.ExpectExactly(
			quicxtest.Match(func(r *quicx.Receive) bool { return r.AbsoluteOffset == 0 && r.Flags == 0 }),
			quicxtest.Match(func(r *quicx.Receive) bool { return r.AbsoluteOffset == 4 && r.Flags == quicx.ReceiveFin }),
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
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 13, Link: quicxtest.Link{Latency: 5 * time.Millisecond},
			Settings: quicx.Settings{PeerUnidiStreamCount: 1}})
		s, err := p.Client.Conn.OpenStream(quicx.StreamOpenUnidirectional)
		simMust(t, err)
		cw := quicxtest.NewWatcher(s.Events())
		simMust(t, s.Send([][]byte{[]byte("data")}, quicx.SendStart, nil))
		ps := simAwaitStream(t, p.Server.Events)
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
