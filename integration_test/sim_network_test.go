package integration_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// When the client's NAT rebinds mid-stream, the server follows it to its new
// address (PeerAddressChanged) and the stream goes on undisturbed; the client
// notices nothing.
func TestSimNATRebinding(t *testing.T) {
	simTest(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{
			Link:     quicxtest.Link{Latency: 20 * time.Millisecond},
			Settings: quicx.Settings{PeerBidiStreamCount: 1, TransportEvents: quicx.TrackPeerAddress},
		})
		c, err := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
		simMust(t, err)
		cw := quicxtest.NewWatcher(c.Events(), quicxtest.CompleteReceives())
		simMust(t, c.Send([][]byte{[]byte("before ")}, quicx.SendStart, nil))
		s := simAwaitStream(t, p.Server.Events)
		sw := quicxtest.NewWatcher(s.Events(), quicxtest.CompleteReceives())
		simMust(t, s.Shutdown(quicx.StreamShutdownGraceful, 0))

		time.Sleep(time.Second) // the scenario: a second later, the NAT rebinds
		p.ClientHost.Rebind()
		simMust(t, c.Send([][]byte{[]byte("after")}, quicx.SendFin, nil))

		_, err = p.Server.Events.ExpectExactly(quicxtest.Equal(&quicx.PeerAddressChanged{Address: netipAddrPort("10.0.0.2:49153")}))
		simMust(t, err)
		if remote, _ := p.Server.Conn.RemoteAddr(); remote != netipAddrPort("10.0.0.2:49153") {
			t.Errorf("server's remote address %v", remote)
		}
		_, err = sw.Expect(quicxtest.Type[*quicx.StreamShutdownComplete]())
		simMust(t, err)
		if got := string(sw.Received()); got != "before after" {
			t.Errorf("received %q", got)
		}
		_, err = cw.Expect(quicxtest.Type[*quicx.StreamShutdownComplete]())
		simMust(t, err)
		// Nothing about the path on the client: a NAT is invisible from inside.
		p.Client.Events.SetTimeout(time.Second)
		if _, err := p.Client.Events.Expect(quicxtest.Type[*quicx.LocalAddressChanged]()); !errors.Is(err, quicxtest.ErrTimeout) {
			t.Errorf("client: %v", err)
		}
	})
}

// A link with a small MTU drops quic-go's default 1280-byte packets, so the
// handshake cannot complete; Settings.MinimumMtu makes quic-go use packets
// small enough. (quic-go runs path MTU discovery only on sockets where it can
// set the DF bit, which simulated sockets are not, so it never tries larger
// packets here.)
func TestSimPathMTU(t *testing.T) {
	link := quicxtest.Link{Latency: 5 * time.Millisecond, MTU: 1280}
	t.Run("default packet size", func(t *testing.T) {
		simTest(t, func(t *testing.T) {
			n, err := quicxtest.NewNetwork(quicxtest.NetworkConfig{Link: link})
			simMust(t, err)
			t.Cleanup(func() { simMust(t, n.Close()) })
			_, err = quicxtest.OpenPair(quicxtest.PairConfig{Network: n, Settings: quicx.Settings{HandshakeIdleTimeout: 2 * time.Second}})
			if err == nil {
				t.Fatal("connected over a link that drops every packet of the handshake")
			}
			if st := n.Stats(n.Host("client"), n.Host("server")); st.TooBig == 0 || st.TooBig != st.Sent {
				t.Errorf("link stats %+v", st)
			}
		})
	})
	t.Run("MinimumMtu", func(t *testing.T) {
		simTest(t, func(t *testing.T) {
			p := quicxtest.NewPair(t, quicxtest.PairConfig{Link: link, Settings: quicx.Settings{MinimumMtu: 1280, PeerBidiStreamCount: 1}})
			data := make([]byte, 256<<10)
			rand.NewChaCha8([32]byte{3}).Read(data)
			c, cw, got, _ := simUpload(t, p, data)
			if !bytes.Equal(got, data) {
				t.Errorf("received %d bytes that differ from the %d sent", len(got), len(data))
			}
			if st := p.Network.Stats(p.ClientHost, p.ServerHost); st.TooBig != 0 || st.Sent < 200 {
				t.Errorf("link stats %+v", st)
			}
			simMust(t, c.Close())
			<-cw.Done()
		})
	})
}
