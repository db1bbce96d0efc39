package adapter

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// The 0-RTT phase of a client connection, and quic-go's data race #4303.
//
// A client dialed with DialEarly can open streams before the handshake
// completes. quic-go keeps the server's transport parameters in one field,
// Conn.peerParams, which several API calls read on the caller's goroutine:
// opening a stream (its flow controller takes the initial send window from
// it), ConnectionState and SendDatagram (datagram support and size), AddPath
// (disable_active_migration). During 0-RTT that field holds the parameters
// remembered with the session ticket. When the server's own parameters arrive,
// quic-go's run loop replaces it (connection.go handleTransportParameters),
// without any lock: a read on the app's side at that moment is a data race
// (quic-go/quic-go#4303), which the race detector reports.
//
// Two facts of quic-go order the accesses, without changing quic-go:
//
//  1. handleTransportParameters records the qlog event ParametersSet (initiator
//     remote) on the run loop before it writes peerParams. The recorder is the
//     connection's tracer, so that event reaches paramsArriving below, which
//     takes the guard's mutex M and sets incoming.
//  2. HandshakeComplete() is closed after that write (handleHandshakeComplete
//     runs later on the same goroutine), and peerParams is never written again.
//
// The same order covers a second unsynchronized field: streamsMap's
// supportsResetStreamAt, which the stream constructor reads when a stream
// opens, and which the run loop writes at handshake completion
// (applyTransportParameters), after peerParams and before HandshakeComplete()
// is closed. The race detector reported both under TestZeroRTT.
//
// So while the handshake is not complete, every call that reads peerParams
// runs under M, and only if incoming is not set. Such a read happens before
// its M.Unlock, which happens before the run loop's M.Lock in the tracer, which
// happens before the write: the read cannot race with it. Once incoming is set
// the call does not read: it waits for HandshakeComplete (or its context, or
// the connection's end), whose close happens after the write, and then calls
// quic-go as usual. Nothing blocks while holding M, because the run loop would
// block in its tracer: a stream is opened with quic-go's non-blocking
// OpenStream/OpenUniStream under M, and when the 0-RTT stream credit is used up
// the call waits for the handshake too, as quic-go's OpenStreamSync would have.
// SendDatagram may block on quic-go's queue, so a datagram sent during 0-RTT
// simply waits for the handshake.
//
// The guard needs the tracer, whatever the connection tracks: Dial installs
// the recorder for every early dial (connTrace).
//
// The guard also settles what a 0-RTT rejection leaves behind. quic-go then
// voids the streams opened in 0-RTT and, until NextConnection, fails every
// open with Err0RTTRejected; after it, opens start again from the first ID.
// AfterRejected0RTT reopens the void streams itself, in one step, so that no
// other open can take one of their IDs first: until it has, opens on a
// rejected connection fail (Err0RTTRejected, or ErrStreamLimit for the
// non-blocking OpenStream, so that the caller queues the stream).
type paramsGuard struct {
	// guarded is set before an early dial and cleared once the handshake
	// completed with 0-RTT accepted, or the streams of a rejected 0-RTT were
	// reopened: from then on calls go straight to quic-go.
	guarded atomic.Bool

	mu       sync.Mutex // M: the run loop takes it (in the tracer) before writing peerParams
	incoming bool       // under mu: the server's parameters arrived and are being stored

	// gen counts the 0-RTT rejections handled: a stream opened before the last
	// one is void (Stream.Void).
	gen atomic.Uint32
}

// paramsArriving runs on quic-go's run loop (from the recorder's ParametersSet
// with initiator remote), right before quic-go stores the server's transport
// parameters. Taking M here waits for any read that is under way.
func (c *Conn) paramsArriving() {
	c.pg.mu.Lock()
	c.pg.incoming = true
	c.pg.mu.Unlock()
}

// guardsParams reports whether the connection's tracer must be installed for
// the guard, whatever the connection tracks.
func (r *recorder) guardsParams() bool {
	return r.isClient && r.conn != nil && r.conn.pg.guarded.Load()
}

func handshakeDone(qc *quic.Conn) bool {
	select {
	case <-qc.HandshakeComplete():
		return true
	default:
		return false
	}
}

// InEarlyPhase, called right after Dial, reports whether it was an early dial.
// Its handshake ends (or already has, even when Dial returns at once) with
// 0-RTT accepted (Used0RTT) or not, and then streams open again only through
// AfterRejected0RTT: quic-go refuses opens after a rejection until
// NextConnection, even when the handshake completed before Dial returned.
func (c *Conn) InEarlyPhase() bool { return c.pg.guarded.Load() }

// readParams runs f, a call into quic-go that reads the server's transport
// parameters and never blocks, if it cannot race with their arrival: on a
// connection that is not guarded, after the handshake, or under M before the
// parameters arrive. It reports false, not having run f, when the caller must
// wait for the handshake first.
func (c *Conn) readParams(qc *quic.Conn, f func()) bool {
	if !c.pg.guarded.Load() || handshakeDone(qc) {
		f()
		return true
	}
	c.pg.mu.Lock()
	defer c.pg.mu.Unlock()
	if c.pg.incoming {
		return false
	}
	f()
	return true
}

