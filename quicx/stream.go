package quicx

import (
	"sync"
	"sync/atomic"

	"quicx.dev/adapter"
	"quicx.dev/quicx/internal/evq"
)

type streamPhase int

const (
	streamOpened  streamPhase = iota // opened, not started: no ID, nothing on the wire
	streamStarted                    // started (StartComplete delivered, or a peer stream)
	streamFinal                      // StreamShutdownComplete queued (or abandoned)
)

// Stream is MsQuic's stream. A local stream comes from Connection.OpenStream
// and is started with Start (or a send with SendStart); a peer's stream
// arrives in PeerStreamStarted already started. All methods are safe for
// concurrent use, including from the goroutine reading Events, and none waits
// for that goroutine.
type Stream struct {
	conn      *Connection
	q         evq.Queue[StreamEvent]
	openFlags StreamOpenFlags
	local     bool
	uni       bool
	canSend   bool
	canRecv   bool

	// eventsAsked: Events was called. No data is indicated before
	// (recvSide.held).
	eventsAsked atomic.Bool

	mu           sync.Mutex
	phase        streamPhase
	as           *adapter.Stream // nil until quic-go has opened the stream
	id           uint64
	hasID        bool
	startFlags   StreamStartFlags
	closed       bool // Close was called
	appClose     bool // AppCloseInProgress for the final event
	connEnd      *connEnd
	sendBuffer   bool // SendBufferingEnabled when the stream was created
	tracked      bool // the connection's recorder follows acknowledgements
	multiRecv    bool
	priority     uint16
	prioritySet  bool        // SetPriority was called: quic-go's default applies until then
	stopWatch    func() bool // stops the STOP_SENDING watcher
	voided       bool        // the server rejected 0-RTT: as is void until the stream is reopened
	cancelCode   uint64      // cancel-on-loss error code
	cancelOnLoss bool
	inlineFinal  bool       // the holder of mu came through lockInline and leaves by unlockInline
	finPending   bool       // finWork waits for that lock holder
	finWork      finishWork // valid while finPending

	snd sendSide
	rcv recvSide
}

// OpenStream is StreamOpen: a local stream with no ID and nothing on the wire
// until Start. Sends and shutdowns before Start are queued.
func (c *Connection) OpenStream(flags StreamOpenFlags) (*Stream, error) {
	const op = "Connection.OpenStream"
	if flags&^(StreamOpenUnidirectional|StreamOpenDelayIDFCUpdates|StreamOpenAppOwnedBuffers) != 0 {
		return nil, newErr(op, ErrInvalidParameter, "flags %s", flags)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, newErr(op, ErrInvalidState, "connection closed")
	}
	if c.end != nil {
		if c.end.byApp {
			return nil, newErr(op, ErrInvalidState, "connection shut down")
		}
		return nil, newErr(op, ErrAborted, "connection closed by the peer or the transport")
	}
	if c.state == connDeciding {
		return nil, newErr(op, ErrInvalidState, "answer NewConnection first")
	}
	uni := flags&StreamOpenUnidirectional != 0
	s := newStream(c, flags, true, uni, c.res)
	return s, nil
}

func newStream(c *Connection, flags StreamOpenFlags, local, uni bool, res resolved) *Stream {
	s := &Stream{
		conn:       c,
		openFlags:  flags,
		local:      local,
		uni:        uni,
		canSend:    local || !uni,
		canRecv:    !local || !uni,
		sendBuffer: res.sendBuffering,
		multiRecv:  res.multiReceive && flags&StreamOpenAppOwnedBuffers == 0,
		priority:   0x7FFF,
	}
	s.q.Init(c.reg.eventBuffer())
	s.snd.init(s, c.reg.sendBudget())
	s.rcv.init(s, c.reg.receiveBufferSize())
	return s
}

