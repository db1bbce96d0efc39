package integration_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// Back-pressure: a receiver that never completes a receive holds the peer's
// sends at the flow-control window, with the receiver's memory flat; once it
// completes, everything flows.
func TestBackpressureHoldsThePeer(t *testing.T) {
	f := newFixture(t, with(0, 1))
	client, server := connectPair(t, f)
	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	const total = 32 << 20
	payload := make([]byte, total)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	must(t, s.Send([][]byte{payload}, quicx.SendStart|quicx.SendFin, "all")) // held: above the copy budget
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	r := expectNext[*quicx.Receive](t, ps.Stream.Events()) // not completed: the receiver is stuck

	expectNext[*quicx.StartComplete](t, s.Events())
	select {
	case ev := <-s.Events():
		t.Fatalf("the sender progressed while the receiver was stuck: %v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	grown := int64(during.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap grew %d KiB while %d MiB wait to be sent", grown>>10, total>>20)
	if grown > 8<<20 {
		t.Errorf("heap grew %d MiB: data is piling up instead of waiting in flow control", grown>>20)
	}
	if received := r.TotalLength(); received > 1<<20 {
		t.Errorf("the stuck receiver holds %d bytes", received)
	}

	first := int(r.TotalLength())
	r.Complete(r.TotalLength()) // r belongs to quicx again from here on
	_, data := drainStream(t, ps.Stream)
	if first+len(data) != total {
		t.Errorf("received %d+%d bytes", first, len(data))
	}
	expectTypes(t, drain(t, s.Events()), "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
	must(t, s.Close())
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}

// RESET_STREAM_AT: both sides negotiate it; data marked reliable still
// arrives after a reset.
func TestReliableReset(t *testing.T) {
	settings := quicx.Settings{PeerUnidiStreamCount: 1, ReliableResetEnabled: true}
	f := newFixture(t, settings)
	client := f.dial()
	server := f.serverConn()
	expectNext[*quicx.DatagramStateChanged](t, client.Events())
	if e := expectNext[*quicx.ReliableResetNegotiated](t, client.Events()); !e.IsNegotiated {
		t.Fatalf("%v", e)
	}
	expectNext[*quicx.Connected](t, client.Events())
	if e := expectNext[*quicx.ReliableResetNegotiated](t, server.Events()); !e.IsNegotiated {
		t.Fatalf("%v", e)
	}
	expectNext[*quicx.Connected](t, server.Events())
	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	must(t, s.Send([][]byte{[]byte("keep")}, quicx.SendStart, nil))
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events()) // "keep" is on the wire
	type result struct {
		data    []byte
		aborted uint64
	}
	res := make(chan result, 1)
	go func() {
		var r result
		for ev := range ps.Stream.Events() {
			switch e := ev.(type) {
			case *quicx.Receive:
				r.data = append(r.data, bytes.Join(e.Buffers, nil)...)
				e.Complete(e.TotalLength())
			case *quicx.PeerSendAborted:
				r.aborted = e.ErrorCode
			}
		}
		res <- r
	}()
	if err := s.SetReliableOffset(5); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("offset beyond what was sent: %v", err)
	}
	if err := s.SetReliableOffset(2); !errors.Is(err, quicx.ErrNotSupported) {
		t.Errorf("offset below what was sent: %v", err)
	}
	must(t, s.SetReliableOffset(4))
	must(t, s.Shutdown(quicx.StreamShutdownAbortSend, 11))
	r := <-res
	if string(r.data) != "keep" || r.aborted != 11 {
		t.Errorf("got %q, aborted %d", r.data, r.aborted)
	}
	drain(t, s.Events())
	must(t, s.Close())
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}
