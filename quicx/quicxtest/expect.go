package quicxtest

import (
	"crypto/x509"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"quicx.dev/quicx"
)

// DefaultTimeout is how long a Watcher waits for an event before giving up,
// unless SetTimeout says otherwise. Inside a testing/synctest bubble it is
// simulated time, so waiting costs nothing.
const DefaultTimeout = 10 * time.Second

// Errors an expectation fails with, inside an *ExpectError; test them with
// errors.Is.
var (
	// ErrTimeout: no event that matched arrived within the watcher's timeout.
	ErrTimeout = errors.New("quicxtest: timed out waiting for an event")
	// ErrClosed: the channel was closed before the expected events arrived.
	ErrClosed = errors.New("quicxtest: event channel closed")
	// ErrMismatch: ExpectExactly or ExpectClosed got an event other than the
	// one expected.
	ErrMismatch = errors.New("quicxtest: unexpected event")
	// ErrNeverMatches: a matcher's type can never be an event of the channel.
	ErrNeverMatches = errors.New("quicxtest: matcher can never match this channel's events")
)

// ExpectError is the error of a failed expectation. Its message carries the
// whole timeline the watcher observed, with a marker at the event where the
// expectation stopped.
type ExpectError struct {
	Op       string   // the Watcher method that failed
	Missing  []string // the matchers not satisfied, in order
	Got      string   // the offending event for ErrMismatch, or the last reason a matcher gave
	Err      error    // ErrTimeout, ErrClosed, ErrMismatch or ErrNeverMatches
	Timeline string   // every event observed so far, one per line
}

// Error describes the failure, with the timeline.
func (e *ExpectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Op, e.Err)
	if e.Got != "" {
		fmt.Fprintf(&b, ": %s", e.Got)
	}
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, "\nstill expected: %s", strings.Join(e.Missing, ", "))
	}
	fmt.Fprintf(&b, "\ntimeline (→ marks where the expectation stopped):\n%s", e.Timeline)
	return b.String()
}

// Unwrap returns Err.
func (e *ExpectError) Unwrap() error { return e.Err }

// ---- matchers ----

// Matcher decides whether one event is the one expected. Build matchers with
// Type, Match, Check, Equal and Any.
type Matcher struct {
	desc string
	typ  reflect.Type // nil: any type
	fn   func(ev any) error
}

// String describes what the matcher expects.
func (m Matcher) String() string { return m.desc }

// match reports nil if ev matches, or why not.
func (m Matcher) match(ev any) error {
	if m.typ != nil && (ev == nil || !reflect.TypeOf(ev).AssignableTo(m.typ)) {
		return fmt.Errorf("%T is not a %v", ev, m.typ)
	}
	if m.fn == nil {
		return nil
	}
	return m.fn(ev)
}

// canMatch reports whether an event of the interface type e could ever match.
func (m Matcher) canMatch(e reflect.Type) bool {
	if m.typ == nil {
		return true
	}
	if m.typ.Kind() == reflect.Interface {
		return true
	}
	return m.typ.Implements(e)
}

// Type matches any event of type T, such as *quicx.Connected.
func Type[T any]() Matcher {
	t := reflect.TypeFor[T]()
	return Matcher{desc: typeName(t), typ: t}
}

// Match matches an event of type T for which f returns true.
func Match[T any](f func(T) bool) Matcher {
	t := reflect.TypeFor[T]()
	return Matcher{desc: typeName(t) + " (predicate)", typ: t, fn: func(ev any) error {
		if !f(ev.(T)) {
			return fmt.Errorf("%v: predicate false", ev)
		}
		return nil
	}}
}

// Check matches an event of type T for which f returns nil; f's error says
// why an event does not match and appears in the failure.
func Check[T any](f func(T) error) Matcher {
	t := reflect.TypeFor[T]()
	return Matcher{desc: typeName(t) + " (check)", typ: t, fn: func(ev any) error {
		if err := f(ev.(T)); err != nil {
			return fmt.Errorf("%v: %w", ev, err)
		}
		return nil
	}}
}