// newPeerStream wraps a stream the peer opened; it is started already.
func newPeerStream(c *Connection, as *adapter.Stream, uni bool) *Stream {
	c.mu.Lock()
	res := c.res
	c.mu.Unlock()
	flags := StreamOpenNone
	if uni {
		flags |= StreamOpenUnidirectional
	}
	s := newStream(c, flags, false, uni, res)
	s.as, s.id, s.hasID, s.phase = as, as.ID(), true, streamStarted
	s.tracked = as.TracksAcks()
	return s
}

// startPeer begins reading a peer stream and watching its send direction. The
// reader is started first: a request's FIN usually arrives with the stream,
// and quic-go then calls the final-size callback at once, from
// watchTransportLocked; with the reader active that callback needs no
// goroutine to look for a reset.
func (s *Stream) startPeer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcv.kickLocked()
	s.watchTransportLocked()
}

// Events returns the stream's event channel. It is closed right after
// StreamShutdownComplete, or, for a stream that never started (or whose start
// failed without StreamStartShutdownOnFail), when the stream is closed. Read it
// until it is closed: events wait for the reader (none is ever dropped), and
// while they wait a goroutine of quicx waits with them.
//
// A stream indicates no data until Events is first called (or
// ProvideReceiveBuffers): on a peer's stream, what MsQuic allows inline in
// PEER_STREAM_STARTED, such as switching to app-owned buffers or disabling
// receive, can be done first. Meanwhile quicx reads at most its two receive
// buffers' worth (the rest waits in QUIC flow control), and a switch to
// app-owned buffers copies that into the app's buffers. Data and a FIN that
// arrived by then come in one Receive.
func (s *Stream) Events() <-chan StreamEvent {
	if !s.eventsAsked.Load() && s.eventsAsked.CompareAndSwap(false, true) {
		s.mu.Lock()
		s.rcv.releaseLocked()
		s.mu.Unlock()
	}
	return s.q.C()
}

// ID is QUIC_PARAM_STREAM_ID: ErrInvalidState before the stream is started.
func (s *Stream) ID() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasID {
		return 0, newErr("Stream.ID", ErrInvalidState, "stream not started")
	}
	return s.id, nil
}

// Connection returns the connection the stream belongs to.
func (s *Stream) Connection() *Connection { return s.conn }

// Start is StreamStart. It is always answered by exactly one StartComplete.
// The stream gets its ID at once, even when the peer's stream limit or a
// connection not yet connected keeps it off the wire (then
// StartComplete.PeerAccepted is false and, with StreamStartIndicatePeerAccept,
// PeerAccepted follows). StreamStartFailBlocked fails the start with
// ErrStreamLimitReached instead of waiting. StreamStartImmediate is refused with
// ErrNotSupported: quic-go announces a stream only with its first data, FIN or
// reset.
func (s *Stream) Start(flags StreamStartFlags) error {
	const op = "Stream.Start"
	if flags&^(StreamStartFailBlocked|StreamStartShutdownOnFail|StreamStartIndicatePeerAccept|StreamStartImmediate) != 0 {
		if flags&StreamStartPriorityWork != 0 {
			return newErr(op, ErrNotSupported, "PRIORITY_WORK: quic-go has no operation queue to prioritize")
		}
		return newErr(op, ErrInvalidParameter, "flags %s", flags)
	}
	if flags&StreamStartImmediate != 0 {
		return newErr(op, ErrNotSupported, "IMMEDIATE: quic-go cannot put an empty stream on the wire; send data or a FIN")
	}
	return s.start(op, flags)
}

func (s *Stream) start(op string, flags StreamStartFlags) error {
	return s.conn.startStream(op, s, flags)
}

// startedLocked records a successful start with its ID and queues StartComplete.
func (s *Stream) startedLocked(id uint64, accepted bool, flags StreamStartFlags) {
	s.phase, s.id, s.hasID, s.startFlags = streamStarted, id, true, flags
	s.conn.registerStream(s, id)
	s.q.Push(&StartComplete{ID: id, PeerAccepted: accepted})
	s.snd.startedLocked()
	s.rcv.startedLocked()
	s.maybeFinalLocked()
}