// waitHandshake waits for the handshake to complete, ctx to end or the
// connection to end.
func waitHandshake(ctx context.Context, qc *quic.Conn) error {
	select {
	case <-qc.HandshakeComplete():
		return nil
	case <-qc.Context().Done():
		return context.Cause(qc.Context())
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// guardSettled is called on a guarded connection after the handshake: it reports
// whether calls may go straight to quic-go now, clearing the guard when 0-RTT
// was accepted. It is false while the streams of a rejected 0-RTT wait to be
// reopened by AfterRejected0RTT.
func (c *Conn) guardSettled(qc *quic.Conn) bool {
	if !c.pg.guarded.Load() {
		return true
	}
	accepted := qc.ConnectionState().Used0RTT // safe: the handshake is complete
	c.pg.mu.Lock()
	defer c.pg.mu.Unlock()
	if !c.pg.guarded.Load() {
		return true
	}
	if accepted {
		c.pg.guarded.Store(false)
	}
	return accepted
}

// openGuarded opens a stream on a guarded connection. done is false when the
// caller should open it as usual (the guard is settled). With wait false it
// never blocks: it returns ErrStreamLimit where it would have to wait.
func (c *Conn) openGuarded(ctx context.Context, qc *quic.Conn, uni, wait bool) (st *Stream, err error, done bool) {
	if !handshakeDone(qc) {
		ok := c.readParams(qc, func() { st, err = openNow(c, qc, uni) })
		if ok && !errors.Is(err, ErrStreamLimit) {
			return st, err, true
		}
		// The server's parameters are arriving, or the 0-RTT stream credit is
		// used up: the stream opens after the handshake.
		if !wait {
			return nil, ErrStreamLimit, true
		}
		if err := waitHandshake(ctx, qc); err != nil {
			return nil, err, true
		}
	}
	if c.guardSettled(qc) {
		return nil, nil, false
	}
	if !wait {
		return nil, ErrStreamLimit, true
	}
	return nil, quic.Err0RTTRejected, true
}

// openNow opens a stream without waiting: ErrStreamLimit when the peer's limit
// is reached.
func openNow(c *Conn, qc *quic.Conn, uni bool) (*Stream, error) {
	var (
		st  *Stream
		err error
	)
	// Read before the open: an open that succeeds after a rejection was
	// handled sees the new generation (the guard refuses opens until then).
	gen := c.pg.gen.Load()
	defer func() {
		if st != nil {
			st.gen = gen
		}
	}()
	if uni {
		var ss *quic.SendStream
		ss, err = qc.OpenUniStream()
		if err == nil {
			st = newSendStream(c, ss)
		}
	} else {
		var s *quic.Stream
		s, err = qc.OpenStream()
		if err == nil {
			st = newBidiStream(c, s)
		}
	}
	var sle *quic.StreamLimitReachedError
	if errors.As(err, &sle) {
		return nil, ErrStreamLimit
	}
	return st, err
}

// openSync opens a stream, waiting for the peer's stream credit.
func openSync(ctx context.Context, c *Conn, qc *quic.Conn, uni bool) (*Stream, error) {
	gen := c.pg.gen.Load() // as in openNow
	var st *Stream
	if uni {
		ss, err := qc.OpenUniStreamSync(ctx)
		if err != nil {
			return nil, err
		}
		st = newSendStream(c, ss)
	} else {
		s, err := qc.OpenStreamSync(ctx)
		if err != nil {
			return nil, err
		}
		st = newBidiStream(c, s)
	}
	st.gen = gen
	return st, nil
}

// Void reports whether the stream was opened in 0-RTT before the server
// rejected it and the rejection was handled (AfterRejected0RTT): quic-go has
// voided it, and its ID is free again.
func (s *Stream) Void() bool { return s.gen != s.conn.pg.gen.Load() }

// Used0RTT reports whether the server accepted 0-RTT; meaningful once the
// handshake is complete.
func (c *Conn) Used0RTT() bool {
	qc := c.quic()
	if qc == nil {
		return false
	}
	var used bool
	c.readParams(qc, func() { used = qc.ConnectionState().Used0RTT })
	return used
}

// AfterRejected0RTT makes the connection usable again after the server
// rejected 0-RTT, once the handshake is complete: quic-go voided every stream
// opened in 0-RTT and restarts its stream IDs. It reopens bidi and uni streams
// of each direction, in ID order, so they get back the IDs of the void ones;
// no other open can come between (see paramsGuard). It also forgets the
// recorder's 0-RTT packets, which quic-go dropped without a word.
func (c *Conn) AfterRejected0RTT(ctx context.Context, bidi, uni int) (reopened [2][]*Stream, err error) {
	qc := c.quic()
	if qc == nil {
		return reopened, errors.New("adapter: no connection")
	}
	if _, err := qc.NextConnection(ctx); err != nil {
		return reopened, err
	}
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	if r != nil {
		r.dropEarly()
	}
	c.pg.gen.Add(1) // streams opened so far are void
	for i, n := range [2]int{bidi, uni} {
		for range n {
			st, err := openSync(ctx, c, qc, i == 1)
			if err != nil {
				return reopened, err
			}
			reopened[i] = append(reopened[i], st)
		}
	}
	c.pg.mu.Lock()
	c.pg.guarded.Store(false)
	c.pg.mu.Unlock()
	return reopened, nil
}
