package integration_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// While a stream sends, the ideal send buffer size follows the most bytes the
// connection has had in flight, in MsQuic's 1.5× steps from 128 KiB, and only
// grows; it is no longer indicated once the FIN is queued.
func TestIdealSendBufferSizeGrows(t *testing.T) {
	f := newFixture(t, with(0, 1))
	client, server := connectPair(t, f)

	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	if v, err := s.IdealSendBufferSize(); err != nil || v != quicx.DefaultIdealSendBufferSize {
		t.Errorf("ideal send buffer size before any indication: %d, %v", v, err)
	}
	must(t, s.Start(quicx.StreamStartNone))
	expectNext[*quicx.StartComplete](t, s.Events())
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	must(t, s.Send([][]byte{payload}, quicx.SendNone, "data"))

	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	got := make(chan []byte, 1)
	go func() { // drainStream's t.Fatalf must not run off the test goroutine
		var data []byte
		for ev := range ps.Stream.Events() {
			if r, ok := ev.(*quicx.Receive); ok {
				for _, b := range r.Buffers {
					data = append(data, b...)
				}
				r.Complete(r.TotalLength())
			}
		}
		got <- data
	}()

	// Wait for the send to complete, collecting ideal sizes, then finish.
	steps := map[uint64]bool{}
	for v := uint64(quicx.DefaultIdealSendBufferSize); v <= 0x8000000; v += v / 2 {
		steps[v] = true
	}
	var ideals []uint64
	for done := false; !done; {
		switch e := next(t, s.Events()).(type) {
		case *quicx.IdealSendBufferSize:
			ideals = append(ideals, e.ByteCount)
		case *quicx.SendComplete:
			if e.Canceled || e.Context != "data" {
				t.Fatalf("%v", e)
			}
			done = true
		default:
			t.Fatalf("unexpected %v", e)
		}
	}
	must(t, s.Send(nil, quicx.SendFin, "fin"))
	// Indications queued before the FIN count; none may follow it.
	rest := drain(t, s.Events())
	var tail []quicx.StreamEvent
	for i, e := range rest {
		if _, ok := e.(*quicx.IdealSendBufferSize); !ok {
			tail = rest[i:]
			break
		}
		ideals = append(ideals, e.(*quicx.IdealSendBufferSize).ByteCount)
	}
	expectTypes(t, tail, "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")

	if len(ideals) == 0 {
		t.Fatal("no IdealSendBufferSize while sending 8 MiB")
	}
	if v, err := s.IdealSendBufferSize(); err != nil || v != ideals[len(ideals)-1] {
		t.Errorf("ideal send buffer size %d, %v; the last indicated was %d", v, err, ideals[len(ideals)-1])
	}
	for i, v := range ideals {
		if !steps[v] || v <= quicx.DefaultIdealSendBufferSize {
			t.Errorf("ideal %d is not a step above the default", v)
		}
		if i > 0 && v <= ideals[i-1] {
			t.Errorf("ideal sizes do not grow: %v", ideals)
		}
	}
	var data []byte
	select {
	case data = <-got:
	case <-time.After(eventTimeout):
		t.Fatal("server stream not finished")
	}
	if !bytes.Equal(data, payload) {
		t.Errorf("server got %d bytes, want %d", len(data), len(payload))
	}
	t.Logf("ideal send buffer sizes: %v", ideals)
	must(t, s.Close())
	if _, err := s.IdealSendBufferSize(); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("on a closed stream: %v", err)
	}
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}
