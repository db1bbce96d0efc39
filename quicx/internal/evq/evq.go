// Package evq delivers one object's events, in order, on a Go channel without
// ever blocking the producer.
//
// Producers call Push from any goroutine, including quic-go's own and the
// consumer's. When the consumer keeps up, an event goes straight into the
// channel. When it does not, events wait in an unbounded FIFO and a pump
// goroutine feeds them to the channel; the pump exits as soon as the FIFO is
// empty, so an idle object costs no goroutine. PushFinal queues the object's last
// event; the channel is closed right after that event is received, and anything
// pushed later is refused.
package evq

import "sync"

// Queue is one object's event queue. The zero value is not usable; call New,
// or Init on a Queue embedded in its object.
type Queue[E any] struct {
	mu      sync.Mutex
	ch      chan E
	fifo    []E // events not yet handed to ch, oldest first
	head    int // index of the oldest event in fifo
	pumping bool
	final   bool // the final event has been pushed
	closed  bool // ch has been closed
}

// New returns a queue whose channel has the given capacity (0 for unbuffered).
func New[E any](capacity int) *Queue[E] {
	q := &Queue[E]{}
	q.Init(capacity)
	return q
}

// Init prepares a zero Queue, typically a field of the object whose events it
// carries (one allocation fewer per object than New), with a channel of the
// given capacity. It must be called once, before any other method; the Queue
// must not be copied after.
func (q *Queue[E]) Init(capacity int) {
	q.ch = make(chan E, max(capacity, 0))
}

// C is the channel the consumer reads.
func (q *Queue[E]) C() <-chan E { return q.ch }

// Push queues e. It never blocks. It reports false, and drops nothing, only
// when the final event was already pushed: then e is not an event of this
// object's lifetime any more and the caller's state machine is at fault.
func (q *Queue[E]) Push(e E) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.final {
		return false
	}
	q.pushLocked(e)
	return true
}

// PushFinal queues e as the last event: the channel is closed once the consumer
// has received it. It reports false if a final event was already pushed.
func (q *Queue[E]) PushFinal(e E) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.final {
		return false
	}
	q.final = true
	q.pushLocked(e)
	if !q.pumping && q.head == len(q.fifo) && !q.closed {
		// Delivered on the fast path: nothing left to pump.
		q.closed = true
		close(q.ch)
	}
	return true
}

// End closes the channel once the queued events are delivered, without a final
// event: for an object whose lifetime produced no final event (a stream that
// never started). It reports false if the queue was already finalized.
func (q *Queue[E]) End() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.final {
		return false
	}
	q.final = true
	if !q.pumping && q.head == len(q.fifo) && !q.closed {
		q.closed = true
		close(q.ch)
	}
	return true
}

// Finalized reports whether the final event has been pushed.
func (q *Queue[E]) Finalized() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.final
}

// Pending reports how many events wait for the consumer outside the channel.
func (q *Queue[E]) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.fifo) - q.head
}

func (q *Queue[E]) pushLocked(e E) {
	if !q.pumping && q.head == len(q.fifo) {
		select {
		case q.ch <- e:
			return
		default:
		}
	}
	q.fifo = append(q.fifo, e)
	if !q.pumping {
		q.pumping = true
		go q.pump()
	}
}

// pump hands queued events to the channel, one at a time, blocking on the
// consumer without holding the lock.
func (q *Queue[E]) pump() {
	var zero E
	for {
		q.mu.Lock()
		if q.head == len(q.fifo) {
			q.fifo = q.fifo[:0]
			q.head = 0
			q.pumping = false
			if q.final && !q.closed {
				q.closed = true
				close(q.ch)
			}
			q.mu.Unlock()
			return
		}
		e := q.fifo[q.head]
		q.fifo[q.head] = zero // let the event be collected once delivered
		q.head++
		if q.head > 64 && q.head*2 > len(q.fifo) {
			// Reclaim the consumed front of a long backlog.
			n := copy(q.fifo, q.fifo[q.head:])
			clear(q.fifo[n:])
			q.fifo = q.fifo[:n]
			q.head = 0
		}
		q.mu.Unlock()
		q.ch <- e
	}
}
