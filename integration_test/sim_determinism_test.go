package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// simDeterminismRun connects over a lossy, reordering, duplicating link,
// rebinds the client's NAT two seconds later and closes the connection two
// seconds after that, with keep-alives flowing, and returns every object's
// timeline and the links' counters.
func simDeterminismRun(t *testing.T, seed uint64) string {
	var out string
	simTest(t, func(t *testing.T) {
		// quic-go and crypto/tls draw from crypto/rand (connection IDs, keys,
		// greased transport parameters, whose length changes packet sizes):
		// seed it too.
		cryptotest.SetGlobalRandom(t, seed)
		link := quicxtest.Link{Latency: 15 * time.Millisecond, Loss: 0.15, Reorder: 0.2, Duplicate: 0.1}
		settings := quicx.Settings{
			IdleTimeout: 10 * time.Second, KeepAliveInterval: 400 * time.Millisecond,
			TransportEvents: quicx.TrackPeerAddress | quicx.TrackStreamCredit, PeerBidiStreamCount: 2,
		}
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: seed, Link: link, Settings: settings})
		time.AfterFunc(2*time.Second, p.ClientHost.Rebind)
		time.AfterFunc(4*time.Second, func() { _ = p.Client.Conn.Shutdown(quicx.ShutdownNone, 0x42) })
		for _, w := range []*quicxtest.Watcher[quicx.ConnectionEvent]{p.Client.Events, p.Server.Events} {
			w.SetTimeout(time.Minute)
			_, err := w.Expect(quicxtest.Type[*quicx.ConnectionShutdownComplete]())
			simMust(t, err)
			<-w.Done() // the channel's close is part of the timeline: wait until it is seen
		}
		var b strings.Builder
		fmt.Fprintf(&b, "listener:\n%sclient:\n%sserver:\n%s", p.ListenerEvents.Timeline(), p.Client.Events.Timeline(), p.Server.Events.Timeline())
		fmt.Fprintf(&b, "client→server %+v\nserver→client %+v\n", p.Network.Stats(p.ClientHost, p.ServerHost), p.Network.Stats(p.ServerHost, p.ClientHost))
		out = b.String()
	})
	return out
}

// The same seed gives the same timeline, event for event and nanosecond for
// nanosecond; another seed gives another.
func TestSimDeterminism(t *testing.T) {
	runs := map[uint64]string{}
	for _, seed := range []uint64{1, 2, 3} {
		first := simDeterminismRun(t, seed)
		for range 2 {
			if again := simDeterminismRun(t, seed); again != first {
				t.Fatalf("seed %d gave two timelines:\n%s\n---\n%s", seed, first, again)
			}
		}
		for other, tl := range runs {
			if tl == first {
				t.Errorf("seeds %d and %d gave the same timeline", other, seed)
			}
		}
		runs[seed] = first
		// The scenario did happen: losses, and the server saw the NAT rebinding.
		if !strings.Contains(first, "PeerAddressChanged{10.0.0.2:49153}") || !strings.Contains(first, "ShutdownInitiatedByPeer{code=0x42}") {
			t.Errorf("seed %d:\n%s", seed, first)
		}
		if strings.Contains(first, "Lost:0 ") {
			t.Errorf("seed %d lost nothing:\n%s", seed, first)
		}
	}
	t.Logf("seed 1:\n%s", runs[1])
}
