package integration_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// uniPair opens a client unidirectional stream carrying data (with FIN if fin)
// and returns it with the server's end. With fin it returns once the FIN is
// acknowledged (the fixtures track acknowledgements): quic-go may send the FIN
// in a packet of its own, and the server's stream, which reads nothing before
// its first Events call, then still indicates the data and the FIN together.
func uniPair(t *testing.T, client, server *quicx.Connection, data string, fin bool) (*quicx.Stream, *quicx.Stream) {
	t.Helper()
	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	flags := quicx.SendStart
	if fin {
		flags |= quicx.SendFin
	}
	must(t, s.Send([][]byte{[]byte(data)}, flags, nil))
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	if fin {
		if e := waitFor[*quicx.SendShutdownComplete](t, s.Events()); !e.Graceful {
			t.Fatalf("%v", e)
		}
	}
	return s, ps.Stream
}

// A partial completion pauses receive; SetReceiveEnabled(true) indicates the
// rest again from where the app stopped, then PeerSendShutdown.
func TestPartialCompletionPausesReceive(t *testing.T) {
	f := newFixture(t, with(0, 1))
	client, server := connectPair(t, f)
	cs, ss := uniPair(t, client, server, "hello world", true)
	r := expectNext[*quicx.Receive](t, ss.Events())
	if r.TotalLength() != 11 || r.Flags != quicx.ReceiveFin {
		t.Fatalf("%v", r)
	}
	r.Complete(5)
	must(t, ss.SetReceiveEnabled(true))
	r2 := expectNext[*quicx.Receive](t, ss.Events())
	if r2.AbsoluteOffset != 5 || r2.Flags != quicx.ReceiveFin || string(bytes.Join(r2.Buffers, nil)) != " world" {
		t.Fatalf("%v %q", r2, r2.Buffers)
	}
	r2.Complete(r2.TotalLength())
	expectTypes(t, drain(t, ss.Events()), "PeerSendShutdown", "StreamShutdownComplete")
	drain(t, cs.Events())
	must(t, cs.Close())
	must(t, ss.Close())
	closePair(t, client, server)
}

// A receive completed later from another goroutine: nothing else is indicated
// in between (one receive outstanding), and PeerSendShutdown follows the
// completion.
func TestCompleteLaterFromAnotherGoroutine(t *testing.T) {
	f := newFixture(t, with(0, 1))
	client, server := connectPair(t, f)
	cs, ss := uniPair(t, client, server, "async", true)
	r := expectNext[*quicx.Receive](t, ss.Events())
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		<-release
		r.Complete(r.TotalLength())
		close(done)
	}()
	close(release)
	<-done
	expectTypes(t, drain(t, ss.Events()), "PeerSendShutdown", "StreamShutdownComplete")
	drain(t, cs.Events())
	must(t, cs.Close())
	must(t, ss.Close())
	closePair(t, client, server)
}

// The first abort code per direction wins; send and receive codes are
// independent (MsQuic's DataTest QuicTestStreamDifferentAbortErrors).
func TestAbortCodesPerDirection(t *testing.T) {
	f := newFixture(t, with(1, 0))
	client, server := connectPair(t, f)
	s, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, s.Send([][]byte{[]byte("x")}, quicx.SendStart, nil))
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	r := expectNext[*quicx.Receive](t, ps.Stream.Events())
	r.Complete(1)

	must(t, s.Shutdown(quicx.StreamShutdownAbortSend, 0x1234567890))
	must(t, s.Shutdown(quicx.StreamShutdownAbortSend, 7)) // ignored: the first code won
	must(t, s.Shutdown(quicx.StreamShutdownAbortReceive, 0x9876543210))
	if err := s.Shutdown(quicx.StreamShutdownGraceful|quicx.StreamShutdownAbortSend, 0); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("graceful with abort: %v", err)
	}
	if err := s.Shutdown(quicx.StreamShutdownImmediate|quicx.StreamShutdownAbortSend, 0); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("immediate without both aborts: %v", err)
	}
	cevs := drain(t, s.Events())
	expectTypes(t, cevs, "StartComplete", "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
	pevs := drain(t, ps.Stream.Events())
	var sendAborted, recvAborted uint64
	for _, ev := range pevs {
		switch e := ev.(type) {
		case *quicx.PeerSendAborted:
			sendAborted = e.ErrorCode
		case *quicx.PeerReceiveAborted:
			recvAborted = e.ErrorCode
		}
	}
	if sendAborted != 0x1234567890 || recvAborted != 0x9876543210 {
		t.Errorf("peer saw send %#x receive %#x:\n%s", sendAborted, recvAborted, timelineOf(pevs))
	}
	must(t, s.Close())
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}

