package adapter

import (
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

// RecorderHandler receives what the recorder derives. Its methods run on
// quic-go's goroutines, synchronously, with the connection's loop waiting:
// they must return quickly and must not block. The one call back into quic-go
// made from here is CancelWrite from StreamDataLost (cancel-on-loss): it runs
// before quic-go queues the lost frames for retransmission, which is what
// makes the cancellation exact; quic-go does not document this re-entrancy,
// and quicx pins quic-go's version and tests it.
type RecorderHandler interface {
	// PeerStreamLimits reports the peer's initial stream limits (its transport
	// parameters): the number of bidi and uni streams we may open.
	PeerStreamLimits(bidi, uni uint64)
	// MaxStreams reports a MAX_STREAMS frame: we may now open streams up to max.
	MaxStreams(bidi bool, max uint64)
	// StreamsBlocked reports a STREAMS_BLOCKED frame from the peer that says it
	// is blocked at (or above) the limit this side advertised.
	StreamsBlocked(bidi bool)
	// StopSending reports a STOP_SENDING frame for a stream we send on. quic-go
	// says so through the stream's context only while the send direction is
	// open; after the FIN this is the only signal.
	StopSending(id uint64, code uint64)
	// StreamAcked reports that the peer has acknowledged bytes [0, acked) of a
	// stream we send on, and whether its FIN is acknowledged too.
	StreamAcked(id uint64, acked uint64, finAcked bool)
	// StreamDataLost reports a lost packet that carried data of stream id.
	StreamDataLost(id uint64)
	// PeerAddressChanged reports that quic-go moved the connection to a new
	// remote address.
	PeerAddressChanged(addr netip.AddrPort)
	// PathMTUChanged reports a new path MTU: the largest datagram may have
	// changed.
	PathMTUChanged()
	// InFlightMaxGrew reports a new largest number of bytes in flight (the
	// most unacknowledged bytes the congestion controller has allowed so far).
	InFlightMaxGrew(max uint64)
	// StreamReadable reports that a Read of stream id would now return at
	// once, after Stream.ReadableOrWatch said it would not (TrackReceive).
	StreamReadable(id uint64)
}

// recorder is quicx's in-process qlog sink for one connection. quic-go builds
// typed events and hands them over synchronously; the recorder keeps only what
// its Track bits ask for.
type recorder struct {
	track    Track
	isClient bool
	conn     *Conn // whose addresses path events update

	mu      sync.Mutex
	h       RecorderHandler
	limits  *[2]uint64 // peer limits seen before a handler was attached
	local   [2]int64   // the stream limits this side advertised (bidi, uni); -1 unknown
	sent    []sentPacket
	streams map[uint64]*ackState
	touched []uint64 // scratch for ack
	inMax   int      // the most bytes in flight seen
	rx      rxTracker

	dg dgTracker
}

type sentPacket struct {
	pn     int64
	chunks []streamChunk
	done   bool // acknowledged or declared lost
	early  bool // a 0-RTT packet
}

type streamChunk struct {
	id  uint64
	off int64
	len int64
	fin bool
}

// ackState is the merged set of acknowledged byte ranges of one stream.
type ackState struct {
	rangeSet
	finAt    int64 // the final size once the FIN is acknowledged, else -1
	reported int64 // the contiguous prefix last reported
	finSent  bool  // a FIN acknowledgement was reported
}

func newRecorder(t Track, isClient bool, c *Conn) *recorder {
	if t&TrackZeroRTT != 0 {
		t |= TrackReceive // 0-RTT data is kept in the per-stream receive state
	}
	r := &recorder{track: t, isClient: isClient, conn: c, streams: map[uint64]*ackState{}, local: [2]int64{-1, -1}}
	r.rx.init(isClient)
	return r
}

// SetRecorderHandler attaches the handler that receives the connection's
// derived events. Peer limits seen earlier are replayed.
func (c *Conn) SetRecorderHandler(h RecorderHandler) {
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	r.h = h
	l := r.limits
	r.limits = nil
	r.mu.Unlock()
	if l != nil && h != nil {
		h.PeerStreamLimits(l[0], l[1])
	}
}

// Tracking reports which features the connection's recorder follows.
func (c *Conn) Tracking() Track {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec == nil {
		return 0
	}
	return c.rec.track
}

// ForgetStream drops ack state for a stream that will send nothing more.
func (c *Conn) ForgetStream(id uint64) {
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	delete(r.streams, id)
	delete(r.rx.streams, id)
	r.mu.Unlock()
}

// AddProducer implements qlogwriter.Trace.
func (r *recorder) AddProducer() qlogwriter.Recorder { return r }

// Close implements qlogwriter.Recorder; quic-go calls it when the connection's
// loop ends.
func (r *recorder) Close() error { return nil }

// RecordEvent implements qlogwriter.Recorder.
func (r *recorder) RecordEvent(ev qlogwriter.Event) {
	switch e := ev.(type) {
	case qlog.PacketSent:
		if r.track&(TrackAcks|TrackLoss) != 0 {
			r.packetSent(&e)
		}
		if r.track&TrackStreamCredit != 0 {
			r.localMaxStreams(e.Frames)
		}
		if r.track&TrackDatagrams != 0 {
			if t := e.Header.PacketType; t == qlog.PacketType1RTT || t == qlog.PacketType0RTT {
				r.dg.sent(int64(e.Header.PacketNumber), e.Frames)
			}
		}
	case qlog.PacketReceived:
		r.packetReceived(&e)
	case qlog.PacketLost:
		if r.track&(TrackAcks|TrackLoss) != 0 {
			r.packetLost(int64(e.Header.PacketNumber))
		}
		if r.track&TrackDatagrams != 0 {
			r.dg.lost(int64(e.Header.PacketNumber))
		}
	case qlog.DatagramDropped:
		if e.Direction == qlog.DirectionSending && r.track&TrackDatagrams != 0 {
			r.dg.dropped()
		}
	case qlog.MetricsUpdated:
		if r.track&TrackDatagrams != 0 {
			r.dg.metrics(&e)
		}
		if r.track&TrackAcks != 0 {
			r.inFlight(e.BytesInFlight)
		}
	case qlog.MTUUpdated:
		if r.track&TrackDatagrams != 0 {
			if h := r.handler(); h != nil {
				h.PathMTUChanged()
			}
		}
	case qlog.ParametersSet:
		if e.Initiator == qlog.InitiatorRemote && r.isClient && r.conn != nil {
			r.conn.paramsArriving() // quic-go stores them right after (early.go)
		}
		if r.track&TrackStreamCredit == 0 {
			break
		}
		if e.Initiator == qlog.InitiatorRemote {
			r.peerLimits(uint64(max(e.InitialMaxStreamsBidi, 0)), uint64(max(e.InitialMaxStreamsUni, 0)))
		} else {
			r.mu.Lock()
			r.local = [2]int64{e.InitialMaxStreamsBidi, e.InitialMaxStreamsUni}
			r.mu.Unlock()
		}
	case qlog.TupleAssigned:
		if e.TupleID == "" && r.track&TrackPaths != 0 && !r.isClient {
			addr := e.Remote.IPv4
			if !addr.IsValid() {
				addr = e.Remote.IPv6
			}
			if !addr.IsValid() {
				return
			}
			addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
			if r.conn != nil {
				r.conn.setRemote(addr)
			}
			if h := r.handler(); h != nil {
				h.PeerAddressChanged(addr)
			}
		}
	}
}

// localMaxStreams follows the MAX_STREAMS frames this side sends.
func (r *recorder) localMaxStreams(frames []qlog.Frame) {
	for _, f := range frames {
		if ms, ok := f.Frame.(*qlog.MaxStreamsFrame); ok {
			i := 1
			if ms.Type == 1 {
				i = 0
			}
			r.mu.Lock()
			r.local[i] = max(r.local[i], int64(ms.MaxStreamNum))
			r.mu.Unlock()
		}
	}
}

func (r *recorder) handler() RecorderHandler {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.h
}

func (r *recorder) peerLimits(bidi, uni uint64) {
	r.mu.Lock()
	h := r.h
	if h == nil {
		r.limits = &[2]uint64{bidi, uni}
	}
	r.mu.Unlock()
	if h != nil {
		h.PeerStreamLimits(bidi, uni)
	}
}

func (r *recorder) packetSent(e *qlog.PacketSent) {
	if t := e.Header.PacketType; t != qlog.PacketType1RTT && t != qlog.PacketType0RTT {
		return
	}
	var chunks []streamChunk
	for _, f := range e.Frames {
		if sf, ok := f.Frame.(*qlog.StreamFrame); ok {
			chunks = append(chunks, streamChunk{id: uint64(sf.StreamID), off: sf.Offset, len: sf.Length, fin: sf.Fin})
		}
	}
	if len(chunks) == 0 {
		return
	}
	r.mu.Lock()
	r.sent = append(r.sent, sentPacket{pn: int64(e.Header.PacketNumber), chunks: chunks, early: e.Header.PacketType == qlog.PacketType0RTT})
	r.mu.Unlock()
}

// find returns the index of the first sent packet with a number ≥ pn.
func (r *recorder) find(pn int64) int {
	return sort.Search(len(r.sent), func(i int) bool { return r.sent[i].pn >= pn })
}

func (r *recorder) packetLost(pn int64) {
	r.mu.Lock()
	i := r.find(pn)
	var lost []uint64
	if i < len(r.sent) && r.sent[i].pn == pn && !r.sent[i].done {
		// The frames are retransmitted in new packets; this one is finished.
		r.sent[i].done = true
		for _, c := range r.sent[i].chunks {
			lost = append(lost, c.id)
		}
		r.trimLocked()
	}
	h := r.h
	r.mu.Unlock()
	if h != nil && r.track&TrackLoss != 0 {
		for _, id := range lost {
			h.StreamDataLost(id)
		}
	}
}

// dropEarly forgets the 0-RTT packets of a rejected 0-RTT attempt: quic-go
// drops them without an event, and their data is sent again on new streams.
func (r *recorder) dropEarly() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.sent {
		if r.sent[i].early {
			r.sent[i].done = true
		}
	}
	r.trimLocked()
	clear(r.streams)
}

