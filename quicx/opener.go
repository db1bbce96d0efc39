package quicx

import (
	"errors"
	"sync"
	"sync/atomic"

	"quicx.dev/adapter"
)

// opener opens a connection's local streams of one direction in quic-go, in
// the order the app started them.
//
// MsQuic gives a stream its ID at StreamStart, even when the peer's stream limit
// (or a connection not yet started) keeps it off the wire: START_COMPLETE then
// says PeerAccepted=false and PEER_ACCEPTED follows when credit arrives. quic-go
// assigns IDs only when it opens a stream, strictly in order. So quicx opens
// every local stream through this queue, one at a time: the k-th stream started
// in a direction always gets the k-th ID, which quicx can therefore announce
// before quic-go has opened it.
type opener struct {
	uni bool

	mu      sync.Mutex
	queue   []openReq // started, waiting for quic-go to open them, in ID order
	running bool

	next atomic.Uint64 // streams of this direction that have an ID
}

// streamID is the ID of the index-th stream this side opens in a direction.
func streamID(index uint64, server, uni bool) uint64 {
	id := index << 2
	if server {
		id |= 1
	}
	if uni {
		id |= 2
	}
	return id
}

func dirIndex(uni bool) int {
	if uni {
		return 1
	}
	return 0
}

// openReq is a started stream waiting to be opened in quic-go.
type openReq struct {
	s  *Stream
	id uint64
}

// startStream starts the local stream s: it gives s its ID, opens it in
// quic-go now if it can, and queues StartComplete, all while holding the
// opener's lock, so that the opener goroutine cannot act on s before its
// start is recorded. Lock order: opener, stream, connection.
func (c *Connection) startStream(op string, s *Stream, flags StreamStartFlags) error {
	o := &c.openers[dirIndex(s.uni)]
	o.mu.Lock()
	defer o.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return newErr(op, ErrInvalidState, "stream closed")
	}
	if !s.local || s.phase != streamOpened {
		return newErr(op, ErrInvalidState, "stream already started")
	}
	c.mu.Lock()
	connected, ac, closed, end := c.streamsUsableLocked(), c.ac, c.closed, c.end
	c.mu.Unlock()
	switch {
	case closed:
		return newErr(op, ErrInvalidState, "connection closed")
	case end != nil && end.byApp:
		return newErr(op, ErrInvalidState, "connection shut down")
	case end != nil:
		return newErr(op, ErrAborted, "connection closed by the peer or the transport")
	}

	if connected && len(o.queue) == 0 {
		as, err := ac.OpenStream(s.uni)
		switch {
		case err == nil:
			idx := o.next.Add(1) - 1
			if want := streamID(idx, c.server, s.uni); as.ID() != want {
				c.log.Error("quic-go assigned an unexpected stream ID", "got", as.ID(), "want", want)
			}
			s.startedLocked(as.ID(), true, flags)
			s.attachLocked(as)
			return nil
		case !errors.Is(err, adapter.ErrStreamLimit):
			s.startFailedLocked(ErrAborted, flags)
			return nil
		}
	}
	if flags&StreamStartFailBlocked != 0 {
		// Before the handshake the peer's limit is unknown: MsQuic counts it as 0.
		s.startFailedLocked(ErrStreamLimitReached, flags)
		return nil
	}
	idx := o.next.Add(1) - 1
	id := streamID(idx, c.server, s.uni)
	s.startedLocked(id, false, flags)
	o.queue = append(o.queue, openReq{s: s, id: id})
	if connected && !o.running {
		o.running = true
		go c.runOpener(o, ac)
	}
	return nil
}

// registerStream makes s findable by ID for the recorder and counts it live.
func (c *Connection) registerStream(s *Stream, id uint64) {
	c.mu.Lock()
	c.byID[id] = s
	c.live[s] = struct{}{}
	c.mu.Unlock()
}

// kickOpener starts the opener of direction i if streams wait and the
// connection is up.
func (c *Connection) kickOpener(i int) {
	o := &c.openers[i]
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running || len(o.queue) == 0 {
		return
	}
	c.mu.Lock()
	usable, ac := c.streamsUsableLocked(), c.ac
	c.mu.Unlock()
	if !usable {
		return
	}
	o.running = true
	go c.runOpener(o, ac)
}

// streamsUsableLocked reports whether quic-go can open streams now: once
// connected, or in the 0-RTT phase of a resumed client connection.
func (c *Connection) streamsUsableLocked() bool {
	return c.state == connConnected || (c.state == connStarting && c.early.Load())
}

// runOpener opens the queued streams one by one, each waiting for the peer's
// stream credit.
func (c *Connection) runOpener(o *opener, ac *adapter.Conn) {
	ctx := ac.Context()
	for {
		o.mu.Lock()
		if len(o.queue) == 0 {
			o.running = false
			o.mu.Unlock()
			return
		}
		req := o.queue[0]
		epoch := c.rejections.Load()
		o.mu.Unlock()
		as, err := ac.OpenStreamSync(ctx, o.uni)
		o.mu.Lock()
		if c.rejections.Load() != epoch && (err != nil || as.Void()) {
			// The server rejected 0-RTT meanwhile and the streams were reopened
			// (under every opener's lock): as was opened before and is void, or
			// the open failed with the rejection. Open req's stream afresh; the
			// connection is usable again, and established may have found this
			// opener still running, so it must not stop here.
			o.mu.Unlock()
			continue
		}
		if err != nil {
			// The connection ended (finish ends its streams), or the server
			// rejected 0-RTT: then the stream waits at the head of the queue
			// until the connection is usable again.
			o.running = false
			o.mu.Unlock()
			return
		}
		if len(o.queue) > 0 && o.queue[0] == req {
			o.queue = o.queue[1:]
		}
		if req.id != as.ID() {
			c.log.Error("quic-go assigned an unexpected stream ID", "got", as.ID(), "want", req.id)
		}
		// Still under the opener's lock: a 0-RTT replay, which holds it, sees
		// the stream either unopened or attached.
		req.s.openedLate(as)
		o.mu.Unlock()
	}
}

// clearOpeners forgets queued streams once the connection has ended.
func (c *Connection) clearOpeners() {
	for i := range c.openers {
		o := &c.openers[i]
		o.mu.Lock()
		o.queue = nil
		o.mu.Unlock()
	}
}