// Equal matches an event equal to want, field by field: error fields match
// when errors.Is(got, want) (nil only nil), certificates by content, other
// pointers (a Stream, a Connection) by identity, everything else by
// reflect.DeepEqual. Unexported fields (the answer hooks) are ignored.
func Equal[T any](want T) Matcher {
	t := reflect.TypeFor[T]()
	desc := fmt.Sprint(want)
	return Matcher{desc: desc, typ: t, fn: func(ev any) error {
		if field, ok := equalFields(reflect.ValueOf(ev), reflect.ValueOf(want)); !ok {
			return fmt.Errorf("%v: %s differs from %v", ev, field, desc)
		}
		return nil
	}}
}

// Any matches any one event.
func Any() Matcher { return Matcher{desc: "any event"} }

func typeName(t reflect.Type) string { return t.String() }

var (
	errorType = reflect.TypeFor[error]()
	certType  = reflect.TypeFor[*x509.Certificate]()
)

// equalFields compares the exported fields of two events; it names the first
// field that differs.
func equalFields(got, want reflect.Value) (string, bool) {
	if got.Kind() == reflect.Pointer {
		if got.IsNil() || want.IsNil() {
			return "pointer", got.IsNil() == want.IsNil()
		}
		got, want = got.Elem(), want.Elem()
	}
	if got.Kind() != reflect.Struct {
		return "value", reflect.DeepEqual(got.Interface(), want.Interface())
	}
	t := got.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		g, w := got.Field(i), want.Field(i)
		switch {
		case f.Type == errorType:
			ge, _ := g.Interface().(error)
			we, _ := w.Interface().(error)
			if (we == nil && ge != nil) || (we != nil && !errors.Is(ge, we)) {
				return f.Name, false
			}
		case f.Type == certType:
			gc, _ := g.Interface().(*x509.Certificate)
			wc, _ := w.Interface().(*x509.Certificate)
			if (gc == nil) != (wc == nil) || (gc != nil && !gc.Equal(wc)) {
				return f.Name, false
			}
		case f.Type.Kind() == reflect.Pointer:
			if g.Pointer() != w.Pointer() {
				return f.Name, false
			}
		default:
			if !reflect.DeepEqual(g.Interface(), w.Interface()) {
				return f.Name, false
			}
		}
	}
	return "", true
}

// ---- watcher ----

// Watcher reads an event channel in the background from the moment it is
// created, so that it sees every event when it happens, and lets a test
// assert on the sequence. It is the channel's consumer: do not read the
// channel elsewhere. Events stay unanswered: complete a Receive, accept a
// NewConnection and so on from the test, on the events Expect and Next hand
// over.
//
// A Receive the test has completed belongs to quicx again, which reuses it for
// a later Receive: read its fields before completing it, not later through
// Events (the timeline keeps each event's text as it arrived).
//
// A watcher reads until the channel is closed; an object that is never closed
// keeps its watcher's goroutine alive (a leak goleak or synctest will report).
// All methods are safe for concurrent use.
type Watcher[E fmt.Stringer] struct {
	start time.Time
	etype reflect.Type

	auto bool // complete Receives

	mu      sync.Mutex
	data    []byte // what auto-completed Receives carried
	log     []Observed[E]
	cursor  int // index of the next event not yet consumed by an expectation
	closed  bool
	notify  chan struct{} // closed and replaced whenever something is observed
	done    chan struct{}
	timeout time.Duration
}

// Observed is one event a Watcher saw: when it arrived (since the watcher's
// origin), the event, and its text as it was on arrival.
type Observed[E any] struct {
	At    time.Duration
	Event E
	Text  string
}

// WatchOption changes what a Watcher does with the events it observes.
type WatchOption func(*watchOptions)

type watchOptions struct {
	completeReceives bool
	start            time.Time
}

// CompleteReceives makes the watcher complete every Receive in full as soon
// as it arrives, keeping the bytes (see Watcher.Received): for a stream whose
// data a test wants but whose flow control it does not drive itself. The
// watcher's log then holds a copy of each Receive, since quicx reuses the
// original once it is completed.
func CompleteReceives() WatchOption { return func(o *watchOptions) { o.completeReceives = true } }

// Since measures the watcher's timeline from t instead of from its creation,
// to line up the timelines of several watchers.
func Since(t time.Time) WatchOption { return func(o *watchOptions) { o.start = t } }

