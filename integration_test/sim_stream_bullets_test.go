package integration_test

import (
	"errors"
	"slices"
	"testing"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// One test per bullet of the streams issue's Build list, each over loopback
// and over the in-memory network with 5 % loss (overBothNetworks), asserting
// the exact event sequences and the bytes.

// Stream-count flow control: with PeerBidiStreamCount 0 the client can open no
// bidirectional stream (FAIL_BLOCKED fails, otherwise the stream waits and the
// server hears PeerNeedsStreams); the counts cannot change after start; a
// unidirectional stream's credit comes back when the peer's stream finishes.
func TestStreamsCountFlowControl(t *testing.T) {
	overBothNetworks(t, with(0, 1), 21, func(e *streamEnv) {
		t := e.t
		hs := e.Client.Events.Events()
		if !slices.Equal(typeNames(hs), []string{"StreamsAvailable", "DatagramStateChanged", "Connected"}) ||
			*hs[0].(*quicx.StreamsAvailable) != (quicx.StreamsAvailable{BidirectionalCount: 0, UnidirectionalCount: 1}) {
			t.Fatalf("client handshake:\n%s", e.Client.Events.Timeline())
		}

		// No bidirectional credit at all.
		failed := e.open(quicx.StreamOpenNone)
		must(t, failed.S.Start(quicx.StreamStartFailBlocked))
		failed.exactly(t, quicxtest.Equal(&quicx.StartComplete{Status: quicx.ErrStreamLimitReached}))
		must(t, failed.S.Close())
		if err := failed.W.ExpectClosed(); err != nil {
			t.Fatal(err)
		}
		blocked := e.open(quicx.StreamOpenNone)
		must(t, blocked.S.Send([][]byte{[]byte("waits")}, quicx.SendStart|quicx.SendFin, "b"))
		blocked.exactly(t, mStarted(0, false), mSent("b"))
		if _, err := e.Server.Events.ExpectExactly(quicxtest.Equal(&quicx.PeerNeedsStreams{Bidirectional: true})); err != nil {
			t.Fatal(err)
		}
		raised := with(1, 1)
		if err := e.Server.Conn.SetSettings(&raised); !errors.Is(err, quicx.ErrNotSupported) {
			t.Fatalf("raising the stream count after start: %v", err)
		}

		// One unidirectional stream at a time: the second waits for the first
		// to finish on the server.
		first, second := payload(1, 20<<10), payload(2, 20<<10)
		u1 := e.open(quicx.StreamOpenUnidirectional)
		must(t, u1.S.Send([][]byte{first}, quicx.SendStart|quicx.SendFin, "u1"))
		u1.exactly(t, mStarted(2, true), mSent("u1"))
		u2 := e.open(quicx.StreamOpenUnidirectional)
		must(t, u2.S.Send([][]byte{second}, quicx.SendFin, "u2"))
		must(t, u2.S.Start(quicx.StreamStartIndicatePeerAccept))
		u2.exactly(t, mStarted(6, false), mSent("u2"))
		p1 := e.accept()
		// Wait for the server to hear that the client is blocked (the frame may
		// have come before the first stream) before freeing the credit.
		uniNeeds := quicxtest.Equal(&quicx.PeerNeedsStreams{Bidirectional: false})
		if !slices.ContainsFunc(e.Server.Events.Events(), func(ev quicx.ConnectionEvent) bool {
			n, ok := ev.(*quicx.PeerNeedsStreams)
			return ok && !n.Bidirectional
		}) {
			if _, err := e.Server.Events.Expect(uniNeeds); err != nil {
				t.Fatal(err)
			}
		}
		if got := p1.readAll(t); !slices.Equal(got, first) {
			t.Fatalf("server got %d bytes, not the first stream's %d", len(got), len(first))
		}
		p1.ends(t, mPeerSendShutdown, mStreamDone) // finished, not closed: the credit goes back
		u1.ends(t, mGracefulSend, mStreamDone)
		u2.ends(t, quicxtest.Type[*quicx.PeerAccepted](), mGracefulSend, mStreamDone)
		p2 := e.accept()
		if got := p2.readAll(t); !slices.Equal(got, second) {
			t.Fatalf("server got %d bytes, not the second stream's %d", len(got), len(second))
		}
		p2.ends(t, mPeerSendShutdown, mStreamDone)

		// The bidirectional stream is still waiting, and nothing reached the server.
		e.settle()
		if n := len(blocked.W.Events()); n != 2 {
			t.Fatalf("the blocked stream progressed:\n%s", blocked.W.Timeline())
		}
		must(t, blocked.S.Close())
		blocked.ends(t, mAbortedSend, mStreamClosed)
		checkStreamCreditEvents(t, e.Server.Events, 2, 6)
	})
}

// checkStreamCreditEvents checks the server's connection events after
// Connected: the peer streams with the IDs want, in order, and PeerNeedsStreams
// for the bidirectional, then the unidirectional direction, each at least once
// (a STREAMS_BLOCKED frame is sent again when its packet is lost), and nothing
// else. A PeerNeedsStreams and a PeerStreamStarted carried by one packet reach
// quicx on different goroutines: their relative order is not defined.
func checkStreamCreditEvents(t *testing.T, w *quicxtest.Watcher[quicx.ConnectionEvent], want ...uint64) {
	t.Helper()
	evs := w.Events()
	i := slices.IndexFunc(evs, func(ev quicx.ConnectionEvent) bool { _, ok := ev.(*quicx.Connected); return ok })
	var ids []uint64
	var needs []bool
	for _, ev := range evs[i+1:] {
		switch e := ev.(type) {
		case *quicx.PeerStreamStarted:
			id, err := e.Stream.ID()
			must(t, err)
			ids = append(ids, id)
		case *quicx.PeerNeedsStreams:
			needs = append(needs, e.Bidirectional)
		default:
			t.Fatalf("unexpected %v:\n%s", ev, w.Timeline())
		}
	}
	if needs = slices.Compact(needs); !slices.Equal(ids, want) || !slices.Equal(needs, []bool{true, false}) {
		t.Fatalf("server connection events:\n%s", w.Timeline())
	}
}
