package quicxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"time"

	"quicx.dev/quicx"
)

// RecordingVersion is the format version Recorder writes and ReadRecording
// accepts.
const RecordingVersion = 1

// Recording is the event timelines of a set of quicx objects, as JSON.
type Recording struct {
	Version int     `json:"version"`
	Tracks  []Track `json:"tracks"`
}

// Track is the timeline of one object.
type Track struct {
	Name   string          `json:"name"`
	Kind   string          `json:"kind"` // KindListener, KindConnection or KindStream
	Events []RecordedEvent `json:"events"`
	Closed bool            `json:"closed"` // the channel closed while recording
}

// RecordedEvent is one event: when it came, what it was, and how the
// consumer answered it.
type RecordedEvent struct {
	At     time.Duration   `json:"at"`   // since the recorder (or replay) started, in nanoseconds
	Type   string          `json:"type"` // the quicx type name: "Receive", "Connected" …
	Text   string          `json:"text"` // the event's String() when it came
	Fields json.RawMessage `json:"fields"`
	Answer *Answer         `json:"answer,omitempty"`
}

// Answer is the consumer's answer to a Receive (Complete), a NewConnection
// (Accept or Reject) or a PeerCertificateReceived (Complete).
type Answer struct {
	At        time.Duration `json:"at"`
	Completed *uint64       `json:"completed,omitempty"` // Receive: the bytes completed
	Accepted  *bool         `json:"accepted,omitempty"`  // NewConnection, PeerCertificateReceived
	Reason    string        `json:"reason,omitempty"`    // NewConnection: the rejection's reason or Accept's error
}

// String describes the answer: "Complete(n)", "accepted", "rejected (…)",
// or "no answer" for a nil Answer.
func (a *Answer) String() string {
	switch {
	case a == nil:
		return "no answer"
	case a.Completed != nil:
		return fmt.Sprintf("Complete(%d)", *a.Completed)
	case a.Accepted != nil && *a.Accepted:
		return "accepted"
	case a.Accepted != nil:
		if a.Reason != "" {
			return "rejected (" + a.Reason + ")"
		}
		return "rejected"
	}
	return "answered"
}

// same reports whether two answers say the same (times aside).
func (a *Answer) same(b *Answer) bool {
	switch {
	case a == nil || b == nil:
		return a == b
	case (a.Completed == nil) != (b.Completed == nil), a.Completed != nil && *a.Completed != *b.Completed:
		return false
	case (a.Accepted == nil) != (b.Accepted == nil), a.Accepted != nil && *a.Accepted != *b.Accepted:
		return false
	}
	return true
}

// Track returns the track called name.
func (r *Recording) Track(name string) (*Track, bool) {
	for i := range r.Tracks {
		if r.Tracks[i].Name == name {
			return &r.Tracks[i], true
		}
	}
	return nil, false
}

// WriteJSON writes the recording as indented JSON.
func (r *Recording) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadRecording reads a recording written by WriteJSON.
func ReadRecording(rd io.Reader) (*Recording, error) {
	var r Recording
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("quicxtest: reading recording: %w", err)
	}
	if r.Version != RecordingVersion {
		return nil, fmt.Errorf("quicxtest: recording version %d, want %d", r.Version, RecordingVersion)
	}
	for _, t := range r.Tracks {
		if _, ok := eventTypes[t.Kind]; !ok {
			return nil, fmt.Errorf("quicxtest: track %q has unknown kind %q", t.Name, t.Kind)
		}
		for i, e := range t.Events {
			if _, ok := eventTypes[t.Kind][e.Type]; !ok {
				return nil, fmt.Errorf("quicxtest: track %q event %d: unknown %s event %q", t.Name, i, t.Kind, e.Type)
			}
		}
	}
	return &r, nil
}

// Timeline renders the track, one event per line, with its answer.
func (t *Track) Timeline() string {
	var b []byte
	for i, e := range t.Events {
		b = fmt.Appendf(b, "%3d %12s  %s", i, fmtOffset(e.At), e.Text)
		if e.Answer != nil {
			b = fmt.Appendf(b, "  → %s at %s", e.Answer, fmtOffset(e.Answer.At))
		}
		b = append(b, '\n')
	}
	return string(b)
}

// ---- recording ----

// Recorder records the event timelines of real quicx objects. Record puts it
// between an object's channel and the consumer; the consumer sees the same
// events, in the same order, and its answers (Receive.Complete,
// NewConnection.Accept/Reject, PeerCertificateReceived.Complete) reach quicx
// and are recorded too. All methods are safe for concurrent use.
type Recorder struct {
	start time.Time

	mu     sync.Mutex
	tracks []*Track
	names  map[string]bool
	wg     sync.WaitGroup
}

// NewRecorder returns a recorder; times in its recording count from now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now(), names: map[string]bool{}} }

