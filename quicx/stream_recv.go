package quicx

import (
	"sync/atomic"

	"quicx.dev/adapter"
)

// chunk is received data not yet consumed by the app: buf[lo:hi] of a slot.
type chunk struct {
	slot   int
	lo, hi int
}

// recvSide is a stream's receive direction. Its fields are guarded by the
// stream's mutex.
//
// A reader goroutine reads from quic-go into one of two quicx-owned slots
// while the app holds the other, so the next Receive is ready the moment the
// previous one is completed. It reads only while a slot is free and receive is
// enabled: data the app has not consumed holds at most two slots, and the rest
// waits in quic-go, where flow control holds the peer back.
type recvSide struct {
	s       *Stream
	bufSize int

	slots   [2][]byte
	chunks  []chunk
	events  [2]*Receive // reused Receive values, alternating
	nextEv  int
	pending *Receive // delivered, not completed

	enabled      bool
	paused       bool // a partial completion paused delivery
	reading      bool
	readerActive atomic.Bool // reading, readable without the lock
	offset       uint64      // stream offset of the first unconsumed byte
	eof          bool        // the peer's FIN has been read
	done         bool        // the receive direction is finished
	aborted      bool        // ABORT_RECEIVE (applied at start if not started)
	abortCode    uint64
	stopSent     bool // CancelRead issued to quic-go
}

func (r *recvSide) init(s *Stream, bufSize int) {
	r.s, r.bufSize, r.enabled = s, bufSize, true
}

// slotFree returns a slot no chunk uses, or -1.
func (r *recvSide) slotFree() int {
	used := [2]bool{}
	for _, c := range r.chunks {
		used[c.slot] = true
	}
	for i := range used {
		if !used[i] {
			return i
		}
	}
	return -1
}

// kickLocked starts the reader if it may read.
func (r *recvSide) kickLocked() {
	s := r.s
	if r.reading || s.as == nil || s.phase != streamStarted || r.done || r.eof || !s.canRecv {
		return
	}
	if !r.enabled || r.paused || r.slotFree() < 0 {
		return
	}
	r.reading = true
	r.readerActive.Store(true)
	go r.run(s.as)
}

// run is the reader goroutine.
func (r *recvSide) run(as *adapter.Stream) {
	s := r.s
	for {
		s.mu.Lock()
		slot := r.slotFree()
		if r.done || r.eof || !r.enabled || r.paused || slot < 0 || s.phase != streamStarted {
			r.reading = false
			r.readerActive.Store(false)
			s.mu.Unlock()
			return
		}
		if r.slots[slot] == nil {
			r.slots[slot] = make([]byte, r.bufSize)
		}
		buf := r.slots[slot]
		s.mu.Unlock()

		n, res, err := as.Read(buf)

		s.mu.Lock()
		if r.done || s.phase != streamStarted {
			r.reading = false
			r.readerActive.Store(false)
			s.mu.Unlock()
			return
		}
		if n > 0 {
			r.chunks = append(r.chunks, chunk{slot: slot, hi: n})
		}
		switch res {
		case adapter.ReadFin:
			r.eof = true
		case adapter.ReadReset:
			r.peerResetLocked(adapter.StreamErrCode(err))
		case adapter.ReadCanceled, adapter.ReadConnError:
			// A local abort or the connection's end: their own paths finish the
			// direction. Stop reading.
			r.reading = false
			r.readerActive.Store(false)
			s.mu.Unlock()
			return
		}
		r.deliverLocked()
		s.maybeFinalLocked()
		s.mu.Unlock()
	}
}

// deliverLocked indicates the buffered data (and FIN) in a Receive event if
// none is outstanding and receive is enabled.
func (r *recvSide) deliverLocked() {
	if r.pending != nil || r.done || !r.enabled || r.paused {
		return
	}
	if len(r.chunks) == 0 && !r.eof {
		return
	}
	ev := r.events[r.nextEv]
	if ev == nil {
		ev = &Receive{Buffers: make([][]byte, 0, 2)}
		ev.completer = func(n uint64) { r.complete(ev, n) }
		r.events[r.nextEv] = ev
	}
	r.nextEv ^= 1
	ev.AbsoluteOffset = r.offset
	ev.Buffers = ev.Buffers[:0]
	for _, c := range r.chunks {
		ev.Buffers = append(ev.Buffers, r.slots[c.slot][c.lo:c.hi])
	}
	ev.Flags = ReceiveNone
	if r.eof {
		ev.Flags |= ReceiveFin
	}
	ev.done.Store(false)
	r.pending = ev
	r.s.q.Push(ev)
}

