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
		synctest.Wait() // the data and the FIN are at the server, not read

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