// trimLocked drops finished packets from the front of the list.
func (r *recorder) trimLocked() {
	n := 0
	for n < len(r.sent) && r.sent[n].done {
		n++
	}
	if n > 0 {
		r.sent = append(r.sent[:0], r.sent[n:]...)
	}
}

type ackReport struct {
	id       uint64
	acked    uint64
	finAcked bool
}

func (r *recorder) packetReceived(e *qlog.PacketReceived) {
	early := false
	if r.track&TrackZeroRTT != 0 {
		r.peerStreamsOpened(e)
		early = e.Header.PacketType == qlog.PacketType0RTT
	}
	for _, f := range e.Frames {
		switch fr := f.Frame.(type) {
		case *qlog.AckFrame:
			if e.Header.PacketType == qlog.PacketType1RTT {
				if r.track&TrackAcks != 0 {
					r.ack(fr)
				}
				if r.track&TrackDatagrams != 0 {
					r.dg.acked(fr)
				}
			}
		case *qlog.MaxStreamsFrame:
			if r.track&TrackStreamCredit != 0 {
				if h := r.handler(); h != nil {
					h.MaxStreams(fr.Type == 1, uint64(fr.MaxStreamNum))
				}
			}
		case *qlog.StreamsBlockedFrame:
			if r.track&TrackStreamCredit != 0 {
				i := 1
				if fr.Type == 1 {
					i = 0
				}
				r.mu.Lock()
				blocked := r.local[i] < 0 || int64(fr.StreamLimit) >= r.local[i]
				r.mu.Unlock()
				if h := r.handler(); h != nil && blocked {
					h.StreamsBlocked(fr.Type == 1)
				}
			}
		case *qlog.StreamFrame:
			if r.track&TrackReceive != 0 {
				r.received(uint64(fr.StreamID), fr.Offset, fr.Offset+fr.Length, fr.Fin, false, early && fr.Length > 0)
			}
		case *qlog.ResetStreamFrame:
			if r.track&TrackReceive != 0 {
				r.received(uint64(fr.StreamID), 0, 0, false, true, false)
			}
		case *qlog.StopSendingFrame:
			if r.track&TrackAcks != 0 {
				if h := r.handler(); h != nil {
					h.StopSending(uint64(fr.StreamID), uint64(fr.ErrorCode))
				}
			}
		}
	}
}