// complete is StreamReceiveComplete for the outstanding Receive ev.
func (r *recvSide) complete(ev *Receive, n uint64) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev != r.pending || r.done {
		return // the stream ended since: nothing to complete
	}
	total := ev.TotalLength()
	fin := ev.Flags&ReceiveFin != 0
	r.pending = nil
	r.consumeLocked(n)
	if n < total {
		// MsQuic: a partial completion pauses receive until it is re-enabled.
		r.paused = true
		return
	}
	if fin {
		r.done = true
		s.q.Push(&PeerSendShutdown{})
		s.maybeFinalLocked()
		return
	}
	r.deliverLocked()
	r.kickLocked()
}

// consumeLocked drops n bytes from the front of the buffered data.
func (r *recvSide) consumeLocked(n uint64) {
	r.offset += n
	i := 0
	for i < len(r.chunks) && n > 0 {
		c := &r.chunks[i]
		size := uint64(c.hi - c.lo)
		if n < size {
			c.lo += int(n)
			n = 0
			break
		}
		n -= size
		i++
	}
	r.chunks = append(r.chunks[:0], r.chunks[i:]...)
}

// SetReceiveEnabled is StreamReceiveSetEnabled. Disabling stops further
// Receive events (one already queued may still arrive); enabling resumes them,
// including after a partial completion paused them.
func (s *Stream) SetReceiveEnabled(enabled bool) error {
	const op = "Stream.SetReceiveEnabled"
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return newErr(op, ErrInvalidState, "stream closed")
	}
	if !s.canRecv {
		return newErr(op, ErrInvalidState, "the stream has no receive direction")
	}
	r := &s.rcv
	r.enabled = enabled
	if enabled {
		r.paused = false
		r.deliverLocked()
		r.kickLocked()
	}
	return nil
}

// ReceiveComplete is StreamReceiveComplete: it completes the outstanding
// Receive with n bytes consumed (the same as calling Complete on the event).
func (s *Stream) ReceiveComplete(n uint64) {
	s.mu.Lock()
	ev := s.rcv.pending
	s.mu.Unlock()
	if ev != nil {
		ev.Complete(n)
	}
}

// finalSizeKnown runs on quic-go's goroutine when the peer's FIN or reset fixes
// the final size. A reset must be reported even while the reader is idle
// (receive disabled or paused), so an idle stream is checked off the loop.
func (r *recvSide) finalSizeKnown() {
	if !r.readerActive.Load() {
		go r.pollReset()
	}
}

func (r *recvSide) pollReset() {
	s := r.s
	s.mu.Lock()
	as := s.as
	active := r.reading || r.done
	s.mu.Unlock()
	if active || as == nil {
		return
	}
	if se, ok := as.PollReset(); ok {
		s.mu.Lock()
		r.peerResetLocked(se.Code)
		s.maybeFinalLocked()
		s.mu.Unlock()
	}
}

// peerResetLocked handles RESET_STREAM: PeerSendAborted at once, unread data
// discarded. MsQuic raises nothing when the app already aborted its receive.
func (r *recvSide) peerResetLocked(code uint64) {
	if r.done {
		return
	}
	r.done = true
	r.chunks, r.pending = r.chunks[:0], nil
	r.s.q.Push(&PeerSendAborted{ErrorCode: code})
}

// abortLocked is ABORT_RECEIVE: STOP_SENDING to the peer, the direction ends
// at once, unread data is discarded. The first abort wins.
func (r *recvSide) abortLocked(code uint64) {
	if r.aborted || r.done {
		return
	}
	r.aborted, r.abortCode = true, code
	if r.s.phase != streamStarted {
		return
	}
	r.stopLocked()
	r.done = true
	r.chunks, r.pending = r.chunks[:0], nil
}

// startedLocked applies an ABORT_RECEIVE queued before the stream started.
func (r *recvSide) startedLocked() {
	if r.aborted && !r.done && r.s.canRecv {
		r.stopLocked()
		r.done = true
	}
}

// stopLocked sends STOP_SENDING once the stream exists in quic-go.
func (r *recvSide) stopLocked() {
	if s := r.s; s.as != nil && !r.stopSent {
		r.stopSent = true
		s.as.CancelRead(r.abortCode)
	}
}

// connectionEndedLocked ends the receive direction silently.
func (r *recvSide) connectionEndedLocked() {
	r.done = true
	r.chunks, r.pending = r.chunks[:0], nil
}

// finishedLocked reports whether the receive direction is done.
func (r *recvSide) finishedLocked() bool { return r.done }
