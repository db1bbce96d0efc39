package adapter

import (
	"context"
	"crypto/tls"
	"errors"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Conn is one QUIC connection. A client Conn exists from Dial; a server Conn
// exists from the moment quic-go sees the client's first packet, before the
// handshake, so that a handshake failure can be reported too.
type Conn struct {
	binding  *Binding
	isOwner  bool // the Conn owns its binding (a client's private socket)
	network  Network
	bindOpts BindOptions
	rec      *recorder
	local    netip.AddrPort
	remote   netip.AddrPort

	mu       sync.Mutex
	qc       *quic.Conn
	onClose  func(CloseInfo)
	closed   bool
	cause    CloseInfo
	hooks    any // set by quicx: the owner of this connection
	released bool
	extra    []*Binding    // sockets of paths the connection migrated to
	ids      *handshakeIDs // client: the IDs of its dial, to close the handshake
	pg       paramsGuard   // client: orders reads of the server's parameters in 0-RTT (early.go)

	settled    chan struct{} // server: closed once handed over by the listener, or gone
	settleOnce sync.Once
}

// Owner returns the value quicx attached with SetOwner.
func (c *Conn) Owner() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hooks
}

// SetOwner attaches quicx's handle to the connection.
func (c *Conn) SetOwner(v any) {
	c.mu.Lock()
	c.hooks = v
	c.mu.Unlock()
}

// OnClose registers f to run once when the connection has ended, with why.
// If it already ended, f runs at once (on the caller's goroutine).
func (c *Conn) OnClose(f func(CloseInfo)) {
	c.mu.Lock()
	if c.closed {
		ci := c.cause
		c.mu.Unlock()
		f(ci)
		return
	}
	c.onClose = f
	c.mu.Unlock()
}

// markClosed records the end of the connection and runs the close callback
// once. It releases a binding the connection owns or shares.
func (c *Conn) markClosed(ci CloseInfo) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.cause = ci
	f := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	if f != nil {
		f(ci)
	}
	c.settle()
	c.release()
}

// release gives the connection's reference on its binding back, once.
func (c *Conn) release() {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return
	}
	c.released = true
	extra := c.extra
	c.extra = nil
	c.mu.Unlock()
	if c.binding != nil {
		c.binding.unref()
	}
	for _, b := range extra {
		b.unref()
	}
}

// attach binds the quic-go connection to c and watches its end.
func (c *Conn) attach(qc *quic.Conn) {
	c.mu.Lock()
	c.qc = qc
	// Read quic-go's addresses once, before any path switch can race with it;
	// a server connection knows them from its ClientHello already.
	if !c.local.IsValid() || c.local.Addr().IsUnspecified() {
		c.local = addrPortOf(qc.LocalAddr())
	}
	if !c.remote.IsValid() {
		c.remote = addrPortOf(qc.RemoteAddr())
	}
	c.mu.Unlock()
	context.AfterFunc(qc.Context(), func() {
		c.markClosed(Classify(context.Cause(qc.Context())))
	})
}

func (c *Conn) quic() *quic.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qc
}

// Closed reports whether the connection has ended, and why.
func (c *Conn) Closed() (CloseInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause, c.closed
}

// Close closes the connection with an application error code and reason, and
// returns once quic-go has torn it down. Before the handshake completed on a
// server connection it has no effect; use the TLS decision to refuse instead.
func (c *Conn) Close(code uint64, reason string) {
	if qc := c.quic(); qc != nil {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
	}
}

// CloseSilently drops the connection without telling the peer. Only a
// connection that owns its socket can do that: it closes the socket's quic-go
// transport. It reports false when the connection shares its socket.
func (c *Conn) CloseSilently() bool {
	if !c.isOwner {
		return false
	}
	c.binding.closeNow()
	return true
}

// CanCloseSilently reports whether CloseSilently would work.
func (c *Conn) CanCloseSilently() bool { return c.isOwner }

