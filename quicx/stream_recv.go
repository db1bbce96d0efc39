package quicx

import (
	"slices"
	"sync/atomic"

	"quicx.dev/adapter"
)

// chunk is received data not yet consumed by the app: b, in one of quicx's
// two slots (slot 0 or 1) or in an app-owned buffer (slot -1).
type chunk struct {
	b    []byte
	slot int
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

	slots    [2][]byte
	slotSize int // the size of the next slot allocated
	chunks   []chunk
	events   [2]*Receive // reused Receive values, alternating
	nextEv   int
	pending  *Receive // delivered, not completed

	chunkArr [2]chunk // chunks' first backing: most streams never need more

	// Multi-receive mode: several Receive events outstanding, completion
	// counted per stream.
	multi     bool
	delivered uint64 // bytes indicated so far
	completed uint64 // bytes completed so far
	finSent   bool   // the FIN was indicated

	// App-owned buffer mode: data is read straight into the app's buffers.
	appOwned bool
	appBufs  [][]byte // provided space not yet filled, in order
	needSent bool     // ReceiveBufferNeeded raised, waiting for buffers

	enabled      bool
	held         atomic.Bool // no data indicated yet: the app has not asked for the events or buffers (written under the lock)
	paused       bool        // a partial completion paused delivery
	reading      bool
	readingApp   bool        // the reader is reading into the app's first buffer
	readerActive atomic.Bool // reading, readable without the lock
	finished     atomic.Bool // the FIN was read or the direction is done
	finalSeen    atomic.Bool // quic-go reported the final size (FIN or reset)
	offset       uint64      // stream offset of the first unconsumed byte
	readPos      uint64      // bytes read from quic-go so far
	eof          bool        // the peer's FIN has been read
	done         bool        // the receive direction is finished
	aborted      bool        // ABORT_RECEIVE (applied at start if not started)
	abortCode    uint64
	stopSent     bool // CancelRead issued to quic-go
}

func (r *recvSide) init(s *Stream, bufSize int) {
	r.s, r.bufSize, r.enabled = s, bufSize, true
	r.held.Store(true)
	r.chunks = r.chunkArr[:0]
	r.slotSize = min(smallReceiveBuffer, bufSize)
	r.multi = s.multiRecv
	r.appOwned = s.openFlags&StreamOpenAppOwnedBuffers != 0
}

// multiLimit bounds the bytes indicated and not completed in multi-receive
// mode: beyond it quicx stops reading and flow control holds the peer.
func (r *recvSide) multiLimit() uint64 { return 4 * uint64(r.bufSize) }

// slotsUsed reports which slots hold unconsumed data.
func (r *recvSide) slotsUsed() [2]bool {
	var used [2]bool
	for _, c := range r.chunks {
		if c.slot >= 0 {
			used[c.slot] = true
		}
	}
	return used
}

// slotFree returns a slot no chunk uses, or -1.
func (r *recvSide) slotFree() int {
	used := r.slotsUsed()
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
	if r.reading || s.as == nil || s.voided || s.phase != streamStarted || r.done || r.eof || !s.canRecv {
		return
	}
	if (r.held.Load() && r.multi) || !r.enabled || r.paused || !r.canReadLocked() {
		return
	}
	if !r.readableLocked() {
		r.releaseFreeSlotsLocked()
		return
	}
	r.reading = true
	r.readerActive.Store(true)
	go r.run(s.as)
}

// releaseLocked lets a held stream start reading.
func (r *recvSide) releaseLocked() {
	if r.held.Load() {
		r.held.Store(false)
		r.deliverLocked()
		r.kickLocked()
		if !r.reading && !r.eof && !r.done && r.finalSeen.Load() {
			go r.pollReset() // a reset that came while held, receive now disabled
		}
	}
}

// readableLocked reports whether a read would find something. Without the
// recorder's help (adapter.Stream.ParksReads) only a read waiting in quic-go
// can tell, so it is always worth starting one. With it, a reader runs only
// while something is readable: an idle stream holds no goroutine, and the
// recorder's StreamReadable kicks the reader when data, the FIN or a reset
// arrives.
func (r *recvSide) readableLocked() bool {
	as := r.s.as
	return !as.ParksReads() || as.ReadableOrWatch(r.readPos)
}