// startFailedLocked answers a failed start. The stream may be started again,
// unless SHUTDOWN_ON_FAIL ends it.
func (s *Stream) startFailedLocked(st Status, flags StreamStartFlags) {
	s.q.Push(&StartComplete{Status: st})
	if flags&StreamStartShutdownOnFail != 0 {
		s.phase = streamFinal
		s.snd.cancelAllLocked()
		s.q.PushFinal(&StreamShutdownComplete{AppCloseInProgress: s.closed})
	}
}

// openedLate attaches quic-go's stream once the peer's credit let quic-go
// open it, after a start that had to wait. PeerAccepted (if asked for) is
// queued in the same locked step, first: what the attached stream does at once
// (a queued send written inline, its FIN) follows it.
func (s *Stream) openedLate(as *adapter.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.startFlags&StreamStartIndicatePeerAccept != 0 && s.phase == streamStarted {
		s.q.Push(&PeerAccepted{})
	}
	s.attachLocked(as)
}

func (s *Stream) attachLocked(as *adapter.Stream) {
	s.as = as
	s.tracked = as.TracksAcks()
	if s.snd.aborted {
		s.snd.resetLocked()
	}
	if s.rcv.aborted {
		s.rcv.stopLocked()
	}
	switch {
	case s.phase == streamStarted:
		s.transportReadyLocked()
	case s.phase == streamFinal && !s.snd.resetSent:
		// The stream ended while it waited for credit (the connection shut down,
		// or it was closed): its ID is taken, so tell the peer it is gone.
		as.CancelWrite(s.snd.abortCode)
		as.CancelRead(s.rcv.abortCode)
	}
}

// transportReadyLocked runs once the stream is started and opened in quic-go.
func (s *Stream) transportReadyLocked() {
	s.applyPriorityLocked()
	s.watchTransportLocked()
	s.snd.kickLocked()
	s.rcv.kickLocked()
}

// watchTransportLocked arranges for STOP_SENDING and RESET_STREAM to be seen
// without a pending read or write. A send direction already ending (its FIN
// requested, or aborted) is not watched: it never idles open again, so the
// writer's own write, or the reset, meets STOP_SENDING, and the watcher would
// only be stopped again when the FIN goes out.
func (s *Stream) watchTransportLocked() {
	as := s.as
	if as.CanSend() && !s.snd.fin && !s.snd.aborted {
		s.stopWatch = as.OnStopSending(func(code uint64, ok bool) {
			if ok {
				s.peerStopSending(code)
			}
		})
	}
	if as.CanReceive() {
		as.OnFinalSize(s.finalSizeKnown)
	}
}

// finalSizeKnown is the final-size callback (on quic-go's goroutine): a
// method value of the stream itself, so the callback costs one allocation.
func (s *Stream) finalSizeKnown(int64) { s.rcv.finalSizeKnown() }