func (r *recorder) ack(fr *qlog.AckFrame) {
	r.mu.Lock()
	var reports []ackReport
	touched := r.touched[:0]
	for _, rg := range fr.AckRanges {
		lo, hi := int64(rg.Smallest), int64(rg.Largest)
		for i := r.find(lo); i < len(r.sent) && r.sent[i].pn <= hi; i++ {
			p := &r.sent[i]
			if p.done {
				continue
			}
			p.done = true
			for _, c := range p.chunks {
				st := r.streams[c.id]
				if st == nil {
					st = &ackState{finAt: -1}
					r.streams[c.id] = st
				}
				st.add(c.off, c.off+c.len)
				if c.fin {
					st.finAt = c.off + c.len
				}
				if !slices.Contains(touched, c.id) {
					touched = append(touched, c.id)
				}
			}
		}
	}
	r.touched = touched
	for _, id := range touched {
		st := r.streams[id]
		prefix := st.prefix()
		finAcked := st.finAt >= 0 && prefix >= st.finAt
		if prefix > st.reported || (finAcked && !st.finSent) {
			st.reported = prefix
			if finAcked {
				st.finSent = true
			}
			reports = append(reports, ackReport{id: id, acked: uint64(prefix), finAcked: finAcked})
		}
	}
	r.trimLocked()
	h := r.h
	r.mu.Unlock()
	if h != nil {
		for _, rep := range reports {
			h.StreamAcked(rep.id, rep.acked, rep.finAcked)
		}
	}
}

