package quicx

import (
	"bytes"
	"math"
	"slices"

	"quicx.dev/adapter"
)

// sendReq is one accepted StreamSend.
type sendReq struct {
	bufs      [][]byte
	n         int
	ctx       any
	delay     bool      // DELAY_SEND: wait for a later send without it
	allow0RTT bool      // ALLOW_0_RTT: may be written before the handshake completes
	copied    bool      // bufs is quicx's copy (buffered mode)
	completed bool      // SendComplete already queued
	end       uint64    // stream offset after this send, once written
	one       [1][]byte // bufs's backing when it is quicx's single copy
}

// sendSide is a stream's send direction. Its fields are guarded by the
// stream's mutex. A writer goroutine runs only while there is something to
// hand to quic-go; it alone touches the app's buffers while writing, so
// completions that hand buffers back wait for it.
type sendSide struct {
	s      *Stream
	budget int // bytes buffered mode may copy ahead of the transport

	queue    []*sendReq // accepted, not yet taken by the writer
	inflight *sendReq   // being written
	ackWait  []*sendReq // written, waiting for the peer's ACK (non-buffered mode)
	copied   int        // bytes of copies not yet written
	held     int        // sends in queue holding the app's buffers
	delayed  int        // trailing sends in queue with DELAY_SEND

	writing    bool
	fin        bool // FIN requested
	finWritten bool // FIN handed to quic-go
	aborted    bool // reset locally, by STOP_SENDING, or by the connection's end
	abortCode  uint64
	resetSent  bool   // CancelWrite issued to quic-go
	peerStop   bool   // the peer sent STOP_SENDING
	done       bool   // SendShutdownComplete queued
	offset     uint64 // bytes handed to quic-go
	accepted   uint64 // bytes of every accepted send
	reliableAt uint64 // SetReliableOffset waiting for the writer to reach it; 0 for none
	acked      uint64
	finAcked   bool
	ideal      uint64 // the last IdealSendBufferSize indicated

	// 0-RTT: what was written before the handshake completed, kept to be sent
	// again if the server rejects 0-RTT.
	fin0RTT  bool     // the FIN came with a SendAllow0RTT send
	earlyLog [][]byte // copies of the data written in 0-RTT
	earlyFin bool     // the FIN was written in 0-RTT
	replayed int      // sends put back at the head of the queue by the last reopen
}

func (snd *sendSide) init(s *Stream, budget int) { snd.s, snd.budget = s, budget }

