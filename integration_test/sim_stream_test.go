package integration_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// Cancel-on-loss over a lossy link: the first lost packet of the stream resets
// it with the code chosen beforehand; CancelOnLoss, the canceled send, the
// abortive send shutdown and the peer's PeerSendAborted follow, exactly.
func TestSimCancelOnLoss(t *testing.T) {
	simTest(t, func(t *testing.T) {
		settings := quicx.Settings{PeerUnidiStreamCount: 1, TransportEvents: quicx.TrackLoss}
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 4, Link: simLossyLink, Settings: settings})
		s, err := p.Client.Conn.OpenStream(quicx.StreamOpenUnidirectional)
		simMust(t, err)
		simMust(t, s.SetCancelOnLossCode(0x77))
		w := quicxtest.NewWatcher(s.Events())
		simMust(t, s.Send([][]byte{make([]byte, 4<<20)}, quicx.SendStart|quicx.SendCancelOnLoss, "bulk"))
		if _, err := w.ExpectExactly(
			quicxtest.Equal(&quicx.StartComplete{ID: 2, PeerAccepted: true}),
			quicxtest.Equal(&quicx.CancelOnLoss{ErrorCode: 0x77}),
			quicxtest.Equal(&quicx.SendComplete{Canceled: true, Context: "bulk"}),
			quicxtest.Equal(&quicx.SendShutdownComplete{Graceful: false}),
			quicxtest.Equal(&quicx.StreamShutdownComplete{}),
		); err != nil {
			t.Fatal(err)
		}
		ps := simAwaitStream(t, p.Server.Events)
		_, timeline, err := quicxtest.ReadAll(ps.Events())
		simMust(t, err)
		if n := len(timeline); n < 2 || timeline[n-2] != "PeerSendAborted{code=0x77}" {
			t.Errorf("server stream: %q", timeline)
		}
		simMust(t, s.Close())
		simMust(t, ps.Close())
		<-w.Done()
	})
}

// A unidirectional stream's exact sequences on both ends under 5 % loss, with
// the graceful send shutdown waiting for every byte and the FIN to be
// acknowledged.
func TestSimStreamSequenceUnderLoss(t *testing.T) {
	data := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{5}).Read(data)
	simTest(t, func(t *testing.T) {
		link := quicxtest.Link{Latency: 20 * time.Millisecond, Bandwidth: 50e6, Loss: 0.05}
		settings := quicx.Settings{PeerUnidiStreamCount: 1, TransportEvents: quicx.TrackAcks}
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 5, Link: link, Settings: settings})
		s, err := p.Client.Conn.OpenStream(quicx.StreamOpenUnidirectional)
		simMust(t, err)
		w := quicxtest.NewWatcher(s.Events())
		simMust(t, s.Send([][]byte{data}, quicx.SendStart|quicx.SendFin, "all"))
		ps := simAwaitStream(t, p.Server.Events)
		got, timeline, err := quicxtest.ReadAll(ps.Events())
		simMust(t, err)
		if !bytes.Equal(got, data) {
			t.Fatalf("received %d bytes", len(got))
		}
		if n := len(timeline); n < 3 || timeline[n-2] != "PeerSendShutdown" || timeline[n-1] != "StreamShutdownComplete{appClose=false}" {
			t.Errorf("server stream: %q", timeline)
		}
		if _, err := w.ExpectExactly(
			quicxtest.Equal(&quicx.StartComplete{ID: 2, PeerAccepted: true}),
			quicxtest.Equal(&quicx.SendComplete{Context: "all"}),
			quicxtest.Equal(&quicx.SendShutdownComplete{Graceful: true}),
			quicxtest.Equal(&quicx.StreamShutdownComplete{}),
		); err != nil {
			t.Fatal(err)
		}
		if lost := p.Network.Stats(p.ClientHost, p.ServerHost).Lost; lost == 0 {
			t.Error("the link lost nothing: the test proves nothing about loss")
		}
		simMust(t, s.Close())
		simMust(t, ps.Close())
		<-w.Done()
	})
}

// DELAY_ID_FC_UPDATES: a finished peer stream gives its credit back only when
// the app closes it. Simulated time shows that nothing comes before the Close.
func TestSimDelayIDFCUpdates(t *testing.T) {
	simTest(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 6, Link: quicxtest.Link{Latency: 10 * time.Millisecond}, Settings: quicx.Settings{PeerUnidiStreamCount: 1}})
		a, err := p.Client.Conn.OpenStream(quicx.StreamOpenUnidirectional)
		simMust(t, err)
		aw := quicxtest.NewWatcher(a.Events())
		simSendAll(t, a, []byte("a"))
		pa := simAwaitStream(t, p.Server.Events)
		simMust(t, pa.SetDelayIDFCUpdates())
		got, _, err := quicxtest.ReadAll(pa.Events()) // the stream finishes; not closed yet
		simMust(t, err)
		if string(got) != "a" {
			t.Fatalf("got %q", got)
		}
		b, err := p.Client.Conn.OpenStream(quicx.StreamOpenUnidirectional)
		simMust(t, err)
		bw := quicxtest.NewWatcher(b.Events())
		simMust(t, b.Send([][]byte{[]byte("b")}, quicx.SendFin, nil))
		simMust(t, b.Start(quicx.StreamStartIndicatePeerAccept))
		if _, err := bw.ExpectExactly(
			quicxtest.Equal(&quicx.StartComplete{ID: 6, PeerAccepted: false}),
			quicxtest.Equal(&quicx.SendComplete{}), // copied: buffered mode
		); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // simulated: many round trips, and no credit
		if evs := bw.Observed(); len(evs) != 2 {
			t.Fatalf("stream b progressed before the credit came back:\n%s", bw.Timeline())
		}
		simMust(t, pa.Close()) // the credit goes back now
		if _, err := bw.Expect(quicxtest.Type[*quicx.PeerAccepted]()); err != nil {
			t.Fatal(err)
		}
		pb := simAwaitStream(t, p.Server.Events)
		if got, _, err := quicxtest.ReadAll(pb.Events()); err != nil || string(got) != "b" {
			t.Fatalf("got %q, %v", got, err)
		}
		simMust(t, pb.Close())
		for _, s := range []*quicx.Stream{a, b} {
			simMust(t, s.Close())
		}
		<-aw.Done()
		<-bw.Done()
	})
}
