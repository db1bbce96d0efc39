package quicxtest

import (
	"errors"
	"fmt"
	"sync"

	"quicx.dev/quicx"
)

// errDrained is the reason Drain gives when it rejects a connection.
var errDrained = errors.New("quicxtest: rejected while draining")

// Drain reads ch until it is closed and returns the events' string forms, in
// order. It answers what waits for an answer so that nothing hangs: a Receive
// is completed in full, a NewConnection rejected, a PeerCertificateReceived
// refused; the stream of a PeerStreamStarted is closed and drained too, and
// Drain returns only when those streams are drained. It does not close the
// object that owns ch: close it first, or Drain waits for its natural end.
func Drain[E fmt.Stringer](ch <-chan E) []string {
	var (
		out []string
		wg  sync.WaitGroup
	)
	for ev := range ch {
		out = append(out, ev.String())
		answerForDrain(any(ev), &wg)
	}
	wg.Wait()
	return out
}

func answerForDrain(ev any, wg *sync.WaitGroup) {
	switch e := ev.(type) {
	case *quicx.Receive:
		e.Complete(e.TotalLength())
	case *quicx.NewConnection:
		e.Reject(errDrained)
	case *quicx.PeerCertificateReceived:
		e.Complete(false)
	case *quicx.PeerStreamStarted:
		if s := e.Stream; s != nil {
			_ = s.Close()
			wg.Go(func() { Drain(s.Events()) })
		}
	}
}

// ReadAll reads a stream's events until the channel is closed, completing
// every Receive in full, and returns the bytes received, in order, with the
// events' string forms. It checks that each Receive starts where the previous
// one ended.
func ReadAll(ch <-chan quicx.StreamEvent) ([]byte, []string, error) {
	var (
		data     []byte
		timeline []string
		err      error
	)
	for ev := range ch {
		timeline = append(timeline, ev.String())
		if r, ok := ev.(*quicx.Receive); ok {
			if r.AbsoluteOffset != uint64(len(data)) && err == nil {
				err = fmt.Errorf("quicxtest: Receive at offset %d after %d bytes", r.AbsoluteOffset, len(data))
			}
			for _, b := range r.Buffers {
				data = append(data, b...)
			}
			r.Complete(r.TotalLength())
		}
	}
	return data, timeline, err
}