// Send is StreamSend: queue buffers (with flags and a context value handed back
// in the matching SendComplete). Exactly one SendComplete follows every
// successful Send, canceled if the send direction is aborted first.
//
// In buffered mode (the default) the data is copied while fewer than a budget of
// bytes wait for the transport, and SendComplete follows at once; beyond the
// budget the app's buffers are held and completed once quic-go has taken them.
// With SendBufferingEnabled Off the buffers are held until the peer has
// acknowledged the data. SendStart starts a stream not yet started; SendFin ends
// the send direction gracefully after this data; SendDelaySend holds the data
// until a later send without it. SendAllow0RTT lets the data go in 0-RTT
// packets when the connection has them. SendCancelOnLoss switches the stream
// to cancel-on-loss mode (see SetCancelOnLossCode).
func (s *Stream) Send(bufs [][]byte, flags SendFlags, ctx any) error {
	const op = "Stream.Send"
	switch {
	case flags&(SendDgramPriority|SendCancelOnBlocked) != 0:
		return newErr(op, ErrInvalidParameter, "flags %s apply to datagrams only", flags&(SendDgramPriority|SendCancelOnBlocked))
	case flags&SendPriorityWork != 0:
		return newErr(op, ErrNotSupported, "PRIORITY_WORK: quic-go has no operation queue to prioritize")
	case flags&^(SendAllow0RTT|SendStart|SendFin|SendDelaySend|SendCancelOnLoss) != 0:
		return newErr(op, ErrInvalidParameter, "flags %s", flags)
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total > math.MaxUint32 {
		return newErr(op, ErrInvalidParameter, "more than 4 GiB in one send")
	}
	c := s.conn
	c.mu.Lock()
	end, lossTracked := c.end, c.res.events&TrackLoss != 0
	c.mu.Unlock()

	s.lockInline()
	switch {
	case s.closed:
		s.unlockInline()
		return newErr(op, ErrInvalidState, "stream closed")
	case !s.canSend:
		s.unlockInline()
		return newErr(op, ErrInvalidState, "a peer's unidirectional stream cannot send")
	case end != nil && !end.byApp, s.connEnd != nil && !s.connEnd.byApp:
		s.unlockInline()
		return newErr(op, ErrAborted, "connection closed by the peer or the transport")
	case s.snd.peerStop:
		s.unlockInline()
		return newErr(op, ErrAborted, "the peer stopped receiving (STOP_SENDING)")
	case s.snd.fin || s.snd.aborted || s.phase == streamFinal:
		s.unlockInline()
		return newErr(op, ErrInvalidState, "send direction already shut down")
	case flags&SendCancelOnLoss != 0 && !lossTracked:
		s.unlockInline()
		return newErr(op, ErrNotSupported, "CANCEL_ON_LOSS needs Settings.TransportEvents to include TrackLoss")
	}
	if flags&SendCancelOnLoss != 0 {
		s.cancelOnLoss = true
	}
	s.snd.acceptLocked(bufs, total, flags, ctx)
	needStart := flags&SendStart != 0 && s.phase == streamOpened
	s.unlockInline()
	if needStart {
		// MsQuic: SEND_FLAG_START starts the stream with SHUTDOWN_ON_FAIL.
		_ = s.start(op, StreamStartShutdownOnFail)
	}
	return nil
}

// inlineWriteMax bounds the sends written from Send's own goroutine.
const inlineWriteMax = 16 << 10

// acceptLocked queues a validated send.
func (snd *sendSide) acceptLocked(bufs [][]byte, total int, flags SendFlags, ctx any) {
	s := snd.s
	delay, allow0RTT := flags&SendDelaySend != 0, flags&SendAllow0RTT != 0
	if flags&SendFin != 0 && allow0RTT {
		snd.fin0RTT = true
	}
	snd.accepted += uint64(total)
	if !delay && snd.tryInlineLocked(bufs, total, ctx, flags&SendFin != 0) {
		return
	}
	req := &sendReq{bufs: bufs, n: total, ctx: ctx, delay: delay, allow0RTT: allow0RTT}
	if s.sendBuffer && snd.held == 0 && (total == 0 || snd.copied+total <= snd.budget) {
		// Copy now; the app gets its buffers back at once. Later sends are
		// copied only while no earlier one holds the app's buffers, so
		// SendComplete keeps the order of the sends.
		if total > 0 {
			buf := make([]byte, 0, total)
			for _, b := range bufs {
				buf = append(buf, b...)
			}
			req.one[0] = buf
			req.bufs = req.one[:]
		} else {
			req.bufs = nil
		}
		req.copied = true
		snd.copied += total
		if s.phase == streamStarted {
			req.completed = true
			s.q.Push(&SendComplete{Context: ctx})
		}
	} else {
		snd.held++
	}
	snd.queue = append(snd.queue, req)
	if req.delay {
		snd.delayed++
	} else {
		snd.delayed = 0
	}
	if flags&SendFin != 0 {
		snd.fin = true
		snd.delayed = 0 // a FIN flushes what it follows
	}
	snd.kickLocked()
}

// tryInlineLocked hands a small send (without DELAY_SEND) to quic-go at once
// when nothing is queued ahead of it and flow control lets it through: quic-go
// copies the data without blocking, and no writer goroutine is needed. It
// reports false, having done nothing, when the send must go through the queue.
// Only a send that must wait for the peer's ACK becomes a sendReq.
func (snd *sendSide) tryInlineLocked(bufs [][]byte, n int, ctx any, fin bool) bool {
	s := snd.s
	if s.phase != streamStarted || s.as == nil || s.voided || snd.writing || len(snd.queue) > 0 || snd.aborted || n > inlineWriteMax {
		return false
	}
	if s.conn.early.Load() {
		return false // 0-RTT sends go through the writer, which keeps them for a replay
	}
	if n > 0 {
		data := bufs[0]
		if len(bufs) > 1 {
			data = make([]byte, 0, n)
			for _, b := range bufs {
				data = append(data, b...)
			}
		}
		if ok, _, _ := s.as.TryWrite(data); !ok {
			return false // the writer will retry, and meet any error
		}
	}
	snd.offset += uint64(n)
	if snd.reliableAt != 0 && snd.offset >= snd.reliableAt {
		s.as.SetReliableBoundary()
		snd.reliableAt = 0
	}
	if s.sendBuffer {
		s.q.Push(&SendComplete{Context: ctx})
	} else {
		snd.ackWait = append(snd.ackWait, &sendReq{bufs: bufs, n: n, ctx: ctx, end: snd.offset})
		snd.completeAckedLocked()
	}
	if fin {
		snd.fin = true
		snd.writeFinLocked()
		s.maybeFinalLocked()
	}
	return true
}

// writeFinLocked hands the FIN to quic-go.
func (snd *sendSide) writeFinLocked() {
	s := snd.s
	if s.stopWatch != nil {
		s.stopWatch() // quicx ends the direction itself: no watcher needed
	}
	s.as.CloseWrite()
	snd.finWritten = true
	snd.maybeGracefulLocked()
}

// startedLocked runs when the stream has started: copies made before the start
// are completed now, after StartComplete, in order.
func (snd *sendSide) startedLocked() {
	for _, req := range snd.queue {
		if req.copied && !req.completed {
			req.completed = true
			snd.s.q.Push(&SendComplete{Context: req.ctx})
		}
	}
	if snd.aborted {
		snd.cancelPendingLocked()
		snd.finishAbortLocked()
	}
}

// finLocked requests a graceful shutdown of the send direction.
func (snd *sendSide) finLocked() {
	if snd.fin || snd.aborted {
		return
	}
	snd.fin = true
	snd.delayed = 0
	snd.kickLocked()
}

// kickLocked starts the writer if it has work and the stream is open in quic-go.
// What quic-go takes at once (see flushInlineLocked) needs no writer.
func (snd *sendSide) kickLocked() {
	s := snd.s
	if snd.writing || s.as == nil || s.voided || s.phase != streamStarted || snd.done || snd.aborted {
		return
	}
	if !s.conn.early.Load() && snd.flushInlineLocked() {
		return // in 0-RTT the writer writes: it keeps the data for a replay
	}
	if len(snd.queue) > snd.delayed || (snd.fin && !snd.finWritten && len(snd.queue) == 0) {
		snd.writing = true
		go snd.run(s.as)
	}
}

// flushInlineLocked hands queued sends to quic-go from the caller's goroutine
// while each is small and flow control takes it without blocking, and then the
// FIN if it is due, exactly as the writer would: a stream whose request was
// queued before it started (Send with SendStart) goes on the wire without a
// writer goroutine. It reports true when nothing is left for a writer; on
// false the writer takes over from the first send quic-go did not take, and
// meets any error there.
func (snd *sendSide) flushInlineLocked() bool {
	s := snd.s
	as := s.as
	for len(snd.queue) > snd.delayed {
		req := snd.queue[0]
		if req.n > inlineWriteMax {
			return false
		}
		if req.n > 0 {
			data := req.bufs[0]
			if len(req.bufs) > 1 {
				data = make([]byte, 0, req.n)
				for _, b := range req.bufs {
					data = append(data, b...)
				}
			}
			if ok, _, _ := as.TryWrite(data); !ok {
				return false
			}
		}
		snd.queue[0] = nil
		snd.queue = snd.queue[1:]
		if req.copied {
			snd.copied -= req.n
		} else {
			snd.held--
		}
		snd.wroteLocked(as, req)
	}
	if len(snd.queue) > 0 {
		return true // only DELAY_SEND data is left: it waits for a later send
	}
	if snd.fin && !snd.finWritten {
		snd.writeFinLocked()
		s.maybeFinalLocked()
	}
	return true
}

// run is the writer goroutine.
func (snd *sendSide) run(as *adapter.Stream) {
	s := snd.s
	for {
		s.lockInline()
		if snd.aborted {
			snd.writing = false
			snd.cancelPendingLocked()
			snd.finishAbortLocked()
			s.maybeFinalLocked()
			s.unlockInline()
			return
		}
		early := s.conn.early.Load()
		if len(snd.queue) <= snd.delayed || (early && !snd.queue[0].allow0RTT) {
			snd.writing = false
			if snd.fin && !snd.finWritten && len(snd.queue) == 0 && (!early || snd.fin0RTT) {
				snd.earlyFin = early
				snd.writeFinLocked()
			}
			s.maybeFinalLocked()
			s.unlockInline()
			return
		}
		req := snd.queue[0]
		snd.queue[0] = nil
		snd.queue = snd.queue[1:]
		if !req.copied {
			snd.held--
		}
		snd.inflight = req
		s.unlockInline()

		res, code := adapter.WriteOK, uint64(0)
		for _, b := range req.bufs {
			var err error
			if res, err = as.Write(b); res != adapter.WriteOK {
				code = adapter.StreamErrCode(err)
				break
			}
		}

		s.lockInline()
		snd.inflight = nil
		if req.copied {
			snd.copied -= req.n
		}
		if res == adapter.WriteRejected0RTT || s.as != as {
			// s.as changed: the server rejected 0-RTT while this write went to the
			// void stream, even if quic-go took it.
			// The server rejected 0-RTT: this quic-go stream is void. The send
			// waits at the head of the queue for the stream to be reopened.
			if req.copied {
				snd.copied += req.n
			} else {
				snd.held++
			}
			// It goes back where it was: after the data replayed from 0-RTT if
			// the stream was already reopened, at the head otherwise.
			at := 0
			if s.as != as {
				at = snd.replayed
			}
			snd.queue = slices.Insert(snd.queue, min(at, len(snd.queue)), req)
			snd.writing = false
			s.voided = s.as == as
			snd.kickLocked()
			s.unlockInline()
			return
		}
		if res != adapter.WriteOK {
			switch res {
			case adapter.WriteStopSending:
				snd.peerStopLocked(code)
			case adapter.WriteConnError:
				snd.aborted = true // the connection is ending; connectionEnded finishes
			}
			snd.cancelLocked(req)
			s.unlockInline()
			continue
		}
		if s.conn.early.Load() {
			for _, b := range req.bufs {
				snd.earlyLog = append(snd.earlyLog, bytes.Clone(b))
			}
		}
		snd.wroteLocked(as, req)
		s.unlockInline()
	}
}

// wroteLocked accounts for req's data handed to quic-go: the stream offset, a
// reliable boundary reached, and the send's completion (at once when copied in
// buffered mode, after the peer's ACK otherwise).
func (snd *sendSide) wroteLocked(as *adapter.Stream, req *sendReq) {
	s := snd.s
	snd.offset += uint64(req.n)
	if snd.reliableAt != 0 && snd.offset >= snd.reliableAt {
		as.SetReliableBoundary()
		snd.reliableAt = 0
	}
	switch {
	case req.completed:
	case s.sendBuffer:
		req.completed = true
		s.q.Push(&SendComplete{Context: req.ctx})
	default:
		req.end = snd.offset
		snd.ackWait = append(snd.ackWait, req)
		snd.completeAckedLocked()
	}
}

// cancelLocked completes a send as canceled unless it is completed already.
func (snd *sendSide) cancelLocked(req *sendReq) {
	if !req.completed {
		req.completed = true
		snd.s.q.Push(&SendComplete{Canceled: true, Context: req.ctx})
	}
}

// cancelPendingLocked cancels every send the writer does not hold.
func (snd *sendSide) cancelPendingLocked() {
	for _, req := range snd.ackWait {
		snd.cancelLocked(req)
	}
	for _, req := range snd.queue {
		snd.cancelLocked(req)
	}
	snd.ackWait, snd.queue = nil, nil
	snd.copied, snd.held, snd.delayed = 0, 0, 0
}

// cancelAllLocked cancels everything for a stream whose start failed with
// SHUTDOWN_ON_FAIL (no writer ever ran).
func (snd *sendSide) cancelAllLocked() {
	snd.aborted = true
	snd.cancelPendingLocked()
	snd.done = true
}

// discardLocked drops the sends of a stream abandoned before it started:
// MsQuic raises no event for them.
func (snd *sendSide) discardLocked() {
	snd.queue, snd.ackWait = nil, nil
	snd.done = true
}

// abortLocked is ABORT_SEND (or Close, or the reaction to STOP_SENDING):
// reset the stream and cancel what is pending. The first abort wins.
func (snd *sendSide) abortLocked(code uint64) {
	if snd.aborted || snd.done {
		return
	}
	snd.aborted, snd.abortCode = true, code
	s := snd.s
	if s.phase != streamStarted {
		return // applied at start; nothing goes on the wire for a stream never started
	}
	snd.resetLocked()
	if !snd.writing {
		snd.cancelPendingLocked()
		snd.finishAbortLocked()
	}
}

// resetLocked sends RESET_STREAM once the stream exists in quic-go.
func (snd *sendSide) resetLocked() {
	if s := snd.s; s.as != nil && !snd.resetSent && !snd.peerStop {
		snd.resetSent = true
		if s.stopWatch != nil {
			s.stopWatch()
		}
		s.as.CancelWrite(snd.abortCode)
	}
}

// finishAbortLocked queues SendShutdownComplete(false) once nothing is pending.
func (snd *sendSide) finishAbortLocked() {
	if snd.done || snd.writing {
		return
	}
	snd.done = true
	snd.s.q.Push(&SendShutdownComplete{Graceful: false})
}

// peerStopLocked handles STOP_SENDING: PeerReceiveAborted, then the send
// direction is aborted (quic-go has already reset it, with the peer's code).
func (snd *sendSide) peerStopLocked(code uint64) {
	if snd.peerStop || snd.done || (snd.aborted && snd.resetSent) {
		return
	}
	snd.peerStop = true
	s := snd.s
	s.q.Push(&PeerReceiveAborted{ErrorCode: code})
	snd.aborted, snd.abortCode, snd.resetSent = true, code, true
	if !snd.writing {
		snd.cancelPendingLocked()
		snd.finishAbortLocked()
	}
}

// peerStopSending runs when quic-go reports STOP_SENDING without a write.
func (s *Stream) peerStopSending(code uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != streamStarted {
		return
	}
	s.snd.peerStopLocked(code)
	s.maybeFinalLocked()
}

// maybeGracefulLocked completes a graceful shutdown: once the FIN and all data
// are acknowledged when the recorder follows acknowledgements, or once the FIN
// is handed to quic-go when it does not.
func (snd *sendSide) maybeGracefulLocked() {
	if snd.done || !snd.finWritten || snd.aborted || snd.earlyFin {
		return // a FIN sent in 0-RTT counts once the server accepted 0-RTT
	}
	if snd.s.tracked && !(snd.finAcked && snd.acked >= snd.offset) {
		return
	}
	snd.done = true
	snd.s.q.Push(&SendShutdownComplete{Graceful: true})
}

// completeAckedLocked completes non-buffered sends the peer acknowledged.
func (snd *sendSide) completeAckedLocked() {
	n := 0
	for _, req := range snd.ackWait {
		if req.end > snd.acked {
			break
		}
		req.completed = true
		snd.s.q.Push(&SendComplete{Context: req.ctx})
		n++
	}
	if n > 0 {
		clear(snd.ackWait[:n])
		snd.ackWait = snd.ackWait[n:]
	}
}

// acked runs (on quic-go's goroutine) when the peer has acknowledged a longer
// prefix of the stream.
func (s *Stream) acked(prefix uint64, finAcked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snd := &s.snd
	if prefix > snd.acked {
		snd.acked = prefix
	}
	snd.finAcked = snd.finAcked || finAcked
	if s.phase != streamStarted {
		return
	}
	snd.completeAckedLocked()
	snd.maybeGracefulLocked()
	s.maybeFinalLocked()
}

// dataLost runs (on quic-go's goroutine, inside loss detection) when a packet
// carrying this stream's data was lost: a stream in cancel-on-loss mode is
// reset at once, before quic-go queues a retransmission.
func (s *Stream) dataLost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cancelOnLoss || s.phase != streamStarted || s.snd.aborted || s.snd.done {
		return
	}
	s.q.Push(&CancelOnLoss{ErrorCode: s.cancelCode})
	s.snd.abortLocked(s.cancelCode)
	s.maybeFinalLocked()
}