// Record records the events of ch as the track called name and returns the
// channel the consumer reads instead: it carries the same events and closes
// when ch does. E must be quicx.ListenerEvent, quicx.ConnectionEvent or
// quicx.StreamEvent; Record panics otherwise, or if name is already used.
//
// A Receive, NewConnection or PeerCertificateReceived reaches the consumer as
// a stand-in that forwards the answer to the original (and records it); its
// fields are the original's. Any other event is the original itself.
func Record[E fmt.Stringer](r *Recorder, name string, ch <-chan E) <-chan E {
	kind, ok := kindOf[E]()
	if !ok {
		panic(fmt.Sprintf("quicxtest.Record: %v is not a quicx event interface", reflect.TypeFor[E]()))
	}
	r.mu.Lock()
	if r.names[name] {
		r.mu.Unlock()
		panic(fmt.Sprintf("quicxtest.Record: track %q recorded twice", name))
	}
	r.names[name] = true
	t := &Track{Name: name, Kind: kind}
	r.tracks = append(r.tracks, t)
	r.mu.Unlock()
	out := make(chan E)
	r.wg.Go(func() {
		defer close(out)
		for ev := range ch {
			out <- r.observe(t, ev).(E)
		}
		r.mu.Lock()
		t.Closed = true
		r.mu.Unlock()
	})
	return out
}

// observe records ev on t and returns what the consumer gets.
func (r *Recorder) observe(t *Track, ev fmt.Stringer) any {
	fields, err := encodeFields(ev)
	if err != nil {
		fields, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	r.mu.Lock()
	t.Events = append(t.Events, RecordedEvent{
		At:     time.Since(r.start),
		Type:   reflect.TypeOf(ev).Elem().Name(),
		Text:   ev.String(),
		Fields: fields,
	})
	idx := len(t.Events) - 1
	r.mu.Unlock()
	answer := func(a Answer) {
		a.At = time.Since(r.start)
		r.mu.Lock()
		if t.Events[idx].Answer == nil {
			t.Events[idx].Answer = &a
		}
		r.mu.Unlock()
	}
	switch e := ev.(type) {
	case *quicx.Receive:
		return quicx.NewReceiveEvent(e.AbsoluteOffset, e.Buffers, e.Flags, func(n uint64) {
			answer(Answer{Completed: &n})
			e.Complete(n)
		})
	case *quicx.NewConnection:
		return quicx.NewNewConnectionEvent(e.Info, e.Connection, &recordedDecision{orig: e, answer: answer})
	case *quicx.PeerCertificateReceived:
		return quicx.NewPeerCertificateReceivedEvent(e.Certificate, e.Chain, e.DeferredStatus, func(accept bool) {
			answer(Answer{Accepted: &accept})
			e.Complete(accept)
		})
	}
	return ev
}

// recordedDecision forwards a NewConnection's answer to the original event.
type recordedDecision struct {
	orig   *quicx.NewConnection
	answer func(Answer)
}

func (d *recordedDecision) AcceptConnection(cfg *quicx.Configuration) error {
	err := d.orig.Accept(cfg)
	ok := err == nil
	a := Answer{Accepted: &ok}
	if err != nil {
		a.Reason = err.Error()
	}
	d.answer(a)
	return err
}

func (d *recordedDecision) RejectConnection(reason error) {
	d.orig.Reject(reason)
	no := false
	a := Answer{Accepted: &no}
	if reason != nil {
		a.Reason = reason.Error()
	}
	d.answer(a)
}

// Wait waits until every channel recorded so far is closed and its last event
// handed to the consumer.
func (r *Recorder) Wait() { r.wg.Wait() }

// Recording returns a copy of what was recorded so far.
func (r *Recorder) Recording() *Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := &Recording{Version: RecordingVersion}
	for _, t := range r.tracks {
		cp := *t
		cp.Events = make([]RecordedEvent, len(t.Events))
		for i, e := range t.Events {
			cp.Events[i] = e
			if e.Answer != nil {
				a := *e.Answer
				cp.Events[i].Answer = &a
			}
		}
		rec.Tracks = append(rec.Tracks, cp)
	}
	return rec
}

// WriteJSON writes what was recorded so far as indented JSON.
func (r *Recorder) WriteJSON(w io.Writer) error { return r.Recording().WriteJSON(w) }

// ---- replaying ----

// ReplayOptions configure NewReplay.
type ReplayOptions struct {
	// Paced delivers each event at its recorded time after the replay
	// started (in simulated time inside a testing/synctest bubble). Otherwise
	// events come as fast as the consumer reads them.
	Paced bool
}

// ErrKindMismatch is returned by NewReplay for a track of another kind of
// object than the channel's.
var ErrKindMismatch = errors.New("quicxtest: track kind does not match the event type")

// Replay feeds a recorded track to a consumer, as the object would have:
// events in the recorded order, on a channel closed after the last event if
// the recording saw the channel close. Like quicx, it delivers a Receive only
// once the previous Receive was completed.
//
// Replayed events carry their recorded fields, except that a
// PeerStreamStarted has no Stream and a NewConnection no Connection (those
// objects cannot be recorded), and errors come back as their quicx.Status. A
// context value comes back as its JSON value (a string stays a string,
// numbers become float64). The consumer's answers are observable and can be
// compared with the recorded ones (Divergences).
type Replay[E fmt.Stringer] struct {
	track *Track
	ch    chan E
	done  chan struct{}

	mu      sync.Mutex
	start   time.Time
	answers []*Answer
	waiters []<-chan struct{} // per event: closed when it is answered (Receive only)
}