// Shutdown is StreamShutdown. GRACEFUL sends a FIN after the queued data;
// ABORT_SEND resets the send direction and ABORT_RECEIVE asks the peer to stop
// sending, each with code (at most 2^62-1; the first code per direction wins).
// IMMEDIATE (with both aborts) completes the stream at once. On a stream not
// yet started the shutdown is queued. INLINE is accepted and changes nothing:
// quicx never calls back.
func (s *Stream) Shutdown(flags StreamShutdownFlags, code uint64) error {
	const op = "Stream.Shutdown"
	flags &^= StreamShutdownInline
	switch {
	case flags == 0 || flags&^(StreamShutdownGraceful|StreamShutdownAbort|StreamShutdownImmediate) != 0:
		return newErr(op, ErrInvalidParameter, "flags %s", flags)
	case flags&StreamShutdownGraceful != 0 && flags != StreamShutdownGraceful:
		return newErr(op, ErrInvalidParameter, "GRACEFUL cannot be combined with ABORT or IMMEDIATE")
	case flags&StreamShutdownImmediate != 0 && flags&StreamShutdownAbort != StreamShutdownAbort:
		return newErr(op, ErrInvalidParameter, "IMMEDIATE needs ABORT_SEND and ABORT_RECEIVE")
	case code > maxVarint:
		return newErr(op, ErrInvalidParameter, "error code above 2^62-1")
	}
	s.lockInline()
	defer s.unlockInline()
	if s.closed {
		return newErr(op, ErrInvalidState, "stream closed")
	}
	if flags&StreamShutdownGraceful != 0 {
		if !s.canSend {
			return newErr(op, ErrInvalidState, "the stream has no send direction")
		}
		s.snd.finLocked()
		return nil
	}
	if flags&StreamShutdownAbortSend != 0 && s.canSend {
		s.snd.abortLocked(code)
	}
	if flags&StreamShutdownAbortReceive != 0 && s.canRecv {
		s.rcv.abortLocked(code)
	}
	s.maybeFinalLocked()
	return nil
}

// Close is StreamClose. A stream never started is abandoned (nothing on the
// wire, no events; its channel closes). A started stream not yet shut down is
// aborted in both directions with code 0 and still delivers its final events,
// with AppCloseInProgress. Close does not wait for the consumer of Events.
// Calls on a closed stream return ErrInvalidState.
func (s *Stream) Close() error {
	s.lockInline()
	if s.closed {
		s.unlockInline()
		return newErr("Stream.Close", ErrInvalidState, "stream already closed")
	}
	s.closed = true
	s.appClose = true
	switch s.phase {
	case streamOpened:
		s.phase = streamFinal
		s.snd.discardLocked()
		s.unlockInline()
		s.q.End()
		return nil
	case streamFinal:
		s.unlockInline()
		s.q.End() // a failed start without SHUTDOWN_ON_FAIL: end the channel
		s.releaseCredit()
		return nil
	}
	if s.canSend {
		s.snd.abortLocked(0)
	}
	if s.canRecv {
		s.rcv.abortLocked(0)
	}
	s.maybeFinalLocked()
	s.unlockInline()
	s.releaseCredit()
	return nil
}

// releaseCredit returns a peer stream's credit to the peer. quic-go frees it
// when the stream has completed and this was called, in either order; quicx
// calls it when the stream finishes, or at Close for DELAY_ID_FC_UPDATES.
func (s *Stream) releaseCredit() {
	s.mu.Lock()
	as, peer := s.as, !s.local
	s.mu.Unlock()
	if peer && as != nil {
		as.ReleaseCredit()
	}
}

// SetDelayIDFCUpdates sets QUIC_STREAM_OPEN_FLAG_DELAY_ID_FC_UPDATES on a peer
// stream (MsQuic's write-back into PEER_STREAM_STARTED): the peer gets this
// stream's credit back only when the stream is closed, not when it finishes.
func (s *Stream) SetDelayIDFCUpdates() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return newErr("Stream.SetDelayIDFCUpdates", ErrInvalidState, "stream closed")
	}
	if s.local {
		return newErr("Stream.SetDelayIDFCUpdates", ErrInvalidParameter, "open local streams with StreamOpenDelayIDFCUpdates")
	}
	if s.phase == streamFinal {
		return newErr("Stream.SetDelayIDFCUpdates", ErrInvalidState, "stream already finished")
	}
	s.openFlags |= StreamOpenDelayIDFCUpdates
	return nil
}

// connectionEnded ends a started stream because its connection is gone.
func (s *Stream) connectionEnded(end *connEnd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != streamStarted {
		return
	}
	s.connEnd = end
	s.snd.connectionEndedLocked()
	s.rcv.connectionEndedLocked()
	s.maybeFinalLocked()
}

