package integration_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// 10 MiB cross a 100 Mbit/s link that loses 5 % of the packets, byte for byte.
func TestSimTransfer10MiBUnderLoss(t *testing.T) {
	const size = 10 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(data)
	simTest(t, func(t *testing.T) {
		link := quicxtest.Link{Latency: 10 * time.Millisecond, Bandwidth: 100e6, Loss: 0.05}
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 1, Link: link, Settings: quicx.Settings{PeerBidiStreamCount: 1}})
		start := time.Now()
		c, cw, got, timeline := simUpload(t, p, data)
		elapsed := time.Since(start)
		if !bytes.Equal(got, data) {
			t.Fatalf("received %d bytes, not the %d sent", len(got), size)
		}
		if n := len(timeline); n < 3 || timeline[n-2] != "PeerSendShutdown" || timeline[n-1] != "StreamShutdownComplete{appClose=false}" {
			t.Errorf("server stream ended with %q", timeline[max(0, n-3):])
		}
		// The server's FIN arrives at once; the 10 MiB send, too large to be
		// buffered, completes when quic-go has taken the last byte.
		if _, err := cw.ExpectExactly(
			quicxtest.Equal(&quicx.StartComplete{ID: 0, PeerAccepted: true}),
			quicxtest.Match(func(e *quicx.Receive) bool { return e.TotalLength() == 0 && e.Flags == quicx.ReceiveFin }),
			quicxtest.Type[*quicx.PeerSendShutdown](),
			quicxtest.Equal(&quicx.SendComplete{}),
			quicxtest.Equal(&quicx.SendShutdownComplete{Graceful: true}),
			quicxtest.Equal(&quicx.StreamShutdownComplete{}),
		); err != nil {
			t.Error(err)
		}

		up := p.Network.Stats(p.ClientHost, p.ServerHost)
		lossRate := float64(up.Lost) / float64(up.Sent)
		stats, err := p.Client.Conn.Stats()
		simMust(t, err)
		t.Logf("%d MiB in %v simulated: %d packets sent, %d lost (%.1f %%), quic-go declared %d lost",
			size>>20, elapsed.Round(time.Millisecond), up.Sent, up.Lost, 100*lossRate, stats.SendSuspectedLost)
		if lossRate < 0.04 || lossRate > 0.06 {
			t.Errorf("loss rate %.3f, want about 0.05", lossRate)
		}
		if stats.SendSuspectedLost == 0 {
			t.Error("quic-go saw no loss")
		}
		// The link cannot carry 10 MiB in less than 10 MiB / 100 Mbit/s.
		if floor := time.Duration(size * 8 * int64(time.Second) / 100e6); elapsed < floor {
			t.Errorf("took %v, less than the link allows (%v)", elapsed, floor)
		}
		simMust(t, c.Close())
		<-cw.Done()
	})
}

// Reordering and duplication do not corrupt a stream either.
func TestSimTransferUnderReorderingAndDuplication(t *testing.T) {
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{2}).Read(data)
	simTest(t, func(t *testing.T) {
		link := quicxtest.Link{Latency: 15 * time.Millisecond, Bandwidth: 50e6, Reorder: 0.1, ReorderDelay: 5 * time.Millisecond, Duplicate: 0.05, Loss: 0.01}
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 2, Link: link, Settings: quicx.Settings{PeerBidiStreamCount: 1}})
		c, cw, got, _ := simUpload(t, p, data)
		if !bytes.Equal(got, data) {
			t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(data))
		}
		up := p.Network.Stats(p.ClientHost, p.ServerHost)
		if up.Reordered == 0 || up.Duplicated == 0 {
			t.Errorf("the link neither reordered nor duplicated: %+v", up)
		}
		simMust(t, c.Close())
		<-cw.Done()
	})
}