// NewReplay starts replaying the track called name. The replay ends early,
// closing the channel, if ctx ends.
func NewReplay[E fmt.Stringer](ctx context.Context, rec *Recording, name string, opts ReplayOptions) (*Replay[E], error) {
	kind, ok := kindOf[E]()
	if !ok {
		return nil, fmt.Errorf("quicxtest: %v is not a quicx event interface", reflect.TypeFor[E]())
	}
	t, ok := rec.Track(name)
	if !ok {
		return nil, fmt.Errorf("quicxtest: no track %q in the recording", name)
	}
	if t.Kind != kind {
		return nil, fmt.Errorf("%w: track %q is a %s, the channel carries %s events", ErrKindMismatch, name, t.Kind, kind)
	}
	r := &Replay[E]{track: t, ch: make(chan E), done: make(chan struct{}), start: time.Now()}
	r.answers = make([]*Answer, len(t.Events))
	r.waiters = make([]<-chan struct{}, len(t.Events))
	evs := make([]E, len(t.Events))
	for i, re := range t.Events {
		ev, err := decodeEvent(kind, re.Type, re.Fields, r.hooks(i))
		if err != nil {
			return nil, fmt.Errorf("quicxtest: track %q event %d: %w", name, i, err)
		}
		e, ok := ev.(E)
		if !ok {
			return nil, fmt.Errorf("%w: %T in track %q", ErrKindMismatch, ev, name)
		}
		evs[i] = e
	}
	go r.run(ctx, evs, opts)
	return r, nil
}

// hooks wires the answers to event i into the replay.
func (r *Replay[E]) hooks(i int) decodeHooks {
	answered := make(chan struct{})
	r.waiters[i] = answered
	var once sync.Once
	set := func(a Answer) {
		once.Do(func() {
			r.mu.Lock()
			a.At = time.Since(r.start)
			r.answers[i] = &a
			r.mu.Unlock()
			close(answered)
		})
	}
	d := newDecision()
	return decodeHooks{
		complete: func(n uint64) { set(Answer{Completed: &n}) },
		answer:   &replayDecision{Decision: d, set: set},
		certificate: func(accept bool) {
			set(Answer{Accepted: &accept})
		},
	}
}

// replayDecision records a replayed NewConnection's answer.
type replayDecision struct {
	*Decision
	set func(Answer)
}

func (d *replayDecision) AcceptConnection(cfg *quicx.Configuration) error {
	if err := d.Decision.AcceptConnection(cfg); err != nil {
		return err
	}
	yes := true
	d.set(Answer{Accepted: &yes})
	return nil
}

func (d *replayDecision) RejectConnection(reason error) {
	d.Decision.RejectConnection(reason)
	if err, ok := d.Decision.Rejected(); ok {
		no := false
		d.set(Answer{Accepted: &no, Reason: err.Error()})
	}
}

func (r *Replay[E]) run(ctx context.Context, evs []E, opts ReplayOptions) {
	defer close(r.done)
	closeCh := r.track.Closed
	defer func() {
		if closeCh {
			close(r.ch)
		}
	}()
	var timer *time.Timer
	prevReceive := -1
	for i, ev := range evs {
		if _, ok := any(ev).(*quicx.Receive); ok {
			if prevReceive >= 0 {
				select {
				case <-r.waiters[prevReceive]:
				case <-ctx.Done():
					closeCh = true
					return
				}
			}
			prevReceive = i
		}
		if opts.Paced {
			if wait := time.Until(r.start.Add(r.track.Events[i].At)); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
					defer timer.Stop()
				} else {
					timer.Reset(wait)
				}
				select {
				case <-timer.C:
				case <-ctx.Done():
					closeCh = true
					return
				}
			}
		}
		select {
		case r.ch <- ev:
		case <-ctx.Done():
			closeCh = true
			return
		}
	}
}

// Events returns the channel the consumer reads.
func (r *Replay[E]) Events() <-chan E { return r.ch }

// Done is closed once every event was delivered (and the channel closed, if
// the recording saw it close), or ctx ended.
func (r *Replay[E]) Done() <-chan struct{} { return r.done }

// Answers returns the consumer's answers so far, one per event of the track
// (nil where there was none).
func (r *Replay[E]) Answers() []*Answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Answer, len(r.answers))
	for i, a := range r.answers {
		if a != nil {
			cp := *a
			out[i] = &cp
		}
	}
	return out
}

// Divergences compares the consumer's answers so far with the recorded ones
// and describes each difference; none means the consumer answered every event
// as the recorded consumer did. Times are not compared.
func (r *Replay[E]) Divergences() []string {
	got := r.Answers()
	var out []string
	for i, e := range r.track.Events {
		if !e.Answer.same(got[i]) {
			out = append(out, fmt.Sprintf("event %d %s: recorded %s, replay got %s", i, e.Text, e.Answer, got[i]))
		}
	}
	return out
}