// maybeFinalLocked queues StreamShutdownComplete once both directions are
// done and no goroutine holds the app's buffers.
func (s *Stream) maybeFinalLocked() {
	if s.phase != streamStarted {
		return
	}
	if (s.canSend && !s.snd.finishedLocked()) || (s.canRecv && !s.rcv.finishedLocked()) {
		return
	}
	s.phase = streamFinal
	ev := &StreamShutdownComplete{AppCloseInProgress: s.appClose}
	if e := s.connEnd; e != nil {
		ev.ConnectionShutdown = true
		ev.ConnectionShutdownByApp = e.byApp
		ev.ConnectionClosedRemotely = e.remote
		ev.ConnectionErrorCode = e.code
		ev.ConnectionCloseStatus = e.status
	}
	s.q.PushFinal(ev)
	w := finishWork{
		as:      s.as,
		id:      s.id,
		hasID:   s.hasID,
		release: !s.local && s.openFlags&StreamOpenDelayIDFCUpdates == 0,
	}
	if s.inlineFinal {
		s.finPending, s.finWork = true, w
		return
	}
	// The caller may be on quic-go's goroutine (the recorder's callbacks) or
	// hold the opener's lock: the rest runs on its own goroutine.
	go s.finished(w)
}

// finishWork is what is left to do once a stream's final event is queued: it
// takes quic-go's, the recorder's and the connection's locks, so it runs
// without the stream's lock.
type finishWork struct {
	as      *adapter.Stream
	id      uint64
	hasID   bool
	release bool // return a peer stream's credit now
}

// finished returns the stream's credit and forgets it in the recorder and the
// connection (whose final event may then follow).
func (s *Stream) finished(w finishWork) {
	if w.release && w.as != nil {
		w.as.ReleaseCredit()
	}
	if w.as != nil {
		s.conn.forgetStream(w.id)
	}
	s.conn.streamFinished(s, w.id, w.hasID)
}

// lockInline locks the stream for a caller that holds no other lock and is
// not on quic-go's goroutine (an app's call, quicx's own writer): if the
// stream finishes meanwhile, unlockInline does the final work on the caller's
// goroutine instead of starting one for it.
func (s *Stream) lockInline() {
	s.mu.Lock()
	s.inlineFinal = true
}

// unlockInline unlocks a stream locked by lockInline and runs the final work
// the stream left to it.
func (s *Stream) unlockInline() {
	s.inlineFinal = false
	w, pending := s.finWork, s.finPending
	s.finPending, s.finWork = false, finishWork{}
	s.mu.Unlock()
	if pending {
		s.finished(w)
	}
}

// forgetStream drops the recorder's state for a finished stream.
func (c *Connection) forgetStream(id uint64) {
	c.mu.Lock()
	ac := c.ac
	c.mu.Unlock()
	if ac != nil {
		ac.ForgetStream(id)
	}
}

// ---- priority ----

// SetPriority is QUIC_PARAM_STREAM_PRIORITY: 0..0xFFFF, higher is sent first
// (default 0x7FFF). quic-go schedules by eight urgency levels, lower first, so
// the default maps onto quic-go's default urgency 3, the values above it onto
// 2, 1 and 0 (three equal bands), and the values below it onto 4 to 7 (bands of
// 0x2000). Streams in the same band share the path round-robin.
func (s *Stream) SetPriority(p uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return newErr("Stream.SetPriority", ErrInvalidState, "stream closed")
	}
	s.priority = p
	s.prioritySet = true
	if s.as != nil {
		s.applyPriorityLocked()
	}
	return nil
}

// Priority is QUIC_PARAM_STREAM_PRIORITY (get).
func (s *Stream) Priority() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priority
}

// urgency maps MsQuic's priority onto quic-go's urgency.
func urgency(p uint16) int8 {
	switch {
	case p == 0x7FFF:
		return 3
	case p > 0x7FFF:
		return 2 - int8(min((p-0x8000)/0x2AAB, 2))
	}
	return 4 + int8(min((0x7FFE-p)/0x2000, 3))
}