// idealSendBuffer indicates a new ideal send buffer size while the app may
// still send.
func (s *Stream) idealSendBuffer(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snd := &s.snd
	if s.phase != streamStarted || !s.canSend || snd.fin || snd.done || snd.aborted || snd.ideal == n {
		return
	}
	snd.ideal = n
	s.q.Push(&IdealSendBufferSize{ByteCount: n})
}

// IdealSendBufferSize is QUIC_PARAM_STREAM_IDEAL_SEND_BUFFER_SIZE: the ideal
// send buffer size last indicated to the stream (IdealSendBufferSize event),
// DefaultIdealSendBufferSize until one was. It grows only with TrackAcks (the
// recorder follows the bytes in flight).
func (s *Stream) IdealSendBufferSize() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, newErr("Stream.IdealSendBufferSize", ErrInvalidState, "stream closed")
	}
	return max(s.snd.ideal, DefaultIdealSendBufferSize), nil
}

// SetCancelOnLossCode sets the error code a cancel-on-loss stream resets with
// when a packet is lost (MsQuic lets the app write it into CANCEL_ON_LOSS; an
// event on a channel is read too late for that, so the code is chosen ahead).
// The default is 0.
func (s *Stream) SetCancelOnLossCode(code uint64) error {
	if code > maxVarint {
		return newErr("Stream.SetCancelOnLossCode", ErrInvalidParameter, "error code above 2^62-1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return newErr("Stream.SetCancelOnLossCode", ErrInvalidState, "stream closed")
	}
	s.cancelCode = code
	return nil
}

// connectionEndedLocked ends the send direction silently (MsQuic sends no
// RESET_STREAM on connection shutdown).
func (snd *sendSide) connectionEndedLocked() {
	if snd.done {
		return
	}
	snd.aborted, snd.resetSent = true, true
	if !snd.writing {
		snd.cancelPendingLocked()
		snd.finishAbortLocked()
	}
}

// finishedLocked reports whether the send direction is done.
func (snd *sendSide) finishedLocked() bool { return snd.done }

// SetReliableOffset is QUIC_PARAM_STREAM_RELIABLE_OFFSET: a later reset still
// delivers the stream's data up to offset (RESET_STREAM_AT), when both sides
// negotiated it (ReliableResetNegotiated). quic-go can mark only "everything
// written so far", so offset must be the total of the sends accepted so far:
// quicx places the mark when its writer has handed them all to quic-go (an
// abort before that resets without it). A smaller offset is ErrNotSupported, a
// larger one ErrInvalidState, as is a stream aborted or not started.
func (s *Stream) SetReliableOffset(offset uint64) error {
	const op = "Stream.SetReliableOffset"
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return newErr(op, ErrInvalidState, "stream closed")
	case s.phase != streamStarted:
		return newErr(op, ErrInvalidState, "stream not started")
	case s.snd.aborted || s.snd.done:
		return newErr(op, ErrInvalidState, "send direction shut down")
	case offset > s.snd.accepted:
		return newErr(op, ErrInvalidState, "offset %d beyond the %d bytes sent", offset, s.snd.accepted)
	case offset < s.snd.accepted:
		return newErr(op, ErrNotSupported, "quic-go marks only all the data sent so far (%d bytes)", s.snd.accepted)
	}
	if s.as != nil && s.snd.offset == offset && s.snd.inflight == nil {
		s.as.SetReliableBoundary()
		return nil
	}
	s.snd.reliableAt = offset
	return nil
}