// STOP_SENDING: PeerReceiveAborted, the send direction aborted, later sends
// refused with ErrAborted; pending sends complete as canceled first.
func TestSendAfterStopSending(t *testing.T) {
	f := newFixture(t, with(1, 0))
	client, server := connectPair(t, f)
	s, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, s.Send([][]byte{[]byte("x")}, quicx.SendStart, "first"))
	expectNext[*quicx.StartComplete](t, s.Events())
	expectNext[*quicx.SendComplete](t, s.Events())
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	must(t, ps.Stream.Shutdown(quicx.StreamShutdownAbortReceive, 5))
	e := expectNext[*quicx.PeerReceiveAborted](t, s.Events())
	if e.ErrorCode != 5 {
		t.Errorf("%v", e)
	}
	if g := expectNext[*quicx.SendShutdownComplete](t, s.Events()); g.Graceful {
		t.Errorf("%v", g)
	}
	if err := s.Send([][]byte{[]byte("y")}, quicx.SendNone, nil); !errors.Is(err, quicx.ErrAborted) {
		t.Errorf("send after STOP_SENDING: %v", err)
	}
	must(t, s.Shutdown(quicx.StreamShutdownAbortReceive, 0))
	expectTypes(t, drain(t, s.Events()), "StreamShutdownComplete")
	// The peer's receive was aborted locally: no PeerSendAborted for it (quic-go
	// resets with the STOP_SENDING code).
	pevs := drain(t, ps.Stream.Events())
	for _, ev := range pevs {
		if _, ok := ev.(*quicx.PeerSendAborted); ok {
			t.Errorf("PeerSendAborted after a local receive abort:\n%s", timelineOf(pevs))
		}
	}
	must(t, s.Close())
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}

// FAIL_BLOCKED over the peer's limit: StreamLimitReached, the only event; with
// SHUTDOWN_ON_FAIL a StreamShutdownComplete follows.
func TestStartFailBlocked(t *testing.T) {
	f := newFixture(t, with(1, 0))
	client, server := connectPair(t, f)
	a, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, a.Start(quicx.StreamStartFailBlocked))
	if sc := expectNext[*quicx.StartComplete](t, a.Events()); sc.Status != nil || sc.ID != 0 || !sc.PeerAccepted {
		t.Fatalf("%v", sc)
	}
	b, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, b.Start(quicx.StreamStartFailBlocked))
	if sc := expectNext[*quicx.StartComplete](t, b.Events()); !errors.Is(sc.Status, quicx.ErrStreamLimitReached) {
		t.Fatalf("%v", sc)
	}
	if _, err := b.ID(); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("ID after a failed start: %v", err)
	}
	must(t, b.Close())
	expectTypes(t, drain(t, b.Events()))

	c, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, c.Start(quicx.StreamStartFailBlocked|quicx.StreamStartShutdownOnFail))
	evs := drain(t, c.Events())
	expectTypes(t, evs, "StartComplete", "StreamShutdownComplete")
	must(t, c.Close())
	if err := a.Start(quicx.StreamStartNone); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("start twice: %v", err)
	}
	if err := a.Start(quicx.StreamStartImmediate); !errors.Is(err, quicx.ErrNotSupported) {
		t.Errorf("IMMEDIATE: %v", err)
	}
	must(t, a.Close())
	drain(t, a.Events())
	closePair(t, client, server)
}

// Over the peer's limit without FAIL_BLOCKED: the stream gets its ID at once
// (StartComplete PeerAccepted=false), sends wait, and PeerAccepted follows when
// the peer returns credit.
func TestIndicatePeerAccept(t *testing.T) {
	f := newFixture(t, with(1, 0))
	client, server := connectPair(t, f)
	a, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, a.Send([][]byte{[]byte("a")}, quicx.SendStart|quicx.SendFin, nil))
	b, err := client.OpenStream(quicx.StreamOpenNone)
	must(t, err)
	must(t, b.Send([][]byte{[]byte("b")}, quicx.SendFin, "b"))
	must(t, b.Start(quicx.StreamStartIndicatePeerAccept))
	sc := expectNext[*quicx.StartComplete](t, b.Events())
	if sc.Status != nil || sc.ID != 4 || sc.PeerAccepted {
		t.Fatalf("%v", sc)
	}
	// Finish stream a on the server: its credit comes back.
	// (The server, subscribed to stream-credit events, also sees PeerNeedsStreams.)
	pa := waitFor[*quicx.PeerStreamStarted](t, server.Events())
	must(t, pa.Stream.Shutdown(quicx.StreamShutdownGraceful, 0)) // the server's side ends too
	if _, data := drainStream(t, pa.Stream); string(data) != "a" {
		t.Fatalf("got %q", data)
	}
	must(t, pa.Stream.Close())
	for _, want := range []string{"SendComplete", "PeerAccepted"} {
		ev := next(t, b.Events())
		if got := typeNames([]quicx.StreamEvent{ev})[0]; got != want {
			t.Fatalf("got %v want %s", ev, want)
		}
	}
	pb := waitFor[*quicx.PeerStreamStarted](t, server.Events())
	if id, _ := pb.Stream.ID(); id != 4 {
		t.Errorf("server got stream %d", id)
	}
	r := expectNext[*quicx.Receive](t, pb.Stream.Events())
	if string(r.Buffers[0]) != "b" {
		t.Errorf("got %q", r.Buffers)
	}
	r.Complete(1)
	for _, s := range []*quicx.Stream{a, b, pb.Stream} {
		must(t, s.Close())
		drain(t, s.Events())
	}
	closePair(t, client, server)
}