func (s *Stream) applyPriorityLocked() {
	if !s.prioritySet || s.as == nil || !s.canSend {
		return
	}
	s.as.SetPriority(urgency(s.priority), true)
}

// StreamStats is the part of QUIC_STREAM_STATISTICS quicx can count; MsQuic's
// per-state blocked times have no quic-go counterpart.
type StreamStats struct {
	SendTotalBytes  uint64 // bytes of the sends accepted so far
	SendSentBytes   uint64 // bytes handed to quic-go
	SendAckedBytes  uint64 // contiguous bytes the peer acknowledged (with TrackAcks; else 0)
	RecvTotalBytes  uint64 // bytes received and indicated to the app
	RecvConsumed    uint64 // bytes the app completed
	ZeroRTTRecvSize uint64 // QUIC_PARAM_STREAM_0RTT_LENGTH: always 0, see Stats
}

// Stats is QUIC_PARAM_STREAM_STATISTICS (and QUIC_PARAM_STREAM_0RTT_LENGTH):
// ErrInvalidState before the stream is started.
//
// ZeroRTTRecvSize is always 0. Despite the field's name, MsQuic's
// QUIC_PARAM_STREAM_0RTT_LENGTH is the bytes this side sent in 0-RTT
// (Stream->Sent0Rtt in stream.c QuicStreamParamGet), which is 0 on a server's
// streams, and quicx clients do not count what they send in 0-RTT
// (docs/limitations.md). What a
// server received in 0-RTT is marked by Receive0RTT (TrackZeroRTT).
func (s *Stream) Stats() (StreamStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasID {
		return StreamStats{}, newErr("Stream.Stats", ErrInvalidState, "stream not started")
	}
	st := StreamStats{
		SendTotalBytes: s.snd.accepted,
		SendSentBytes:  s.snd.offset,
		SendAckedBytes: s.snd.acked,
		RecvConsumed:   s.rcv.offset,
		RecvTotalBytes: s.rcv.offset,
	}
	if s.rcv.multi {
		st.RecvTotalBytes, st.RecvConsumed = s.rcv.delivered, s.rcv.completed
	} else if s.rcv.pending != nil {
		st.RecvTotalBytes += s.rcv.pending.TotalLength()
	}
	return st, nil
}

// ---- 0-RTT ----

// opened reports whether the stream exists in quic-go.
func (s *Stream) opened() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.as != nil
}

// kickWriter starts the writer if sends wait (after the 0-RTT phase).
func (s *Stream) kickWriter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snd.kickLocked()
}

// earlyOver ends the 0-RTT phase: the server accepted the data or it has been
// replayed, so the replay log goes and a FIN written meanwhile counts.
func (s *Stream) earlyOver() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snd.earlyLog, s.snd.earlyFin = nil, false
	if s.phase == streamStarted {
		s.snd.maybeGracefulLocked()
		s.maybeFinalLocked()
	}
}

// reopenAfterRejection attaches the stream's new quic-go stream after the
// server rejected 0-RTT and queues the data it wrote in 0-RTT (already
// completed towards the app) ahead of the rest: the app sees nothing of it.
func (s *Stream) reopenAfterRejection(as *adapter.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snd := &s.snd
	replay := make([]*sendReq, 0, len(snd.earlyLog))
	for _, b := range snd.earlyLog {
		replay = append(replay, &sendReq{bufs: [][]byte{b}, n: len(b), copied: true, completed: true, allow0RTT: true})
		snd.copied += len(b)
	}
	snd.queue = append(replay, snd.queue...)
	snd.replayed = len(replay)
	snd.offset, snd.acked, snd.finAcked = 0, 0, false
	if snd.earlyFin {
		snd.finWritten = false
	}
	snd.earlyLog, snd.earlyFin = nil, false
	s.voided = false
	s.as = nil
	s.attachLocked(as)
}