// NewWatcher starts watching ch. Its timeline's times are measured from now
// unless the Since option says otherwise.
func NewWatcher[E fmt.Stringer](ch <-chan E, opts ...WatchOption) *Watcher[E] {
	o := watchOptions{start: time.Now()}
	for _, opt := range opts {
		opt(&o)
	}
	w := &Watcher[E]{
		start:   o.start,
		auto:    o.completeReceives,
		etype:   reflect.TypeFor[E](),
		notify:  make(chan struct{}),
		done:    make(chan struct{}),
		timeout: DefaultTimeout,
	}
	go w.run(ch)
	return w
}

func (w *Watcher[E]) run(ch <-chan E) {
	for ev := range ch {
		at := time.Since(w.start)
		text := ev.String()
		r, complete := any(ev).(*quicx.Receive)
		complete = complete && w.auto
		kept := ev
		if complete {
			// quicx reuses a completed Receive: keep a copy of this one.
			bufs := make([][]byte, len(r.Buffers))
			for i, b := range r.Buffers {
				bufs[i] = append([]byte(nil), b...)
			}
			kept = any(quicx.NewReceiveEvent(r.AbsoluteOffset, bufs, r.Flags, nil)).(E)
		}
		w.mu.Lock()
		if complete {
			for _, b := range r.Buffers {
				w.data = append(w.data, b...)
			}
		}
		w.log = append(w.log, Observed[E]{At: at, Event: kept, Text: text})
		close(w.notify)
		w.notify = make(chan struct{})
		w.mu.Unlock()
		if complete {
			r.Complete(r.TotalLength())
		}
	}
	w.mu.Lock()
	w.closed = true
	close(w.notify)
	w.notify = make(chan struct{})
	w.mu.Unlock()
	close(w.done)
}

// Received returns the bytes of the Receive events the watcher completed
// itself (with the CompleteReceives option), in order.
func (w *Watcher[E]) Received() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]byte(nil), w.data...)
}

// SetTimeout sets how long Next and the Expect methods wait for an event
// (DefaultTimeout at first).
func (w *Watcher[E]) SetTimeout(d time.Duration) {
	w.mu.Lock()
	w.timeout = d
	w.mu.Unlock()
}

// Done is closed once the channel has been closed and every event read.
func (w *Watcher[E]) Done() <-chan struct{} { return w.done }

// Events returns every event observed so far, consumed or not.
func (w *Watcher[E]) Events() []E {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]E, len(w.log))
	for i, o := range w.log {
		out[i] = o.Event
	}
	return out
}

// Observed returns every event observed so far with its arrival time and
// text.
func (w *Watcher[E]) Observed() []Observed[E] {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Observed[E](nil), w.log...)
}

// Timeline renders every event observed so far, one per line, with the time
// since the watcher was created (simulated time in a synctest bubble).
func (w *Watcher[E]) Timeline() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.timelineLocked(-1)
}

func (w *Watcher[E]) timelineLocked(mark int) string {
	var b strings.Builder
	for i, o := range w.log {
		m := " "
		if i == mark {
			m = "→"
		}
		fmt.Fprintf(&b, "%s%3d %12s  %s\n", m, i, fmtOffset(o.At), o.Text)
	}
	switch {
	case w.closed && mark == len(w.log):
		b.WriteString("→    (channel closed)\n")
	case w.closed:
		b.WriteString("     (channel closed)\n")
	case mark == len(w.log):
		b.WriteString("→    (nothing more yet)\n")
	}
	return b.String()
}

func fmtOffset(d time.Duration) string { return "+" + d.String() }

// next waits for the event at the cursor; it returns false with ErrTimeout
// or ErrClosed. The deadline is shared by the whole expectation.
func (w *Watcher[E]) next(deadline <-chan time.Time) (Observed[E], error) {
	for {
		w.mu.Lock()
		if w.cursor < len(w.log) {
			o := w.log[w.cursor]
			w.cursor++
			w.mu.Unlock()
			return o, nil
		}
		if w.closed {
			w.mu.Unlock()
			return Observed[E]{}, ErrClosed
		}
		notify := w.notify
		w.mu.Unlock()
		select {
		case <-notify:
		case <-deadline:
			return Observed[E]{}, ErrTimeout
		}
	}
}