// canReadLocked reports whether the reader has somewhere to put data.
func (r *recvSide) canReadLocked() bool {
	switch {
	case r.multi:
		return r.delivered-r.completed < r.multiLimit()
	case r.appOwned:
		if len(r.appBufs) == 0 {
			if !r.needSent {
				// MsQuic: RECEIVE_BUFFER_NEEDED. quic-go does not say how much
				// waits; quicx asks for one read's worth.
				r.needSent = true
				r.s.q.Push(&ReceiveBufferNeeded{BufferLengthNeeded: uint64(r.bufSize)})
			}
			return false
		}
		return true
	}
	return r.slotFree() >= 0
}

// targetLocked returns where the next read goes and its slot (-1 for app or
// fresh memory).
func (r *recvSide) targetLocked() ([]byte, int) {
	switch {
	case r.multi:
		return make([]byte, r.bufSize), -1
	case r.appOwned:
		return r.appBufs[0], -1
	}
	slot := r.slotFree()
	if len(r.slots[slot]) != r.slotSize {
		r.s.conn.reg.putSlot(r.slots[slot])
		r.slots[slot] = r.s.conn.reg.getSlot(r.slotSize)
	}
	return r.slots[slot], slot
}

// run is the reader goroutine.
func (r *recvSide) run(as *adapter.Stream) {
	s := r.s
	for {
		s.mu.Lock()
		stop := r.done || r.eof || !r.enabled || r.paused || s.phase != streamStarted || !r.canReadLocked()
		if !stop && !r.readableLocked() {
			// Parked until the recorder says more is readable: an idle
			// stream keeps no goroutine and no empty buffer.
			r.releaseFreeSlotsLocked()
			stop = true
		}
		if stop {
			r.reading = false
			r.readerActive.Store(false)
			idle := !r.done && !r.eof
			s.mu.Unlock()
			// A reset that came while this reader was active was left to it by
			// finalSizeKnown, but the reader stops without reading again:
			// look for the reset now, or it goes unreported while receive is
			// paused or disabled.
			if idle && r.finalSeen.Load() {
				r.pollReset()
			}
			return
		}
		buf, slot := r.targetLocked()
		r.readingApp = r.appOwned && slot < 0
		s.mu.Unlock()

		n, res, err := as.Read(buf)

		s.mu.Lock()
		r.readingApp = false
		r.readPos += uint64(n)
		if r.done || s.phase != streamStarted {
			r.reading = false
			r.readerActive.Store(false)
			s.mu.Unlock()
			return
		}
		if res == adapter.ReadRejected0RTT {
			// The server rejected 0-RTT: nothing was received on this quic-go
			// stream; the reopened one is read afresh.
			s.voided = s.as == as
			r.reading = false
			r.readerActive.Store(false)
			r.kickLocked()
			s.mu.Unlock()
			return
		}
		if res == adapter.ReadFin {
			r.eof = true
			r.finished.Store(true)
		}
		if n == len(buf) && slot >= 0 {
			r.slotSize = r.bufSize // a full read: this is a bulk stream
		}
		r.gotLocked(buf[:n], slot)
		switch res {
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
		s.maybeFinalLocked()
		s.mu.Unlock()
	}
}

// gotLocked takes the data of one read and indicates what it can.
func (r *recvSide) gotLocked(data []byte, slot int) {
	if r.multi {
		if len(data) > 0 || (r.eof && !r.finSent) {
			r.indicateMultiLocked(data)
		}
		return
	}
	if r.appOwned && slot < 0 && len(data) > 0 {
		r.appBufs[0] = r.appBufs[0][len(data):]
		if len(r.appBufs[0]) == 0 {
			r.appBufs = r.appBufs[1:]
		}
	}
	if len(data) > 0 {
		r.chunks = append(r.chunks, chunk{b: data, slot: slot})
	}
	if r.appOwned {
		// A read into a slot that ended after the switch, or slot data that
		// waited for this read into the app's memory to end.
		r.moveSlotsToAppLocked()
	}
	r.deliverLocked()
}

// indicateMultiLocked raises one Receive in multi-receive mode.
func (r *recvSide) indicateMultiLocked(data []byte) {
	ev := &Receive{AbsoluteOffset: r.delivered}
	if len(data) > 0 {
		ev.Buffers = [][]byte{data}
		if r.delivered < r.s.as.ZeroRTTEnd() {
			ev.Flags |= Receive0RTT
		}
	}
	if r.eof {
		ev.Flags |= ReceiveFin
		r.finSent = true
	}
	ev.completer = r.completeMulti
	r.delivered += uint64(len(data))
	r.s.q.Push(ev)
}

// completeMulti is StreamReceiveComplete in multi-receive mode: the count is
// per stream, whichever Receive it came from.
func (r *recvSide) completeMulti(n uint64) {
	s := r.s
	s.lockInline()
	defer s.unlockInline()
	if r.done {
		return
	}
	r.completed += min(n, r.delivered-r.completed)
	if r.finSent && r.completed == r.delivered {
		r.done = true
		s.q.Push(&PeerSendShutdown{})
		s.maybeFinalLocked()
		return
	}
	r.kickLocked()
}

// deliverLocked indicates the buffered data (and FIN) in a Receive event if
// none is outstanding and receive is enabled.
func (r *recvSide) deliverLocked() {
	if r.held.Load() || r.multi || r.pending != nil || r.done || !r.enabled || r.paused {
		return
	}
	// With app-owned buffers only data in the app's memory is indicated; data
	// read into quicx's slots before a peer stream switched waits for room.
	n := len(r.chunks)
	if r.appOwned {
		n = 0
		for n < len(r.chunks) && r.chunks[n].slot < 0 {
			n++
		}
		if n == 0 && len(r.chunks) > 0 {
			if !r.needSent {
				r.needSent = true
				r.s.q.Push(&ReceiveBufferNeeded{BufferLengthNeeded: uint64(len(r.chunks[0].b))})
			}
			return
		}
	}
	if n == 0 && !r.eof {
		return
	}
	ev := r.events[r.nextEv]
	if ev == nil {
		ev = &Receive{rcv: r}
		ev.Buffers = ev.bufs[:0]
		r.events[r.nextEv] = ev
	}
	r.nextEv ^= 1
	ev.AbsoluteOffset = r.offset
	ev.Buffers = ev.Buffers[:0]
	for _, c := range r.chunks[:n] {
		ev.Buffers = append(ev.Buffers, c.b)
	}
	ev.Flags = ReceiveNone
	if n > 0 && r.offset < r.s.as.ZeroRTTEnd() {
		// MsQuic (stream_recv.c QuicStreamRecvFlush): the data starts below
		// the end of the stream's furthest 0-RTT data, so it includes bytes
		// received in 0-RTT. A FIN-only Receive is never flagged.
		ev.Flags |= Receive0RTT
	}
	if r.eof && n == len(r.chunks) {
		ev.Flags |= ReceiveFin
	}
	ev.done.Store(false)
	r.pending = ev
	r.s.q.Push(ev)
}

// complete is StreamReceiveComplete for the outstanding Receive ev.
func (r *recvSide) complete(ev *Receive, n uint64) {
	s := r.s
	s.lockInline()
	defer s.unlockInline()
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
		r.finished.Store(true)
		r.releaseSlotsLocked()
		s.q.Push(&PeerSendShutdown{})
		s.maybeFinalLocked()
		return
	}
	if r.appOwned {
		r.moveSlotsToAppLocked()
	}
	r.deliverLocked()
	r.kickLocked()
}

