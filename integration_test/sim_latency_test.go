package integration_test

import (
	"testing"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// The handshake takes one round trip for the client and one and a half for
// the server, over a 200 ms RTT path, symmetric or not; a request and its
// echo take one more round trip.
func TestSimHandshakeUnder200msRTT(t *testing.T) {
	for _, c := range []struct {
		name     string
		up, down time.Duration
	}{
		{"symmetric", 100 * time.Millisecond, 100 * time.Millisecond},
		{"asymmetric", 150 * time.Millisecond, 50 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			simTest(t, func(t *testing.T) {
				n, err := quicxtest.NewNetwork(quicxtest.NetworkConfig{})
				simMust(t, err)
				t.Cleanup(func() { simMust(t, n.Close()) }) // after the pair's cleanup
				client, server := n.Host("client"), n.Host("server")
				simMust(t, n.SetLink(client, server, quicxtest.Link{Latency: c.up}))
				simMust(t, n.SetLink(server, client, quicxtest.Link{Latency: c.down}))
				p := quicxtest.NewPair(t, quicxtest.PairConfig{Network: n, Settings: quicx.Settings{PeerBidiStreamCount: 1}})
				rtt := c.up + c.down

				// The network delivers packets due at the same instant 1 ns
				// apart: allow a microsecond.
				const slack = time.Microsecond
				// The pair's timelines count from the client's start.
				nc := p.ListenerEvents.Observed()[0]
				simBetween(t, nc.Text, nc.At, c.up, c.up+slack)
				cc := p.Client.Events.Observed()[1]
				simBetween(t, "client "+cc.Text, cc.At, rtt, rtt+slack)
				sc := p.Server.Events.Observed()[0]
				simBetween(t, "server "+sc.Text, sc.At, rtt+c.up, rtt+c.up+slack)

				s, err := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
				simMust(t, err)
				sw := quicxtest.NewWatcher(s.Events(), quicxtest.CompleteReceives())
				sent := time.Now()
				simSendAll(t, s, []byte("ping"))
				peer := simAwaitStream(t, p.Server.Events)
				simBetween(t, "PeerStreamStarted", time.Since(sent), c.up, c.up+slack)
				go func() { _, _ = echoStream(peer) }()
				_, err = sw.Expect(quicxtest.Type[*quicx.PeerSendShutdown]())
				simMust(t, err)
				simBetween(t, "echo", time.Since(sent), rtt, rtt+slack)
				if got := string(sw.Received()); got != "ping" {
					t.Errorf("echo %q", got)
				}
				simMust(t, s.Close())
				<-sw.Done()
			})
		})
	}
}

// echoStream sends back what a stream receives, with FIN after the peer's.
func echoStream(s *quicx.Stream) (int, error) {
	n := 0
	for ev := range s.Events() {
		switch e := ev.(type) {
		case *quicx.Receive:
			var data []byte
			for _, b := range e.Buffers {
				data = append(data, b...)
			}
			fin := e.Flags&quicx.ReceiveFin != 0
			e.Complete(e.TotalLength())
			n += len(data)
			flags := quicx.SendNone
			if fin {
				flags = quicx.SendFin
			}
			if len(data) > 0 || fin {
				if err := s.Send([][]byte{data}, flags, nil); err != nil {
					return n, err
				}
			}
		case *quicx.StreamShutdownComplete:
			_ = s.Close()
		}
	}
	return n, nil
}
