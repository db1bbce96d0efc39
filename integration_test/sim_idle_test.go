package integration_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// readerGoroutines counts quicx's stream reader goroutines.
func readerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("quicx.(*recvSide).run("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// A stream waiting for its peer holds a reader goroutine waiting in quic-go's
// Read, one per receive direction, unless the connection has the recorder
// follow received data (TrackReceive): then it holds none, and data arriving
// later, over a lossy link, still comes whole and in order. Both ends of 20
// bidi streams idle after a first message, then finish with a second one.
func TestSimIdleStreamsHoldNoReader(t *testing.T) {
	const n = 20
	for _, c := range []struct {
		name    string
		events  quicx.TransportEvents
		readers int
	}{{"default", 0, 2 * n}, {"TrackReceive", quicx.TrackReceive, 0}} {
		t.Run(c.name, func(t *testing.T) {
			simTest(t, func(t *testing.T) {
				p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 11, Link: quicxtest.Link{Latency: 5 * time.Millisecond, Loss: 0.05},
					Settings: quicx.Settings{PeerBidiStreamCount: n, TransportEvents: c.events}})
				clients := make([]*quicxtest.Watcher[quicx.StreamEvent], n)
				servers := make([]*quicx.Stream, n)
				for i := range n {
					s, err := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
					simMust(t, err)
					clients[i] = quicxtest.NewWatcher(s.Events(), quicxtest.CompleteReceives())
					simMust(t, s.Send([][]byte{fmt.Appendf(nil, "hello %d", i)}, quicx.SendStart, nil))
				}
				serverW := make([]*quicxtest.Watcher[quicx.StreamEvent], n)
				for i := range n {
					servers[i] = simAwaitStream(t, p.Server.Events)
					serverW[i] = quicxtest.NewWatcher(servers[i].Events(), quicxtest.CompleteReceives())
				}
				for i, w := range serverW {
					if _, err := w.Expect(quicxtest.Type[*quicx.Receive]()); err != nil {
						t.Fatal(err)
					}
					id, err := servers[i].ID()
					simMust(t, err)
					if got, want := string(w.Received()), fmt.Sprintf("hello %d", id/4); got != want {
						t.Fatalf("stream %d: got %q, want %q", id, got, want)
					}
				}
				synctest.Wait() // everything is idle now, readers included
				if got := readerGoroutines(); got != c.readers {
					t.Fatalf("%d reader goroutines on %d idle streams, want %d", got, n, c.readers)
				}

				// Each server stream answers and finishes; each client stream
				// gets the answer whole, then the peer's FIN.
				for _, s := range servers {
					simMust(t, s.Send([][]byte{[]byte("bye")}, quicx.SendFin, nil))
				}
				for i, w := range clients {
					if _, err := w.Expect(quicxtest.Type[*quicx.PeerSendShutdown]()); err != nil {
						t.Fatalf("client stream %d: %v", i, err)
					}
					if got := string(w.Received()); got != "bye" {
						t.Fatalf("client stream %d: got %q", i, got)
					}
				}
				for _, s := range servers {
					simMust(t, s.Close())
				}
				for i := range n {
					<-serverW[i].Done()
				}
				simMust(t, p.Client.Conn.Shutdown(quicx.ShutdownNone, 0))
				for i := range n {
					<-clients[i].Done()
				}
			})
		})
	}
}
