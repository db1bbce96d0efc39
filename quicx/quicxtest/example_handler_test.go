package quicxtest_test

import (
	"context"
	"fmt"
	"os"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// stream is the part of *quicx.Stream the echo handler below uses. A handler
// that depends on such an interface, rather than on *quicx.Stream, can be
// handed a *quicxtest.FakeStream in its unit tests.
type stream interface {
	Send(bufs [][]byte, flags quicx.SendFlags, ctx any) error
	Shutdown(flags quicx.StreamShutdownFlags, code uint64) error
	Close() error
}

// echo is a stream handler written the way quicx's users write them: a
// select loop over the stream's events. It sends back everything it receives,
// and its FIN after the peer's, and returns the number of bytes it echoed
// when the channel closes, or ctx's error.
func echo(ctx context.Context, s stream, events <-chan quicx.StreamEvent) (int, error) {
	echoed := 0
	for {
		select {
		case <-ctx.Done():
			return echoed, ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return echoed, nil
			}
			switch e := ev.(type) {
			case *quicx.Receive:
				var data []byte
				for _, b := range e.Buffers {
					data = append(data, b...)
				}
				flags := quicx.SendNone
				if e.Flags&quicx.ReceiveFin != 0 {
					flags = quicx.SendFin
				}
				e.Complete(e.TotalLength())
				if len(data) > 0 || flags != quicx.SendNone {
					if err := s.Send([][]byte{data}, flags, len(data)); err != nil {
						return echoed, err
					}
				}
				echoed += len(data)
			case *quicx.PeerSendAborted:
				_ = s.Shutdown(quicx.StreamShutdownAbortSend, e.ErrorCode)
			case *quicx.StreamShutdownComplete:
				_ = s.Close()
			}
		}
	}
}

// The echo handler, unit-tested with fakes: no network, every event and every
// answer under the test's control.
func Example_handlerWithFakes() {
	s := quicxtest.NewFakeStream(0, 0)
	done := make(chan int)
	go func() {
		n, _ := echo(context.Background(), s, s.Events())
		done <- n
	}()

	hello := s.Receive([]byte("hello, "), false)
	<-hello.Done() // the handler completed the receive
	n, _ := hello.Completed()
	fmt.Println("completed", n, "bytes")
	s.Receive([]byte("quicx"), true)
	s.Push(&quicx.SendComplete{Context: 7}, &quicx.SendShutdownComplete{Graceful: true})
	s.End(nil)

	fmt.Println("echoed", <-done, "bytes")
	for _, call := range s.Calls() {
		fmt.Println(call)
	}
	// Output:
	// completed 7 bytes
	// echoed 12 bytes
	// Send("hello, ", NONE)
	// Send("quicx", FIN)
	// Close()
}

// The echo handler, driven by a recording of a real stream (made by
// TestEchoRecording over the simulated network): the handler sees the events
// the real stream raised, in their order, and its answers are compared with
// the answers recorded against the real peer.
func Example_handlerWithReplay() {
	f, err := os.Open("testdata/echo.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	rec, err := quicxtest.ReadRecording(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	replay, err := quicxtest.NewReplay[quicx.StreamEvent](context.Background(), rec, "echo", quicxtest.ReplayOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := quicxtest.NewFakeStream(0, 0)
	n, err := echo(context.Background(), s, replay.Events())
	fmt.Println("echoed", n, "bytes, error:", err)
	fmt.Printf("sent back %q\n", s.Sent())
	fmt.Println("divergences from the recorded answers:", replay.Divergences())
	// Output:
	// echoed 11 bytes, error: <nil>
	// sent back "hello world"
	// divergences from the recorded answers: []
}