// rangeSet is a set of byte ranges of one stream, merged as they come in.
type rangeSet struct {
	ranges [][2]int64 // sorted, disjoint [start, end)
}

// add merges [s, e) into the set.
func (a *rangeSet) add(s, e int64) {
	if e < s {
		return
	}
	rs := a.ranges
	// Fast path: extends or follows the last range.
	if n := len(rs); n == 0 || s > rs[n-1][1] {
		a.ranges = append(rs, [2]int64{s, e})
		return
	} else if s >= rs[n-1][0] {
		rs[n-1][1] = max(rs[n-1][1], e)
		return
	}
	i := sort.Search(len(rs), func(i int) bool { return rs[i][1] >= s })
	j := i
	for j < len(rs) && rs[j][0] <= e {
		s = min(s, rs[j][0])
		e = max(e, rs[j][1])
		j++
	}
	merged := append(rs[:i:i], [2]int64{s, e})
	a.ranges = append(merged, rs[j:]...)
}

// prefix is the contiguous length from offset 0.
func (a *rangeSet) prefix() int64 {
	if len(a.ranges) == 0 || a.ranges[0][0] != 0 {
		return 0
	}
	return a.ranges[0][1]
}

// inFlight follows the largest number of bytes in flight.
func (r *recorder) inFlight(n int) {
	r.mu.Lock()
	grew := n > r.inMax
	if grew {
		r.inMax = n
	}
	h := r.h
	r.mu.Unlock()
	if grew && h != nil {
		h.InFlightMaxGrew(uint64(n))
	}
}
