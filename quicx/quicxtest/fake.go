package quicxtest

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"

	"quicx.dev/quicx"
)

// ---- observable answers ----

// firstAnswer keeps the first of the answers given to an event and closes done
// with it; later answers are ignored, as quicx ignores them.
type firstAnswer[T any] struct {
	mu     sync.Mutex
	v      T
	called bool
	done   chan struct{}
}

func (a *firstAnswer[T]) init() { a.done = make(chan struct{}) }

func (a *firstAnswer[T]) set(v T) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.called {
		return
	}
	a.v, a.called = v, true
	close(a.done)
}

func (a *firstAnswer[T]) get() (T, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.v, a.called
}

// Completion observes the Complete call on a Receive built by NewReceive,
// FakeStream.Receive or a Replay. quicx passes on only the first call, clamped
// to the bytes indicated.
type Completion struct{ a firstAnswer[uint64] }

func newCompletion() *Completion {
	c := &Completion{}
	c.a.init()
	return c
}

func (c *Completion) complete(n uint64) { c.a.set(n) }

// Completed reports the bytes the consumer completed, and whether it did.
func (c *Completion) Completed() (n uint64, ok bool) { return c.a.get() }

// Done is closed when the receive is completed.
func (c *Completion) Done() <-chan struct{} { return c.a.done }

// NewReceive builds a Receive event carrying bufs at offset, whose Complete
// is observed by the returned Completion.
func NewReceive(offset uint64, flags quicx.ReceiveFlags, bufs ...[]byte) (*quicx.Receive, *Completion) {
	c := newCompletion()
	return quicx.NewReceiveEvent(offset, bufs, flags, c.complete), c
}

// Decision observes the answer to a NewConnection built by
// NewConnectionEvent or a Replay. It implements quicx.NewConnectionAnswer
// with quicx's rules: one decision only (ErrInvalidState after), and Accept
// needs a configuration (ErrInvalidParameter for nil).
type Decision struct {
	mu       sync.Mutex
	answered bool
	cfg      *quicx.Configuration
	reason   error
	done     chan struct{}
}

func newDecision() *Decision { return &Decision{done: make(chan struct{})} }

// errRejected is the reason a Decision records for Reject(nil), as quicx does.
var errRejected = errors.New("quicx: rejected by the application")

