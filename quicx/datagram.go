package quicx

import (
	"context"

	"quicx.dev/adapter"
)

// maxDatagramLength is MsQuic's limit on one DatagramSend (65535 bytes).
const maxDatagramLength = 65535

// dgramReq is one accepted DatagramSend.
type dgramReq struct {
	data []byte
	ctx  any
	done bool // a final state was reported (guarded by Connection.mu)
}

// datagrams is a connection's datagram state, guarded by Connection.mu.
type datagrams struct {
	queue    []*dgramReq // accepted, not yet handed to quic-go
	inflight *dgramReq   // being handed to quic-go by the sender
	sending  bool
	maxLen   uint16 // last MaxSendLength reported
}

// dgStateLocked queues a datagram state change. A final state is reported
// once; nothing is reported after the connection's final event (by then every
// datagram has had its final state).
func (c *Connection) dgStateLocked(req *dgramReq, st DatagramSendState) {
	if req.done || c.final {
		return
	}
	if st.IsFinal() {
		req.done = true
	}
	c.q.Push(&DatagramSendStateChanged{Context: req.ctx, State: st})
}

// SendDatagram is DatagramSend: queue one unreliable datagram, the buffers
// concatenated (copied; the app may reuse them at once). ctx comes back in
// DatagramSendStateChanged events: with Settings.TransportEvents including
// TrackDatagrams, SENT when the datagram leaves in a packet and then one final
// state (ACKNOWLEDGED, ACKNOWLEDGED_SPURIOUS, LOST_DISCARDED or CANCELED);
// without it, only CANCELED, for a datagram that never left. Datagrams sent
// before the connection is up wait for it, and are canceled if the peer does
// not accept datagrams. flags may hold SendDgramPriority (datagrams always go
// before new stream data in quic-go) and SendAllow0RTT.
func (c *Connection) SendDatagram(bufs [][]byte, flags SendFlags, ctx any) error {
	const op = "Connection.SendDatagram"
	if len(bufs) == 0 {
		return newErr(op, ErrInvalidParameter, "no buffers")
	}
	if flags&^(SendDgramPriority|SendAllow0RTT) != 0 {
		if flags&(SendCancelOnBlocked|SendPriorityWork) != 0 {
			return newErr(op, ErrNotSupported, "flags %s: quic-go's datagram queue offers no such control", flags&(SendCancelOnBlocked|SendPriorityWork))
		}
		return newErr(op, ErrInvalidParameter, "flags %s", flags)
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total > maxDatagramLength {
		return newErr(op, ErrInvalidParameter, "datagram longer than 65535 bytes")
	}
	data := make([]byte, 0, total)
	for _, b := range bufs {
		data = append(data, b...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return newErr(op, ErrInvalidState, "connection closed")
	case c.end != nil || c.final || c.localShut:
		return newErr(op, ErrInvalidState, "connection shut down")
	case c.state == connDeciding:
		return newErr(op, ErrInvalidState, "answer NewConnection first")
	}
	if c.state == connConnected {
		send, _ := c.ac.DatagramsSupported()
		if !send {
			return newErr(op, ErrInvalidState, "the peer does not accept datagrams")
		}
		if total > int(c.dg.maxLen) {
			return newErr(op, ErrInvalidParameter, "datagram of %d bytes above MaxSendLength %d", total, c.dg.maxLen)
		}
	}
	c.dg.queue = append(c.dg.queue, &dgramReq{data: data, ctx: ctx})
	c.kickDatagramsLocked()
	return nil
}

// kickDatagramsLocked starts the sender if datagrams wait and the
// connection is up.
func (c *Connection) kickDatagramsLocked() {
	if c.dg.sending || len(c.dg.queue) == 0 || c.state != connConnected {
		return
	}
	c.dg.sending = true
	go c.sendDatagrams(c.ac)
}

// sendDatagrams hands queued datagrams to quic-go, which blocks while its own
// queue is full.
func (c *Connection) sendDatagrams(ac *adapter.Conn) {
	for {
		c.mu.Lock()
		if len(c.dg.queue) == 0 || c.end != nil {
			c.dg.sending = false
			c.mu.Unlock()
			return
		}
		req := c.dg.queue[0]
		c.dg.queue[0] = nil
		c.dg.queue = c.dg.queue[1:]
		c.dg.inflight = req
		c.mu.Unlock()
		err := ac.SendTrackedDatagram(req.data, req)
		c.mu.Lock()
		c.dg.inflight = nil
		if err != nil {
			c.dgStateLocked(req, DatagramSendCanceled)
		}
		c.mu.Unlock()
	}
}

// datagramState implements adapter.DatagramHandler.
func (c *Connection) datagramState(tag any, st adapter.DatagramState) {
	req, ok := tag.(*dgramReq)
	if !ok {
		return
	}
	var state DatagramSendState
	switch st {
	case adapter.DatagramSent:
		state = DatagramSendSent
	case adapter.DatagramLostSuspect:
		state = DatagramSendLostSuspect
	case adapter.DatagramLostDiscarded:
		state = DatagramSendLostDiscarded
	case adapter.DatagramAcknowledged:
		state = DatagramSendAcknowledged
	case adapter.DatagramAcknowledgedSpurious:
		state = DatagramSendAcknowledgedSpurious
	default:
		state = DatagramSendCanceled
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dgStateLocked(req, state)
}

// datagramsUpLocked runs when the connection is established: datagrams queued
// early are checked against what the peer accepts.
func (c *Connection) datagramsUpLocked(send bool, maxLen int) {
	c.dg.maxLen = uint16(maxLen)
	keep := c.dg.queue[:0]
	for _, req := range c.dg.queue {
		if !send || len(req.data) > maxLen {
			c.dgStateLocked(req, DatagramSendCanceled)
			continue
		}
		keep = append(keep, req)
	}
	clear(c.dg.queue[len(keep):])
	c.dg.queue = keep
	c.kickDatagramsLocked()
}

// cancelDatagramsLocked cancels the datagrams not yet sent at the end.
func (c *Connection) cancelDatagramsLocked() {
	if req := c.dg.inflight; req != nil {
		c.dgStateLocked(req, DatagramSendCanceled)
	}
	for _, req := range c.dg.queue {
		c.dgStateLocked(req, DatagramSendCanceled)
	}
	c.dg.queue = nil
}

// receiveDatagrams turns received datagrams into events, draining quic-go's
// queue (which drops datagrams beyond 128 unread) as fast as they come.
func (c *Connection) receiveDatagrams(ctx context.Context, ac *adapter.Conn) {
	for {
		b, err := ac.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		c.mu.Lock()
		if !c.final {
			c.q.Push(&DatagramReceived{Buffer: b})
		}
		c.mu.Unlock()
	}
}

// PathMTUChanged implements adapter.RecorderHandler: a new path MTU may change
// the largest datagram (MsQuic re-raises DATAGRAM_STATE_CHANGED).
func (c *Connection) PathMTUChanged() {
	c.mu.Lock()
	ac, connected := c.ac, c.state == connConnected
	c.mu.Unlock()
	if !connected {
		return
	}
	send, _ := ac.DatagramsSupported()
	if !send {
		return
	}
	// Probing calls into quic-go: not from its own goroutine.
	go func() {
		n := ac.MaxDatagramSize()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.final || c.state != connConnected || uint16(n) == c.dg.maxLen {
			return
		}
		c.dg.maxLen = uint16(n)
		c.q.Push(&DatagramStateChanged{SendEnabled: true, MaxSendLength: uint16(n)})
	}()
}