// releaseSlotsLocked gives the receive buffers back to the registration's
// pool once nothing can reference them: the direction is done and no Receive
// is outstanding (a completed Receive's buffers belong to quicx).
func (r *recvSide) releaseSlotsLocked() {
	if r.pending != nil || r.reading {
		return
	}
	for i := range r.slots {
		r.s.conn.reg.putSlot(r.slots[i])
		r.slots[i] = nil
	}
}

// releaseFreeSlotsLocked gives the slots no unconsumed data uses back to the
// registration's pool.
func (r *recvSide) releaseFreeSlotsLocked() {
	used := r.slotsUsed()
	for i := range r.slots {
		if !used[i] && r.slots[i] != nil {
			r.s.conn.reg.putSlot(r.slots[i])
			r.slots[i] = nil
		}
	}
	// Completed Receive values kept for reuse must not keep a slot alive.
	for _, ev := range r.events {
		if ev != nil && ev != r.pending {
			ev.Buffers = ev.Buffers[:0]
			clear(ev.Buffers[:cap(ev.Buffers)])
		}
	}
}

// consumeLocked drops n bytes from the front of the buffered data.
func (r *recvSide) consumeLocked(n uint64) {
	r.offset += n
	i := 0
	for i < len(r.chunks) && n > 0 {
		c := &r.chunks[i]
		size := uint64(len(c.b))
		if n < size {
			c.b = c.b[n:]
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
	ev, multi := s.rcv.pending, s.rcv.multi
	s.mu.Unlock()
	if multi {
		s.rcv.completeMulti(n)
		return
	}
	if ev != nil {
		ev.Complete(n)
	}
}

// ProvideReceiveBuffers is StreamProvideReceiveBuffers: add buffers for
// quic-go to read this stream's data into (app-owned buffer mode). Receive
// events then point into these buffers; a buffer is the app's again once all
// its bytes were indicated and completed. A local stream must be opened with
// StreamOpenAppOwnedBuffers; a peer stream switches to the mode with its first
// call, made before the stream's first Events call (MsQuic: inline in
// PEER_STREAM_STARTED): quicx indicates nothing until one of the two, and
// copies what it has read meanwhile into the app's buffers. quicx raises
// ReceiveBufferNeeded when data waits and no space is left; unlike MsQuic it never aborts the connection for lack of
// space: flow control holds the peer.
func (s *Stream) ProvideReceiveBuffers(bufs [][]byte) error {
	const op = "Stream.ProvideReceiveBuffers"
	if len(bufs) == 0 {
		return newErr(op, ErrInvalidParameter, "no buffers")
	}
	for _, b := range bufs {
		if len(b) == 0 {
			return newErr(op, ErrInvalidParameter, "empty buffer")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.rcv
	switch {
	case s.closed:
		return newErr(op, ErrInvalidState, "stream closed")
	case !s.canRecv:
		return newErr(op, ErrInvalidState, "the stream has no receive direction")
	case !r.appOwned && (s.local || r.pending != nil || r.offset > 0 || r.delivered > 0):
		return newErr(op, ErrInvalidState, "not in app-owned buffer mode (open with StreamOpenAppOwnedBuffers, or switch a peer stream before its first Events call)")
	}
	if !r.appOwned {
		r.appOwned, r.multi = true, false
	}
	r.appBufs = append(r.appBufs, bufs...)
	r.needSent = false
	r.held.Store(false)
	r.moveSlotsToAppLocked()
	r.deliverLocked()
	r.kickLocked()
	return nil
}

// moveSlotsToAppLocked copies data read into quicx's slots before a peer
// stream switched to app-owned buffers into the app's buffers, in order, as
// far as they reach; a Receive then points into the app's memory only.
func (r *recvSide) moveSlotsToAppLocked() {
	if r.pending != nil || r.readingApp {
		return // the outstanding Receive's buffers are the chunks; the reader writes into appBufs[0]
	}
	if !slices.ContainsFunc(r.chunks, func(c chunk) bool { return c.slot >= 0 }) {
		return // the usual case once switched: nothing to move, nothing to allocate
	}
	out := make([]chunk, 0, len(r.chunks)+1)
	for i, c := range r.chunks {
		if c.slot < 0 {
			out = append(out, c)
			continue
		}
		for len(c.b) > 0 && len(r.appBufs) > 0 {
			m := min(len(c.b), len(r.appBufs[0]))
			dst := r.appBufs[0][:m]
			copy(dst, c.b)
			out = append(out, chunk{b: dst, slot: -1})
			c.b = c.b[m:]
			if r.appBufs[0] = r.appBufs[0][m:]; len(r.appBufs[0]) == 0 {
				r.appBufs = r.appBufs[1:]
			}
		}
		if len(c.b) > 0 {
			// Out of app space: the rest waits in quicx's slots, in order.
			out = append(append(out, c), r.chunks[i+1:]...)
			break
		}
	}
	r.chunks = append(r.chunks[:0], out...)
}

// finalSizeKnown runs on quic-go's goroutine when the peer's FIN or reset fixes
// the final size. A reset must be reported even while the reader is idle
// (receive disabled or paused), so an idle stream is checked off the loop.
func (r *recvSide) finalSizeKnown() {
	// Either this sees the reader inactive, or the reader, stopping later,
	// sees finalSeen set (run): one of them polls. A held stream is polled
	// when released, if its reader does not run then (releaseLocked).
	r.finalSeen.Store(true)
	if !r.readerActive.Load() && !r.finished.Load() && !r.held.Load() {
		go r.pollReset()
	}
}

func (r *recvSide) pollReset() {
	s := r.s
	s.mu.Lock()
	as := s.as
	active := r.reading || r.done || r.held.Load() // a held stream looks when released
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
	r.finished.Store(true)
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
	r.finished.Store(true)
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
	r.finished.Store(true)
	r.chunks, r.pending = r.chunks[:0], nil
}

// finishedLocked reports whether the receive direction is done.
func (r *recvSide) finishedLocked() bool { return r.done }
