package adapter

import (
	"context"

	"github.com/quic-go/quic-go/qlog"
)

// With TrackZeroRTT the recorder follows what the peer sent in 0-RTT packets,
// the way MsQuic does (src/core/stream_recv.c, stream_set.c):
//
//   - per stream, the end of the furthest STREAM data received in a 0-RTT
//     packet (MsQuic's Stream->RecvMax0RttLength: only frames with data
//     count). A RECEIVE carries the 0_RTT flag when its offset lies below it.
//   - per peer stream, whether the frame that opened it (STREAM,
//     RESET_STREAM, STOP_SENDING, MAX_STREAM_DATA or STREAM_DATA_BLOCKED; a
//     frame for a new ID opens every lower ID of its type too) came in a
//     0-RTT packet: PEER_STREAM_STARTED's 0_RTT flag (MsQuic's FrameIn0Rtt).
//
// quic-go hands a new peer stream to AcceptStream while it handles the frame
// that opened it, and records the packet only after all its frames are
// handled (connection.go handleFrames), so a stream can be accepted before the
// recorder knows how it was opened: OpenedIn0RTT waits for that record.

// zeroRTTTracker follows which peer streams were opened by 0-RTT packets.
// Guarded by the recorder's mutex.
type zeroRTTTracker struct {
	// seen is the next peer stream ID of each type (bidi 0, uni 1) that no
	// recorded frame has referenced yet.
	seen [2]uint64
	// early holds the ranges [first, last] of peer stream IDs of each type
	// opened by frames in 0-RTT packets: in practice one range, the streams
	// the peer opened before the handshake completed.
	early [2][][2]uint64
	// wait is closed when seen advances; nil while nobody waits.
	wait chan struct{}
}

func (z *zeroRTTTracker) init(isClient bool) {
	first := uint64(0)
	if isClient {
		first = 1
	}
	z.seen = [2]uint64{first, first | 2}
}

// opened notes a frame for stream id in a received packet (early: a 0-RTT
// packet). It reports whether the frame opened new peer streams.
func (z *zeroRTTTracker) opened(id uint64, isClient, early bool) bool {
	if peer := (id&1 == 1) == isClient; !peer {
		return false
	}
	t := id >> 1 & 1
	next := z.seen[t]
	if id < next || (id-next)/4 >= maxPeerStreamGap {
		return false // known already, or beyond any limit: quic-go closes the connection
	}
	if early {
		if rs := z.early[t]; len(rs) > 0 && rs[len(rs)-1][1]+4 == next {
			rs[len(rs)-1][1] = id
		} else {
			z.early[t] = append(rs, [2]uint64{next, id})
		}
	}
	z.seen[t] = id + 4
	return true
}

// openedEarly reports whether peer stream id, already seen, was opened by a
// 0-RTT packet.
func (z *zeroRTTTracker) openedEarly(id uint64) bool {
	for _, r := range z.early[id>>1&1] {
		if r[0] <= id && id <= r[1] {
			return true
		}
	}
	return false
}

// peerStreamsOpened follows the frames of one received packet that can open
// a peer stream, and wakes OpenedIn0RTT waiters when new streams were.
func (r *recorder) peerStreamsOpened(e *qlog.PacketReceived) {
	early := e.Header.PacketType == qlog.PacketType0RTT
	z := &r.rx.zr
	locked, advanced := false, false
	for _, f := range e.Frames {
		var id qlog.StreamID
		switch fr := f.Frame.(type) {
		case *qlog.StreamFrame:
			id = fr.StreamID
		case *qlog.ResetStreamFrame:
			id = fr.StreamID
		case *qlog.StopSendingFrame:
			id = fr.StreamID
		case *qlog.MaxStreamDataFrame:
			id = fr.StreamID
		case *qlog.StreamDataBlockedFrame:
			id = fr.StreamID
		default:
			continue
		}
		if !locked { // most packets carry no stream frame: no lock for them
			r.mu.Lock()
			locked = true
		}
		if z.opened(uint64(id), r.isClient, early) {
			advanced = true
		}
	}
	if !locked {
		return
	}
	if advanced && z.wait != nil {
		close(z.wait)
		z.wait = nil
	}
	r.mu.Unlock()
}

// OpenedIn0RTT reports whether the frame that opened this peer stream came in
// a 0-RTT packet (MsQuic's QUIC_STREAM_OPEN_FLAG_0_RTT). It waits until the
// recorder has seen that frame's packet, which quic-go records right after
// handling it, or until ctx ends (then false). Always false without
// TrackZeroRTT.
func (s *Stream) OpenedIn0RTT(ctx context.Context) bool {
	r := s.zr
	if r == nil || (s.id&1 == 1) != r.isClient {
		return false // untracked, or not a peer stream
	}
	t := s.id >> 1 & 1
	for {
		r.mu.Lock()
		z := &r.rx.zr
		if s.id < z.seen[t] {
			early := z.openedEarly(s.id)
			r.mu.Unlock()
			return early
		}
		if z.wait == nil {
			z.wait = make(chan struct{})
		}
		w := z.wait
		r.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return false
		}
	}
}

// ZeroRTTEnd is MsQuic's RecvMax0RttLength for this stream: the end offset of
// the furthest STREAM data received in a 0-RTT packet, 0 if none (or without
// TrackZeroRTT). Data indicated from an offset below it carries the 0_RTT
// flag.
func (s *Stream) ZeroRTTEnd() uint64 {
	r := s.zr
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.rx.streams[s.id]; st != nil {
		return uint64(st.end0)
	}
	return 0
}

// zeroRTTRecorder returns the connection's recorder if it follows 0-RTT data.
func (c *Conn) zeroRTTRecorder() *recorder {
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r == nil || r.track&TrackZeroRTT == 0 {
		return nil
	}
	return r
}
