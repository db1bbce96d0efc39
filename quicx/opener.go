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
	queue   []*Stream // started, waiting for quic-go to open them, in ID order
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

var errLimit = errors.New("stream limit")

// startStream gives s its ID and opens it in quic-go now if it can. It reports
// the ID, whether the peer's limit already covers the stream, and errLimit
// when failBlocked and the stream cannot be opened at once.
func (c *Connection) startStream(s *Stream, failBlocked bool) (id uint64, accepted bool, err error) {
	o := &c.openers[dirIndex(s.uni)]
	o.mu.Lock()
	defer o.mu.Unlock()
	c.mu.Lock()
	connected, ac := c.state == connConnected, c.ac
	c.mu.Unlock()

	if connected && len(o.queue) == 0 {
		as, err := ac.OpenStream(s.uni)
		switch {
		case err == nil:
			idx := o.next.Add(1) - 1
			if want := streamID(idx, c.server, s.uni); as.ID() != want {
				c.log.Error("quic-go assigned an unexpected stream ID", "got", as.ID(), "want", want)
			}
			c.registerStream(s, as.ID())
			s.setTransport(as)
			return as.ID(), true, nil
		case !errors.Is(err, adapter.ErrStreamLimit):
			return 0, false, err
		}
	}
	if failBlocked {
		// Before the handshake the peer's limit is unknown: MsQuic counts it as 0.
		return 0, false, errLimit
	}
	idx := o.next.Add(1) - 1
	id = streamID(idx, c.server, s.uni)
	c.registerStream(s, id)
	o.queue = append(o.queue, s)
	if connected && !o.running {
		o.running = true
		go c.runOpener(o, ac)
	}
	return id, false, nil
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
	connected, ac := c.state == connConnected, c.ac
	c.mu.Unlock()
	if !connected {
		return
	}
	o.running = true
	go c.runOpener(o, ac)
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
		s := o.queue[0]
		o.mu.Unlock()
		as, err := ac.OpenStreamSync(ctx, o.uni)
		o.mu.Lock()
		if len(o.queue) > 0 && o.queue[0] == s {
			o.queue = o.queue[1:]
		}
		if err != nil {
			o.running = false
			o.mu.Unlock()
			return // the connection ended; its streams are ended by finish
		}
		o.mu.Unlock()
		if s.id != as.ID() {
			c.log.Error("quic-go assigned an unexpected stream ID", "got", as.ID(), "want", s.id)
		}
		s.setTransport(as)
		s.peerAccepted()
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