// AcceptConnection implements quicx.NewConnectionAnswer.
func (d *Decision) AcceptConnection(cfg *quicx.Configuration) error {
	if cfg == nil {
		return fmt.Errorf("quicxtest: NewConnection.Accept(nil): %w", quicx.ErrInvalidParameter)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.answered {
		return fmt.Errorf("quicxtest: NewConnection already answered: %w", quicx.ErrInvalidState)
	}
	d.answered, d.cfg = true, cfg
	close(d.done)
	return nil
}

// RejectConnection implements quicx.NewConnectionAnswer.
func (d *Decision) RejectConnection(reason error) {
	if reason == nil {
		reason = errRejected
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.answered {
		return
	}
	d.answered, d.reason = true, reason
	close(d.done)
}

// Accepted returns the configuration the connection was accepted with, if it
// was accepted.
func (d *Decision) Accepted() (cfg *quicx.Configuration, accepted bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg, d.cfg != nil
}

// Rejected returns the reason the connection was rejected with, if it was
// rejected (Reject(nil) records a generic reason).
func (d *Decision) Rejected() (reason error, rejected bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reason, d.reason != nil
}

// Done is closed when the connection is accepted or rejected.
func (d *Decision) Done() <-chan struct{} { return d.done }

// NewConnectionEvent builds a NewConnection event whose Accept and Reject are
// observed by the returned Decision. conn may be nil when the consumer under
// test does not use it.
func NewConnectionEvent(info quicx.NewConnectionInfo, conn *quicx.Connection) (*quicx.NewConnection, *Decision) {
	d := newDecision()
	return quicx.NewNewConnectionEvent(info, conn, d), d
}

// CertificateDecision observes the Complete call on a PeerCertificateReceived
// built by NewPeerCertificateEvent or a Replay; only the first call counts.
type CertificateDecision struct{ a firstAnswer[bool] }

func newCertificateDecision() *CertificateDecision {
	d := &CertificateDecision{}
	d.a.init()
	return d
}

func (d *CertificateDecision) complete(accept bool) { d.a.set(accept) }

// Completed reports whether the certificate was accepted, and whether
// Complete was called at all.
func (d *CertificateDecision) Completed() (accept, ok bool) { return d.a.get() }

// Done is closed when Complete is called.
func (d *CertificateDecision) Done() <-chan struct{} { return d.a.done }

// NewPeerCertificateEvent builds a PeerCertificateReceived event whose
// Complete is observed by the returned CertificateDecision.
func NewPeerCertificateEvent(leaf *x509.Certificate, chain []*x509.Certificate, deferred error) (*quicx.PeerCertificateReceived, *CertificateDecision) {
	d := newCertificateDecision()
	return quicx.NewPeerCertificateReceivedEvent(leaf, chain, deferred, d.complete), d
}

// Feed returns a channel holding events, in order, closed after the last: the
// whole life of an object for a consumer that reads until the channel closes.
func Feed[E any](events ...E) <-chan E {
	ch := make(chan E, len(events))
	for _, e := range events {
		ch <- e
	}
	close(ch)
	return ch
}

// ---- a fake stream ----

// FakeSend is one call to FakeStream.Send.
type FakeSend struct {
	Data    []byte // the buffers, concatenated (copied at the call)
	Flags   quicx.SendFlags
	Context any
}

// FakeStream stands in for a *quicx.Stream in a handler's unit test: it has
// the methods a handler calls on a stream (Send, Shutdown, Close,
// SetReceiveEnabled, ReceiveComplete, ID), records every call, and delivers
// the events the test pushes on its Events channel. Write the handler against
// a small interface of the methods it uses; *quicx.Stream and *FakeStream
// both satisfy it.
//
// FakeStream does not re-implement quicx's stream state machine: it raises no
// event by itself (push SendComplete, StreamShutdownComplete … as the test
// needs them). Its only rule is quicx's for closed handles: after Close every
// method returns an error matching quicx.ErrInvalidState.
type FakeStream struct {
	id uint64
	ch chan quicx.StreamEvent

	mu      sync.Mutex
	offset  uint64
	sends   []FakeSend
	calls   []string
	closed  bool
	pending *quicx.Receive
}

// NewFakeStream returns a fake stream with the given ID whose Events channel
// has capacity buffer slots (0 for unbuffered).
func NewFakeStream(id uint64, buffer int) *FakeStream {
	return &FakeStream{id: id, ch: make(chan quicx.StreamEvent, buffer)}
}

// Events returns the channel the test's pushed events arrive on.
func (s *FakeStream) Events() <-chan quicx.StreamEvent { return s.ch }

func (s *FakeStream) record(op string, format string, args ...any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
	if s.closed && op != "Close" {
		return fmt.Errorf("quicxtest: FakeStream.%s on a closed stream: %w", op, quicx.ErrInvalidState)
	}
	return nil
}

// Send records a send; it never fails on an open stream.
func (s *FakeStream) Send(bufs [][]byte, flags quicx.SendFlags, ctx any) error {
	var data []byte
	for _, b := range bufs {
		data = append(data, b...)
	}
	if err := s.record("Send", "Send(%q, %s)", data, flags); err != nil {
		return err
	}
	s.mu.Lock()
	s.sends = append(s.sends, FakeSend{Data: data, Flags: flags, Context: ctx})
	s.mu.Unlock()
	return nil
}

// Shutdown records a shutdown.
func (s *FakeStream) Shutdown(flags quicx.StreamShutdownFlags, code uint64) error {
	return s.record("Shutdown", "Shutdown(%s, %#x)", flags, code)
}

// Close records the close; further calls of any method fail with
// quicx.ErrInvalidState, as on a real stream.
func (s *FakeStream) Close() error {
	s.mu.Lock()
	was := s.closed
	s.closed = true
	s.mu.Unlock()
	if was {
		_ = s.record("Close", "Close()")
		return fmt.Errorf("quicxtest: FakeStream.Close: already closed: %w", quicx.ErrInvalidState)
	}
	return s.record("Close", "Close()")
}

// SetReceiveEnabled records the call.
func (s *FakeStream) SetReceiveEnabled(enabled bool) error {
	return s.record("SetReceiveEnabled", "SetReceiveEnabled(%v)", enabled)
}

// ReceiveComplete completes the outstanding Receive pushed by Receive, as
// Stream.ReceiveComplete does, and records the call.
func (s *FakeStream) ReceiveComplete(n uint64) {
	_ = s.record("ReceiveComplete", "ReceiveComplete(%d)", n)
	s.mu.Lock()
	ev := s.pending
	s.mu.Unlock()
	if ev != nil {
		ev.Complete(n)
	}
}

// ID returns the stream ID given to NewFakeStream.
func (s *FakeStream) ID() (uint64, error) {
	if err := s.record("ID", "ID()"); err != nil {
		return 0, err
	}
	return s.id, nil
}

// Push delivers events on the Events channel, in order, waiting while the
// channel is full.
func (s *FakeStream) Push(evs ...quicx.StreamEvent) {
	for _, ev := range evs {
		s.ch <- ev
	}
}

// Receive pushes a Receive event carrying data (with ReceiveFin if fin) at
// the offset after the data pushed before, and returns its Completion. It
// waits while the channel is full.
func (s *FakeStream) Receive(data []byte, fin bool) *Completion {
	flags := quicx.ReceiveNone
	if fin {
		flags = quicx.ReceiveFin
	}
	s.mu.Lock()
	off := s.offset
	s.offset += uint64(len(data))
	s.mu.Unlock()
	var bufs [][]byte
	if len(data) > 0 {
		bufs = [][]byte{data}
	}
	c := newCompletion()
	ev := quicx.NewReceiveEvent(off, bufs, flags, c.complete)
	s.mu.Lock()
	s.pending = ev
	s.mu.Unlock()
	s.Push(ev)
	return c
}

// End pushes a StreamShutdownComplete (final, if given, or the zero one) and
// closes the Events channel, as quicx ends a stream's channel. Call it once.
func (s *FakeStream) End(final *quicx.StreamShutdownComplete) {
	if final == nil {
		final = &quicx.StreamShutdownComplete{}
	}
	s.Push(final)
	close(s.ch)
}

// Sends returns every send, in order.
func (s *FakeStream) Sends() []FakeSend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FakeSend(nil), s.sends...)
}

// Sent returns the bytes of every send, concatenated.
func (s *FakeStream) Sent() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []byte
	for _, snd := range s.sends {
		out = append(out, snd.Data...)
	}
	return out
}

// Calls returns every method call the handler made, in order, as text such
// as `Send("hi", FIN)` or `Close()`.
func (s *FakeStream) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// String renders the calls, one per line.
func (s *FakeStream) String() string { return strings.Join(s.Calls(), "\n") }