// LocalAddr is the local address of the connection's path.
//
// quic-go's own Conn.LocalAddr and RemoteAddr race with its path switches (the
// run loop replaces the field they read without synchronization), so the
// adapter keeps both addresses itself: from the connection's start, from a
// migration it made, and from the recorder's path events.
func (c *Conn) LocalAddr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// RemoteAddr is the peer's address. After the peer migrates it is current only
// if the recorder follows paths (TrackPaths).
func (c *Conn) RemoteAddr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remote
}

// setRemote records the peer's new address.
func (c *Conn) setRemote(a netip.AddrPort) {
	c.mu.Lock()
	c.remote = a
	c.mu.Unlock()
}

// State is what the handshake negotiated.
type State struct {
	TLS               tls.ConnectionState
	Version           uint32
	Used0RTT          bool
	DatagramsLocal    bool // we advertised datagram support
	DatagramsRemote   bool // the peer did: we may send datagrams
	ResetPartial      bool // both sides support RESET_STREAM_AT
	HandshakeComplete bool
}

// State returns the negotiated state; ok is false before the handshake completes.
func (c *Conn) State() (State, bool) {
	qc := c.quic()
	if qc == nil {
		return State{}, false
	}
	var cs quic.ConnectionState
	if !c.readParams(qc, func() { cs = qc.ConnectionState() }) {
		return State{}, false // 0-RTT, the server's parameters arriving (early.go)
	}
	st := State{
		TLS:             cs.TLS,
		Version:         uint32(cs.Version),
		Used0RTT:        cs.Used0RTT,
		DatagramsLocal:  cs.SupportsDatagrams.Local,
		DatagramsRemote: cs.SupportsDatagrams.Remote,
		ResetPartial:    cs.SupportsStreamResetPartialDelivery.Local && cs.SupportsStreamResetPartialDelivery.Remote,
	}
	select {
	case <-qc.HandshakeComplete():
		st.HandshakeComplete = true
	default:
	}
	return st, true
}

// Stats are the connection's counters.
type Stats struct {
	MinRTT, LatestRTT, SmoothedRTT, RTTVariance time.Duration
	CongestionWindow                            uint64
	BytesSent, PacketsSent                      uint64
	BytesReceived, PacketsReceived              uint64
	BytesLost, PacketsLost                      uint64
}

// Stats returns the connection's counters; ok is false before it exists.
func (c *Conn) Stats() (Stats, bool) {
	qc := c.quic()
	if qc == nil {
		return Stats{}, false
	}
	s := qc.ConnectionStats()
	return Stats{
		MinRTT: s.MinRTT, LatestRTT: s.LatestRTT, SmoothedRTT: s.SmoothedRTT, RTTVariance: s.MeanDeviation,
		CongestionWindow: uint64(s.CongestionWindow),
		BytesSent:        s.BytesSent, PacketsSent: s.PacketsSent,
		BytesReceived: s.BytesReceived, PacketsReceived: s.PacketsReceived,
		BytesLost: s.BytesLost, PacketsLost: s.PacketsLost,
	}, true
}

// ErrStreamLimit is returned by OpenStream when the peer's stream limit is
// reached.
var ErrStreamLimit = errors.New("adapter: peer stream limit reached")

// OpenStream opens a stream without waiting. It returns ErrStreamLimit when
// the peer's limit is reached; other errors mean the connection is gone.
func (c *Conn) OpenStream(uni bool) (*Stream, error) {
	qc := c.quic()
	if qc == nil {
		return nil, errors.New("adapter: connection not established")
	}
	if c.pg.guarded.Load() {
		if st, err, done := c.openGuarded(context.Background(), qc, uni, false); done {
			return st, err
		}
	}
	return openNow(c, qc, uni)
}

// OpenStreamSync opens a stream, waiting for the peer's stream credit until ctx
// ends.
func (c *Conn) OpenStreamSync(ctx context.Context, uni bool) (*Stream, error) {
	qc := c.quic()
	if qc == nil {
		return nil, errors.New("adapter: connection not established")
	}
	if c.pg.guarded.Load() {
		if st, err, done := c.openGuarded(ctx, qc, uni, true); done {
			return st, err
		}
	}
	return openSync(ctx, c, qc, uni)
}

