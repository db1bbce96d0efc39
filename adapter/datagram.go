package adapter

import (
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
)

// DatagramState is how far a sent datagram got.
type DatagramState int

// Datagram states, as MsQuic names them.
const (
	DatagramSent                 DatagramState = iota + 1 // in a packet on the wire
	DatagramLostSuspect                                   // that packet was declared lost
	DatagramLostDiscarded                                 // lost for good (final)
	DatagramAcknowledged                                  // the packet was acknowledged (final)
	DatagramAcknowledgedSpurious                          // acknowledged after being declared lost (final)
	DatagramCanceled                                      // never sent (final)
)

// DatagramHandler receives datagram state changes. It runs on quic-go's
// goroutines (or a timer's) and must not block.
type DatagramHandler func(tag any, state DatagramState)

// dgEntry is one datagram followed by the recorder.
type dgEntry struct {
	tag   any
	len   int
	state DatagramState
	pn    int64
}

// dgTracker follows datagrams through quic-go: its send queue is FIFO and
// DATAGRAM frames are packed in order, so the n-th DATAGRAM frame in
// PacketSent events is the n-th datagram queued.
type dgTracker struct {
	sendMu sync.Mutex // held across "append to FIFO + quic-go's SendDatagram"

	mu       sync.Mutex
	h        DatagramHandler
	fifo     []*dgEntry
	inflight map[int64][]*dgEntry
	srtt     time.Duration
	rttvar   time.Duration
	closed   bool
}

// maxAckDelay is quic-go's fixed max_ack_delay.
const maxAckDelay = 25 * time.Millisecond

// SetDatagramHandler registers the handler of datagram states.
func (c *Conn) SetDatagramHandler(h DatagramHandler) {
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r == nil {
		return
	}
	r.dg.mu.Lock()
	r.dg.h = h
	r.dg.mu.Unlock()
}

// SendTrackedDatagram sends p. When the recorder follows datagrams, tag is
// reported through the datagram handler as p progresses. It returns
// ErrDatagramTooLarge or another error when quic-go refuses p.
func (c *Conn) SendTrackedDatagram(p []byte, tag any) error {
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r == nil || r.track&TrackDatagrams == 0 {
		return c.SendDatagram(p)
	}
	d := &r.dg
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	e := &dgEntry{tag: tag, len: len(p)}
	d.mu.Lock()
	d.fifo = append(d.fifo, e)
	d.mu.Unlock()
	err := c.SendDatagram(p)
	if err != nil {
		d.mu.Lock()
		if n := len(d.fifo); n > 0 && d.fifo[n-1] == e {
			d.fifo = d.fifo[:n-1]
		}
		d.mu.Unlock()
	}
	return err
}

// FinishDatagrams ends tracking at the connection's end: datagrams never sent
// are canceled; sent ones whose fate is unknown are discarded.
func (c *Conn) FinishDatagrams() {
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r == nil {
		return
	}
	d := &r.dg
	d.mu.Lock()
	d.closed = true
	type report struct {
		tag   any
		state DatagramState
	}
	var out []report
	for _, e := range d.fifo {
		out = append(out, report{e.tag, DatagramCanceled})
	}
	for _, es := range d.inflight {
		for _, e := range es {
			out = append(out, report{e.tag, DatagramLostDiscarded})
		}
	}
	d.fifo, d.inflight = nil, nil
	h := d.h
	d.mu.Unlock()
	if h != nil {
		for _, rep := range out {
			h(rep.tag, rep.state)
		}
	}
}

func (d *dgTracker) report(out []*dgEntry) {
	d.mu.Lock()
	h := d.h
	d.mu.Unlock()
	if h == nil {
		return
	}
	for _, e := range out {
		h(e.tag, e.state)
	}
}

// sent handles the DATAGRAM frames of a packet being sent.
func (d *dgTracker) sent(pn int64, frames []qlog.Frame) {
	var out []*dgEntry
	d.mu.Lock()
	for _, f := range frames {
		if _, ok := f.Frame.(*qlog.DatagramFrame); !ok || len(d.fifo) == 0 {
			continue
		}
		e := d.fifo[0]
		d.fifo[0] = nil
		d.fifo = d.fifo[1:]
		e.pn, e.state = pn, DatagramSent
		if d.inflight == nil {
			d.inflight = map[int64][]*dgEntry{}
		}
		d.inflight[pn] = append(d.inflight[pn], e)
		out = append(out, e)
	}
	d.mu.Unlock()
	d.report(out)
}

// dropped handles quic-go dropping the oldest queued datagram (it no longer
// fits a packet).
func (d *dgTracker) dropped() {
	d.mu.Lock()
	if len(d.fifo) == 0 {
		d.mu.Unlock()
		return
	}
	e := d.fifo[0]
	d.fifo = d.fifo[1:]
	e.state = DatagramCanceled
	d.mu.Unlock()
	d.report([]*dgEntry{e})
}

// acked handles an ACK frame.
func (d *dgTracker) acked(fr *qlog.AckFrame) {
	var out []*dgEntry
	d.mu.Lock()
	for pn, es := range d.inflight {
		if !fr.AcksPacket(qlog.PacketNumber(pn)) {
			continue
		}
		for _, e := range es {
			if e.state == DatagramLostSuspect {
				e.state = DatagramAcknowledgedSpurious
			} else {
				e.state = DatagramAcknowledged
			}
			out = append(out, e)
		}
		delete(d.inflight, pn)
	}
	d.mu.Unlock()
	d.report(out)
}

// lost handles a lost packet: its datagrams are suspected lost, and
// discarded once quic-go stops watching for a late acknowledgement (3 PTO).
func (d *dgTracker) lost(pn int64) {
	d.mu.Lock()
	es := d.inflight[pn]
	var out []*dgEntry
	for _, e := range es {
		if e.state == DatagramSent {
			e.state = DatagramLostSuspect
			out = append(out, e)
		}
	}
	pto := d.srtt + max(4*d.rttvar, time.Millisecond) + maxAckDelay
	if d.srtt == 0 {
		pto = 3 * 100 * time.Millisecond // quic-go's initial RTT
	}
	d.mu.Unlock()
	d.report(out)
	if len(out) > 0 {
		time.AfterFunc(3*pto, func() { d.discard(pn) })
	}
}

func (d *dgTracker) discard(pn int64) {
	var out []*dgEntry
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	for _, e := range d.inflight[pn] {
		if e.state == DatagramLostSuspect {
			e.state = DatagramLostDiscarded
			out = append(out, e)
		}
	}
	delete(d.inflight, pn)
	d.mu.Unlock()
	d.report(out)
}

func (d *dgTracker) metrics(e *qlog.MetricsUpdated) {
	d.mu.Lock()
	if e.SmoothedRTT > 0 {
		d.srtt = e.SmoothedRTT
	}
	if e.RTTVariance > 0 {
		d.rttvar = e.RTTVariance
	}
	d.mu.Unlock()
}

// DatagramsSupported reports whether the peer accepts datagrams (we may send)
// and whether we advertised support (the peer may send).
func (c *Conn) DatagramsSupported() (send, receive bool) {
	qc := c.quic()
	if qc == nil {
		return false, false
	}
	var cs quic.ConnectionState
	if !c.readParams(qc, func() { cs = qc.ConnectionState() }) {
		return false, false // 0-RTT, the server's parameters arriving (early.go)
	}
	return cs.SupportsDatagrams.Remote, cs.SupportsDatagrams.Local
}