func (w *Watcher[E]) fail(op string, err error, got string, missing []Matcher) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := &ExpectError{Op: op, Err: err, Got: got, Timeline: w.timelineLocked(w.cursor)}
	if err == ErrMismatch && w.cursor > 0 {
		e.Timeline = w.timelineLocked(w.cursor - 1)
	}
	for _, m := range missing {
		e.Missing = append(e.Missing, m.String())
	}
	return e
}

func (w *Watcher[E]) deadline() (<-chan time.Time, func()) {
	w.mu.Lock()
	d := w.timeout
	w.mu.Unlock()
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

func (w *Watcher[E]) checkMatchers(op string, ms []Matcher) error {
	for _, m := range ms {
		if !m.canMatch(w.etype) {
			return w.fail(op, ErrNeverMatches, fmt.Sprintf("%v is not a %v", m.typ, w.etype), ms)
		}
	}
	return nil
}

// Next returns the next event not yet consumed, waiting for it if needed.
func (w *Watcher[E]) Next() (E, error) {
	deadline, stop := w.deadline()
	defer stop()
	o, err := w.next(deadline)
	if err != nil {
		var zero E
		return zero, w.fail("Next", err, "", nil)
	}
	return o.Event, nil
}

// Expect checks that events matching ms arrive in that order; other events may
// come before and between them (they are consumed and skipped). It returns
// once the last matcher matched, with the events after it left for the next
// expectation, or fails after the watcher's timeout, or when the channel
// closes first. The returned events are the ones that matched, in order.
func (w *Watcher[E]) Expect(ms ...Matcher) ([]E, error) {
	const op = "Expect"
	if err := w.checkMatchers(op, ms); err != nil {
		return nil, err
	}
	deadline, stop := w.deadline()
	defer stop()
	var (
		matched []E
		reason  string
	)
	for i := 0; i < len(ms); {
		o, err := w.next(deadline)
		if err != nil {
			return matched, w.fail(op, err, reason, ms[i:])
		}
		if err := ms[i].match(o.Event); err != nil {
			if ms[i].typ == nil || reflect.TypeOf(o.Event).AssignableTo(ms[i].typ) {
				reason = err.Error() // the right type, the wrong content: worth telling
			}
			continue
		}
		matched = append(matched, o.Event)
		reason = ""
		i++
	}
	return matched, nil
}

// ExpectExactly checks that the next len(ms) events match ms one for one,
// with nothing else between them. It says nothing about the events after
// them; follow it with ExpectClosed to assert the channel ends there.
func (w *Watcher[E]) ExpectExactly(ms ...Matcher) ([]E, error) {
	const op = "ExpectExactly"
	if err := w.checkMatchers(op, ms); err != nil {
		return nil, err
	}
	deadline, stop := w.deadline()
	defer stop()
	var matched []E
	for i, m := range ms {
		o, err := w.next(deadline)
		if err != nil {
			return matched, w.fail(op, err, "", ms[i:])
		}
		if err := m.match(o.Event); err != nil {
			return matched, w.fail(op, ErrMismatch, err.Error(), ms[i:])
		}
		matched = append(matched, o.Event)
	}
	return matched, nil
}

// ExpectClosed checks that the channel closes with no further event.
func (w *Watcher[E]) ExpectClosed() error {
	deadline, stop := w.deadline()
	defer stop()
	o, err := w.next(deadline)
	switch {
	case err == ErrClosed:
		return nil
	case err != nil:
		return w.fail("ExpectClosed", err, "", nil)
	}
	return w.fail("ExpectClosed", ErrMismatch, o.Text, nil)
}

// poll consumes events up to and including the first that m matches, without
// waiting. If none has arrived it consumes nothing and returns a channel
// closed when something new is observed (or the channel closes).
func (w *Watcher[E]) poll(m Matcher) (E, bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := w.cursor; i < len(w.log); i++ {
		if m.match(w.log[i].Event) == nil {
			w.cursor = i + 1
			return w.log[i].Event, true, nil
		}
	}
	var zero E
	return zero, false, w.notify
}

// Await returns the next event of type T, consuming it and every event before
// it. It fails like Expect.
func Await[T any, E fmt.Stringer](w *Watcher[E]) (T, error) {
	var zero T
	evs, err := w.Expect(Type[T]())
	if err != nil {
		return zero, err
	}
	return any(evs[0]).(T), nil
}
