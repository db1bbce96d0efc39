package quicxtest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

func connEvents(evs ...quicx.ConnectionEvent) <-chan quicx.ConnectionEvent {
	return quicxtest.Feed(evs...)
}

func TestExpectPartialAndExact(t *testing.T) {
	w := quicxtest.NewWatcher(connEvents(
		&quicx.StreamsAvailable{BidirectionalCount: 1},
		&quicx.Connected{NegotiatedALPN: "h3"},
		&quicx.PeerNeedsStreams{Bidirectional: true},
		&quicx.ShutdownInitiatedByPeer{ErrorCode: 7},
		&quicx.ConnectionShutdownComplete{HandshakeCompleted: true},
	))
	got, err := w.Expect(
		quicxtest.Match(func(e *quicx.Connected) bool { return e.NegotiatedALPN == "h3" }),
		quicxtest.Type[*quicx.ShutdownInitiatedByPeer](),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].(*quicx.ShutdownInitiatedByPeer).ErrorCode != 7 {
		t.Errorf("matched %v", got)
	}
	if _, err := w.ExpectExactly(quicxtest.Equal(&quicx.ConnectionShutdownComplete{HandshakeCompleted: true})); err != nil {
		t.Fatal(err)
	}
	if err := w.ExpectClosed(); err != nil {
		t.Fatal(err)
	}
	if n := len(w.Events()); n != 5 {
		t.Errorf("observed %d events", n)
	}
}

func TestExpectExactlyMismatchShowsTimeline(t *testing.T) {
	w := quicxtest.NewWatcher(connEvents(
		&quicx.Connected{},
		&quicx.PeerNeedsStreams{},
		&quicx.ConnectionShutdownComplete{},
	))
	<-w.Done() // every event observed: the timeline is complete
	_, err := w.ExpectExactly(quicxtest.Type[*quicx.Connected](), quicxtest.Type[*quicx.ConnectionShutdownComplete]())
	var ee *quicxtest.ExpectError
	if !errors.As(err, &ee) || !errors.Is(err, quicxtest.ErrMismatch) {
		t.Fatalf("err = %v", err)
	}
	if ee.Op != "ExpectExactly" || len(ee.Missing) != 1 || ee.Missing[0] != "*quicx.ConnectionShutdownComplete" {
		t.Errorf("%+v", ee)
	}
	for _, want := range []string{
		"  0",
		"Connected{resumed=false",
		"→  1",
		"PeerNeedsStreams{bidi=false}",
		"ConnectionShutdownComplete{handshake=false",
		"(channel closed)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%v", want, err)
		}
	}
}

func TestExpectFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan quicx.StreamEvent, 4)
		w := quicxtest.NewWatcher(ch)
		ch <- &quicx.StartComplete{ID: 4}
		start := time.Now()
		_, err := w.Expect(quicxtest.Type[*quicx.PeerSendShutdown]())
		if !errors.Is(err, quicxtest.ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d != quicxtest.DefaultTimeout {
			t.Errorf("gave up after %v", d)
		}
		if !strings.Contains(err.Error(), "StartComplete{status=SUCCESS id=4") {
			t.Errorf("timeline missing:\n%v", err)
		}

		w.SetTimeout(time.Second)
		_, err = w.Expect(quicxtest.Type[*quicx.Connected]())
		if !errors.Is(err, quicxtest.ErrNeverMatches) {
			t.Errorf("a connection event on a stream channel: %v", err)
		}

		ch <- &quicx.SendComplete{Context: "a"}
		_, err = w.Expect(quicxtest.Check(func(e *quicx.SendComplete) error {
			if e.Context != "b" {
				return fmt.Errorf("context %v", e.Context)
			}
			return nil
		}))
		var ee *quicxtest.ExpectError
		if !errors.As(err, &ee) || !errors.Is(err, quicxtest.ErrTimeout) || !strings.Contains(ee.Got, "context a") {
			t.Errorf("the check's reason is not reported: %v", err)
		}

		ch <- &quicx.StreamShutdownComplete{}
		close(ch)
		if _, err := w.Expect(quicxtest.Type[*quicx.PeerAccepted]()); !errors.Is(err, quicxtest.ErrClosed) {
			t.Errorf("after close: %v", err)
		}
		<-w.Done()
	})
}

func TestExpectClosedWithEventLeft(t *testing.T) {
	w := quicxtest.NewWatcher(quicxtest.Feed[quicx.ListenerEvent](&quicx.ListenerStopComplete{}))
	if err := w.ExpectClosed(); !errors.Is(err, quicxtest.ErrMismatch) {
		t.Errorf("err = %v", err)
	}
}

func TestEqual(t *testing.T) {
	for _, c := range []struct {
		m    quicxtest.Matcher
		ev   quicx.ConnectionEvent
		want bool
	}{
		{quicxtest.Equal(&quicx.ShutdownInitiatedByTransport{Status: quicx.ErrConnectionIdle, ErrorCode: 1}),
			&quicx.ShutdownInitiatedByTransport{Status: fmt.Errorf("wrapped: %w", quicx.ErrConnectionIdle), ErrorCode: 1}, true},
		{quicxtest.Equal(&quicx.ShutdownInitiatedByTransport{Status: quicx.ErrConnectionIdle, ErrorCode: 1}),
			&quicx.ShutdownInitiatedByTransport{Status: quicx.ErrAborted, ErrorCode: 1}, false},
		{quicxtest.Equal(&quicx.DatagramReceived{Buffer: []byte("x")}), &quicx.DatagramReceived{Buffer: []byte("x")}, true},
		{quicxtest.Equal(&quicx.DatagramReceived{Buffer: []byte("x")}), &quicx.DatagramReceived{Buffer: []byte("y")}, false},
		{quicxtest.Equal(&quicx.PeerStreamStarted{}), &quicx.PeerStreamStarted{Stream: new(quicx.Stream)}, false},
		{quicxtest.Any(), &quicx.Resumed{}, true},
	} {
		w := quicxtest.NewWatcher(connEvents(c.ev))
		_, err := w.ExpectExactly(c.m)
		if (err == nil) != c.want {
			t.Errorf("%v against %v: %v", c.m, c.ev, err)
		}
	}
}

func TestAwaitAndCompleteReceives(t *testing.T) {
	r1, c1 := quicxtest.NewReceive(0, quicx.ReceiveNone, []byte("hel"), []byte("lo"))
	r2, c2 := quicxtest.NewReceive(5, quicx.ReceiveFin)
	w := quicxtest.NewWatcher(quicxtest.Feed[quicx.StreamEvent](
		&quicx.StartComplete{}, r1, r2, &quicx.PeerSendShutdown{}, &quicx.StreamShutdownComplete{}),
		quicxtest.CompleteReceives())
	fin, err := quicxtest.Await[*quicx.PeerSendShutdown](w)
	if err != nil || fin == nil {
		t.Fatal(err)
	}
	if n, ok := c1.Completed(); !ok || n != 5 {
		t.Errorf("first receive completed %d, %v", n, ok)
	}
	if n, ok := c2.Completed(); !ok || n != 0 {
		t.Errorf("FIN receive completed %d, %v", n, ok)
	}
	if got := string(w.Received()); got != "hello" {
		t.Errorf("received %q", got)
	}
}
