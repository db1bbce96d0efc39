package adapter

// quic-go tells that data arrived on a stream only by returning from a Read
// that was waiting for it, so a reader that must never miss data waits in Read:
// one goroutine per idle stream. Its qlog tracer is the one other witness:
// quic-go records a received packet's frames right after it has handled them
// (connection.go handleFrames), so once the recorder has seen a STREAM frame,
// its bytes are in the stream's queue. With TrackReceive the recorder keeps,
// per stream, which byte ranges have arrived; a reader reads only what is
// readable and stops, and the recorder wakes it when more is.

// rxTracker follows the bytes received on each stream that can receive.
// Guarded by the recorder's mutex.
type rxTracker struct {
	streams map[uint64]*rxState
	// peerNext is the next stream ID the peer has not opened yet, for bidi
	// (0) and uni (1) streams. A frame for a lower peer stream ID with no
	// state belongs to a stream quicx already forgot.
	peerNext [2]uint64
	isClient bool
	zr       zeroRTTTracker // with TrackZeroRTT
}

// maxPeerStreamGap bounds the streams one frame can open: quicx never lets
// the peer open more than 65535 streams of a type at a time.
const maxPeerStreamGap = 1 << 16

// rxState is what has arrived on one stream.
type rxState struct {
	got     rangeSet
	final   int64 // the final size once known (FIN or RESET_STREAM), else -1
	reset   bool  // RESET_STREAM arrived
	watch   bool  // a reader waits for data beyond watchAt
	watchAt int64
	end0    int64 // the end of the furthest data received in 0-RTT (TrackZeroRTT)
}

func (t *rxTracker) init(isClient bool) {
	t.streams = map[uint64]*rxState{}
	t.isClient = isClient
	// Stream IDs: bit 0 is the initiator (1: server), bit 1 the direction
	// (1: unidirectional).
	first := uint64(0)
	if isClient {
		first = 1
	}
	t.peerNext = [2]uint64{first, first | 2}
	t.zr.init(isClient)
}

// readable reports whether a Read after pos bytes returns without waiting:
// data beyond pos has arrived, or the FIN right at pos, or a reset.
func (st *rxState) readable(pos int64) bool {
	p := st.got.prefix()
	return st.reset || p > pos || (st.final >= 0 && p >= st.final)
}

// state returns the stream's state. A peer stream's state exists from the
// first frame of it or of a later stream of its type (which opens it
// implicitly), or from its acceptance, whichever comes first: quic-go hands
// the stream to AcceptStream while it handles the frame, before the recorder
// sees it. nil means a stream this side forgot, or a local one not watched.
func (t *rxTracker) state(id uint64) *rxState {
	if peer := (id&1 == 1) == t.isClient; peer {
		uni := id >> 1 & 1
		next := t.peerNext[uni]
		if id >= next {
			if (id-next)/4 >= maxPeerStreamGap {
				return nil // beyond any stream limit: quic-go closes the connection
			}
			for ; next <= id; next += 4 {
				if t.streams[next] == nil {
					t.streams[next] = &rxState{final: -1}
				}
			}
			t.peerNext[uni] = next
		}
	}
	return t.streams[id]
}

// received follows one STREAM frame ([start, end) and its FIN) or a
// RESET_STREAM, and wakes the stream's reader if it waits and can now read.
// early: data that came in a 0-RTT packet (TrackZeroRTT).
func (r *recorder) received(id uint64, start, end int64, fin, reset, early bool) {
	r.mu.Lock()
	st := r.rx.state(id)
	if st == nil {
		r.mu.Unlock()
		return
	}
	st.got.add(start, end)
	if early {
		st.end0 = max(st.end0, end)
	}
	if fin {
		st.final = end
	}
	st.reset = st.reset || reset
	wake := st.watch && st.readable(st.watchAt)
	if wake {
		st.watch = false
	}
	h := r.h
	r.mu.Unlock()
	if wake && h != nil {
		h.StreamReadable(id)
	}
}

// watchStream starts following a stream that can receive: a local bidi
// stream from its opening, a peer stream (already followed from its first
// frame) from its acceptance.
func (r *recorder) watchStream(id uint64) {
	r.mu.Lock()
	if r.rx.state(id) == nil {
		r.rx.streams[id] = &rxState{final: -1}
	}
	r.mu.Unlock()
}

// readableOrWatch reports whether a Read of stream id after pos bytes returns
// at once; if not, StreamReadable(id) follows when it would.
func (r *recorder) readableOrWatch(id uint64, pos int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.rx.streams[id]
	if st == nil {
		// Forgotten: the stream has ended and a Read returns its end at once.
		return true
	}
	if st.readable(pos) {
		st.watch = false
		return true
	}
	st.watch, st.watchAt = true, pos
	return false
}

// ParksReads reports whether the connection's recorder follows received data
// (TrackReceive): then a reader need not wait in Read, see ReadableOrWatch.
func (s *Stream) ParksReads() bool { return s.rx != nil }

// ReadableOrWatch reports whether a Read after pos bytes of the stream would
// return at once (with data, the FIN or the reset). If it would not, the
// connection's RecorderHandler gets StreamReadable once it would. Only with
// ParksReads.
func (s *Stream) ReadableOrWatch(pos uint64) bool {
	return s.rx.readableOrWatch(s.id, int64(pos))
}

// receiveRecorder returns the recorder that follows received data for the
// stream, after starting to follow it; nil without TrackReceive.
func (c *Conn) receiveRecorder(id uint64) *recorder {
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r == nil || r.track&TrackReceive == 0 {
		return nil
	}
	r.watchStream(id)
	return r
}