// A stream closed before it starts is abandoned: no events, nothing on the
// wire (the next stream still gets ID 0).
func TestCloseUnstartedStreamAbandonsIt(t *testing.T) {
	f := newFixture(t, with(0, 1))
	client, server := connectPair(t, f)
	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	must(t, s.Send([][]byte{[]byte("never")}, quicx.SendFin, nil))
	must(t, s.Shutdown(quicx.StreamShutdownAbortSend, 3))
	must(t, s.Close())
	expectTypes(t, drain(t, s.Events()))
	if err := s.Start(quicx.StreamStartNone); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("start after close: %v", err)
	}
	cs, ss := uniPair(t, client, server, "first", true)
	if id, _ := ss.ID(); id != 2 {
		t.Errorf("first uni stream on the wire has ID %d", id)
	}
	_, data := drainStream(t, ss)
	if string(data) != "first" {
		t.Errorf("got %q", data)
	}
	drain(t, cs.Events())
	must(t, cs.Close())
	must(t, ss.Close())
	closePair(t, client, server)
}

// Non-buffered mode (SendBufferingEnabled Off): the app's buffers are held
// until the peer acknowledged them; every send completes once, in order.
func TestNonBufferedSendCompletesAfterAck(t *testing.T) {
	settings := quicx.Settings{PeerUnidiStreamCount: 1, SendBufferingEnabled: quicx.Off}
	f := newFixture(t, settings)
	client, server := connectPair(t, f)
	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	for i := range 4 {
		flags := quicx.SendNone
		if i == 0 {
			flags |= quicx.SendStart
		}
		if i == 3 {
			flags |= quicx.SendFin
		}
		must(t, s.Send([][]byte{payload}, flags, i))
	}
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	received := make(chan int, 1)
	go func() { received <- consume(ps.Stream) }()
	evs := drain(t, s.Events())
	expectTypes(t, evs, "StartComplete", "SendComplete", "SendComplete", "SendComplete", "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
	for i, ev := range evs[1:5] {
		if sc := ev.(*quicx.SendComplete); sc.Canceled || sc.Context != i {
			t.Errorf("%v", sc)
		}
	}
	if n := <-received; n != 4*len(payload) {
		t.Errorf("received %d bytes", n)
	}
	must(t, s.Close())
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}

// consume completes every receive of s until its events end and returns the
// byte count. It reports nothing itself, so it may run on any goroutine.
func consume(s *quicx.Stream) int {
	n := 0
	for ev := range s.Events() {
		if r, ok := ev.(*quicx.Receive); ok {
			n += int(r.TotalLength())
			r.Complete(r.TotalLength())
		}
	}
	return n
}

// Multi-receive mode: several Receive events outstanding; completion is
// counted per stream.
func TestMultiReceive(t *testing.T) {
	settings := quicx.Settings{PeerUnidiStreamCount: 1, StreamMultiReceiveEnabled: true}
	f := newFixture(t, settings)
	client, server := connectPair(t, f)
	s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
	must(t, err)
	payload := bytes.Repeat([]byte("x"), 100<<10)
	must(t, s.Send([][]byte{payload}, quicx.SendStart|quicx.SendFin, nil))
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	var got []byte
	receives := 0
	for {
		r := expectNext[*quicx.Receive](t, ps.Stream.Events())
		receives++
		if r.AbsoluteOffset != uint64(len(got)) {
			t.Fatalf("offset %d, have %d", r.AbsoluteOffset, len(got))
		}
		got = append(got, bytes.Join(r.Buffers, nil)...)
		if r.Flags&quicx.ReceiveFin != 0 {
			break // nothing completed so far: several receives were outstanding
		}
	}
	if !bytes.Equal(got, payload) || receives < 2 {
		t.Fatalf("%d bytes in %d receives", len(got), receives)
	}
	ps.Stream.ReceiveComplete(uint64(len(got)))
	expectTypes(t, drain(t, ps.Stream.Events()), "PeerSendShutdown", "StreamShutdownComplete")
	drain(t, s.Events())
	must(t, s.Close())
	must(t, ps.Stream.Close())
	closePair(t, client, server)
}

// App-owned buffers on a local stream: the response lands in the app's
// memory; with no space left, ReceiveBufferNeeded.
func TestAppOwnedBuffers(t *testing.T) {
	f := newFixture(t, with(1, 0))
	client, server := connectPair(t, f)
	s, err := client.OpenStream(quicx.StreamOpenAppOwnedBuffers)
	must(t, err)
	mine := make([]byte, 4)
	must(t, s.ProvideReceiveBuffers([][]byte{mine}))
	must(t, s.Send([][]byte{[]byte("request")}, quicx.SendStart|quicx.SendFin, nil))
	ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
	must(t, ps.Stream.Send([][]byte{[]byte("0123456789")}, quicx.SendFin, nil))
	var got []byte
	var receives []*quicx.Receive
	for {
		ev := next(t, s.Events())
		switch e := ev.(type) {
		case *quicx.Receive:
			for _, b := range e.Buffers {
				got = append(got, b...)
			}
			if len(receives) == 0 && len(e.Buffers) > 0 && &e.Buffers[0][0] != &mine[0] {
				t.Error("the first data did not land in the app's buffer")
			}
			receives = append(receives, e)
			fin := e.Flags&quicx.ReceiveFin != 0
			e.Complete(e.TotalLength())
			if fin {
				goto done
			}
		case *quicx.ReceiveBufferNeeded:
			must(t, s.ProvideReceiveBuffers([][]byte{make([]byte, 16)}))
		case *quicx.StartComplete, *quicx.SendComplete, *quicx.SendShutdownComplete:
		default:
			t.Fatalf("unexpected %v", ev)
		}
	}
done:
	if string(got) != "0123456789" || string(mine) != "0123" {
		t.Errorf("got %q, first app buffer %q", got, mine)
	}
	evs := drain(t, s.Events())
	if n := len(evs); n == 0 || typeNames(evs[n-1:])[0] != "StreamShutdownComplete" {
		t.Errorf("events:\n%s", timelineOf(evs))
	}
	consume(ps.Stream)
	must(t, s.Close())
	must(t, ps.Stream.Close())
	if err := ps.Stream.ProvideReceiveBuffers([][]byte{mine}); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("on a closed stream: %v", err)
	}
	closePair(t, client, server)
}

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