// AcceptStream waits for the peer's next bidirectional stream.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	s, err := c.quic().AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return newBidiStream(c, s), nil
}

// AcceptUniStream waits for the peer's next unidirectional stream.
func (c *Conn) AcceptUniStream(ctx context.Context) (*Stream, error) {
	rs, err := c.quic().AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return newReceiveStream(c, rs), nil
}

// ErrDatagramTooLarge is returned by SendDatagram for a payload above the
// current maximum; Max says what fits.
type ErrDatagramTooLarge struct{ Max int }

func (e *ErrDatagramTooLarge) Error() string { return "adapter: datagram too large" }

// SendDatagram queues one datagram. quic-go copies p. It blocks while quic-go's
// send queue is full, and in 0-RTT until the handshake completes (early.go).
func (c *Conn) SendDatagram(p []byte) error {
	qc := c.quic()
	if qc == nil {
		return errors.New("adapter: connection not established")
	}
	if c.pg.guarded.Load() {
		if err := waitHandshake(context.Background(), qc); err != nil {
			return err
		}
	}
	err := qc.SendDatagram(p)
	var tl *quic.DatagramTooLargeError
	if errors.As(err, &tl) {
		return &ErrDatagramTooLarge{Max: int(tl.MaxDatagramPayloadSize)}
	}
	return err
}

// MaxDatagramSize probes the largest datagram payload that fits a packet now,
// without sending anything: quic-go answers an oversized send with the limit.
func (c *Conn) MaxDatagramSize() int {
	qc := c.quic()
	if qc == nil {
		return 0
	}
	var (
		probe [maxDatagramProbe]byte
		err   error
	)
	// The probe never blocks: it is too large to be queued.
	if !c.readParams(qc, func() { err = qc.SendDatagram(probe[:]) }) {
		return 0 // 0-RTT, the server's parameters arriving (early.go)
	}
	var tl *quic.DatagramTooLargeError
	if errors.As(err, &tl) {
		return int(min(tl.MaxDatagramPayloadSize, math.MaxUint16))
	}
	return 0
}

// maxDatagramProbe is larger than any DATAGRAM frame quic-go accepts
// (max_datagram_frame_size 16383), so the probe never leaves.
const maxDatagramProbe = 1 << 15

// ReceiveDatagram waits for the next datagram.
func (c *Conn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return c.quic().ReceiveDatagram(ctx)
}

// HandshakeDone is closed once the handshake completes.
func (c *Conn) HandshakeDone() <-chan struct{} {
	if qc := c.quic(); qc != nil {
		return qc.HandshakeComplete()
	}
	return nil
}

// Context is cancelled when the connection ends.
func (c *Conn) Context() context.Context {
	if qc := c.quic(); qc != nil {
		return qc.Context()
	}
	return context.Background()
}

// Migrate moves a client connection to a new local address: it opens a socket
// there, probes the path and switches to it once validated. The old socket is
// kept until the connection ends (packets in flight may still arrive on it).
// It returns the connection's new local address.
func (c *Conn) Migrate(ctx context.Context, local netip.AddrPort) (netip.AddrPort, error) {
	qc := c.quic()
	if qc == nil || !c.isOwner {
		return netip.AddrPort{}, errors.New("adapter: only an established client connection migrates")
	}
	if c.pg.guarded.Load() {
		// AddPath reads the server's parameters (early.go).
		if err := waitHandshake(ctx, qc); err != nil {
			return netip.AddrPort{}, err
		}
	}
	nb, err := Bind(c.network, local, c.bindOpts)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := qc.AddPath(nb.tr)
	if err != nil {
		nb.Unref()
		return netip.AddrPort{}, err
	}
	if err := p.Probe(ctx); err != nil {
		_ = p.Close()
		nb.Unref()
		return netip.AddrPort{}, err
	}
	if err := p.Switch(); err != nil {
		_ = p.Close()
		nb.Unref()
		return netip.AddrPort{}, err
	}
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		nb.Unref()
		return netip.AddrPort{}, net.ErrClosed
	}
	c.extra = append(c.extra, nb)
	c.local = nb.local
	c.mu.Unlock()
	return nb.local, nil
}