// Sends queued before Start reach quic-go when the stream starts, in order: a
// send of several buffers is joined, DELAY_SEND data waits for a later send,
// and every send completes exactly once, in both buffering modes.
func TestSendsQueuedBeforeStart(t *testing.T) {
	for _, buffering := range []quicx.Toggle{quicx.On, quicx.Off} {
		t.Run(buffering.String(), func(t *testing.T) {
			f := newFixture(t, quicx.Settings{PeerUnidiStreamCount: 1, SendBufferingEnabled: buffering})
			client, server := connectPair(t, f)
			s, err := client.OpenStream(quicx.StreamOpenUnidirectional)
			must(t, err)
			must(t, s.Send([][]byte{[]byte("a"), []byte("b")}, quicx.SendNone, 0))
			must(t, s.Send([][]byte{[]byte("c")}, quicx.SendDelaySend, 1))
			must(t, s.Start(quicx.StreamStartNone))
			ps := expectNext[*quicx.PeerStreamStarted](t, server.Events())
			r := expectNext[*quicx.Receive](t, ps.Stream.Events())
			if got := string(bytes.Join(r.Buffers, nil)); got != "ab" || r.Flags&quicx.ReceiveFin != 0 {
				t.Fatalf("first receive %q %v: want \"ab\" without FIN (\"c\" is delayed)", got, r.Flags)
			}
			r.Complete(r.TotalLength())
			must(t, s.Send([][]byte{[]byte("d")}, quicx.SendFin, 2))
			_, data := drainStream(t, ps.Stream)
			if string(data) != "cd" {
				t.Errorf("rest of the stream %q, want \"cd\"", data)
			}
			evs := drain(t, s.Events())
			expectTypes(t, evs, "StartComplete", "SendComplete", "SendComplete", "SendComplete", "SendShutdownComplete", "StreamShutdownComplete")
			for i, ev := range evs[1:4] {
				if sc := ev.(*quicx.SendComplete); sc.Canceled || sc.Context != i {
					t.Errorf("%v", sc)
				}
			}
			must(t, s.Close())
			must(t, ps.Stream.Close())
			closePair(t, client, server)
		})
	}
}
