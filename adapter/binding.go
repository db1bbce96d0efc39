package adapter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
)

// Binding is one UDP socket and the quic-go Transport on it. A server binding
// carries one quic-go listener, shared by every quicx listener on that address,
// and the connections it accepted; a client connection has a binding of its
// own. The socket closes when the last user lets go.
type Binding struct {
	pc    net.PacketConn
	tr    *quic.Transport
	local netip.AddrPort

	mu     sync.Mutex
	refs   int
	closed bool
	ln     *quic.EarlyListener
	lnDone chan struct{} // closed when the accept loop has exited
	srv    ServerHooks
	ts     TransportSettings
	// deciding holds the server connections whose TLS decision has begun and
	// that are neither handed over by the listener nor gone.
	deciding map[*Conn]struct{}
}

// BindOptions configure a binding's quic-go transport.
type BindOptions struct {
	// VerifySourceAddress, if set, decides per client address whether a new
	// connection must first prove its address with a Retry.
	VerifySourceAddress func(netip.AddrPort) bool
	// StatelessResetKey enables stateless resets (none are sent without it).
	StatelessResetKey *[32]byte
}

// Bind opens a UDP socket on addr through n and puts a quic-go transport on it.
// The binding starts with one reference, owned by the caller.
func Bind(n Network, addr netip.AddrPort, o BindOptions) (*Binding, error) {
	pc, err := n.ListenPacket(addr)
	if err != nil {
		return nil, err
	}
	b := &Binding{pc: pc, local: addrPortOf(pc.LocalAddr()), refs: 1}
	b.tr = &quic.Transport{Conn: pc, ConnContext: b.connContext}
	if v := o.VerifySourceAddress; v != nil {
		b.tr.VerifySourceAddress = func(a net.Addr) bool { return v(addrPortOf(a)) }
	}
	if o.StatelessResetKey != nil {
		k := quic.StatelessResetKey(*o.StatelessResetKey)
		b.tr.StatelessResetKey = &k
	}
	return b, nil
}

// LocalAddr is the socket's address (with the port the OS picked).
func (b *Binding) LocalAddr() netip.AddrPort { return b.local }

// Ref takes another reference on the binding.
func (b *Binding) Ref() {
	b.mu.Lock()
	b.refs++
	b.mu.Unlock()
}

// Unref gives a reference back; the last one closes the socket.
func (b *Binding) Unref() { b.unref() }

func (b *Binding) unref() {
	b.mu.Lock()
	b.refs--
	last := b.refs == 0
	b.mu.Unlock()
	if last {
		b.closeNow()
	}
}

// closeNow closes the transport (every connection on it dies without a
// CONNECTION_CLOSE) and the socket.
func (b *Binding) closeNow() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	_ = b.tr.Close()
	_ = b.pc.Close()
}

// ---- server side ----

// Hello is what the client's first flight says, for the NEW_CONNECTION decision.
type Hello struct {
	QUICVersion uint32
	Local       netip.AddrPort
	Remote      netip.AddrPort
	ServerName  string
	ALPNs       []string
}

// ServerHooks is how a server binding asks quicx about incoming connections.
type ServerHooks interface {
	// Decide runs inside crypto/tls while the connection is frozen: it returns
	// the TLS configuration to continue the handshake with, or an error to refuse
	// it. ctx ends when the connection dies; the callee must bound its own wait.
	Decide(ctx context.Context, c *Conn, hello Hello) (*tls.Config, error)
	// Established runs when the handshake of c has completed.
	Established(c *Conn)
}

// Listen starts accepting connections with the given transport settings and
// hooks: hooks.Decide supplies each connection's TLS configuration, and
// hooks.Established reports each completed handshake.
func (b *Binding) Listen(ts TransportSettings, hooks ServerHooks) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		return errors.New("adapter: binding already listening")
	}
	if b.closed {
		return net.ErrClosed
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			return b.decide(chi)
		},
	}
	conf := ts.quicConfig(b.tracer)
	ln, err := b.tr.ListenEarly(tlsConf, conf)
	if err != nil {
		return err
	}
	b.ln, b.srv, b.ts = ln, hooks, ts
	b.lnDone = make(chan struct{})
	b.refs++
	go b.acceptLoop(ln, b.lnDone)
	return nil
}

// StopListening closes the quic-go listener; accepted connections live on.
// It returns once the accept loop has exited. quicx must have released every
// pending decision first, or this waits for them (quic-go's Close waits for
// handshakes frozen inside crypto/tls).
//
// Before closing quic-go's listener it waits for every connection whose
// decision was under way to be handed over or gone. quic-go's Close closes
// each handshake it has not handed over with CONNECTION_REFUSED, and that
// close would otherwise race with the answer quicx gave: the TLS alert of a
// refusal, or the continued handshake of an accepted connection. Each of
// those settles within one turn of its connection's loop.
func (b *Binding) StopListening() {
	b.mu.Lock()
	ln, done := b.ln, b.lnDone
	b.ln = nil
	var settling []chan struct{}
	for c := range b.deciding {
		settling = append(settling, c.settled)
	}
	b.mu.Unlock()
	if ln == nil {
		return
	}
	for _, ch := range settling {
		<-ch
	}
	_ = ln.Close()
	<-done
	b.unref()
}

// Listening reports the settings of the active listener, if any.
func (b *Binding) Listening() (TransportSettings, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ts, b.ln != nil
}

func (b *Binding) acceptLoop(ln *quic.EarlyListener, done chan struct{}) {
	defer close(done)
	for {
		qc, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		c, _ := qc.Context().Value(connKey{}).(*Conn)
		if c == nil {
			_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeInternalError), "")
			continue
		}
		c.attach(qc)
		c.settle()
		// An early listener hands connections over when 0-RTT is possible;
		// quicx reports the connection once the handshake is complete.
		go func() {
			select {
			case <-qc.HandshakeComplete():
				b.hooks().Established(c)
			case <-qc.Context().Done():
			}
		}()
	}
}

// settle marks a server connection's decision as over: handed over by the
// listener, or gone.
func (c *Conn) settle() {
	if c.settled == nil {
		return
	}
	c.settleOnce.Do(func() {
		b := c.binding
		b.mu.Lock()
		delete(b.deciding, c)
		b.mu.Unlock()
		close(c.settled)
	})
}

func (b *Binding) hooks() ServerHooks {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srv
}

type connKey struct{}

// connContext runs when quic-go creates a server connection: the adapter's Conn
// is born here, so a handshake that fails before Accept is still seen.
func (b *Binding) connContext(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
	c := &Conn{binding: b, remote: addrPortOf(ci.RemoteAddr), local: b.local, settled: make(chan struct{})}
	b.Ref()
	ctx = context.WithValue(ctx, connKey{}, c)
	context.AfterFunc(ctx, func() {
		c.markClosed(Classify(context.Cause(ctx)))
	})
	return ctx, nil
}

func (b *Binding) decide(chi *tls.ClientHelloInfo) (*tls.Config, error) {
	ctx := chi.Context()
	c, _ := ctx.Value(connKey{}).(*Conn)
	hooks := b.hooks()
	if c == nil || hooks == nil {
		return nil, errors.New("quicx: no listener")
	}
	b.mu.Lock()
	if b.deciding == nil {
		b.deciding = map[*Conn]struct{}{}
	}
	b.deciding[c] = struct{}{}
	b.mu.Unlock()
	h := Hello{ServerName: chi.ServerName, ALPNs: chi.SupportedProtos}
	if v, ok := ctx.Value(quic.QUICVersionContextKey).(quic.Version); ok {
		h.QUICVersion = uint32(v)
	}
	if chi.Conn != nil {
		h.Local = addrPortOf(chi.Conn.LocalAddr())
		h.Remote = addrPortOf(chi.Conn.RemoteAddr())
		c.mu.Lock()
		c.local, c.remote = h.Local, h.Remote
		c.mu.Unlock()
	}
	return hooks.Decide(ctx, c, h)
}

// tracer gives quic-go the qlog trace of the connection being created.
func (b *Binding) tracer(ctx context.Context, isClient bool, id quic.ConnectionID) qlogwriter.Trace {
	c, _ := ctx.Value(connKey{}).(*Conn)
	if c == nil {
		return nil
	}
	b.mu.Lock()
	ts := b.ts
	b.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec == nil {
		c.rec = newRecorder(ts.Track, isClient, c)
	}
	return connTrace(c.rec, ts.QlogDir, isClient, id)
}

// ---- client side ----

// DialOptions configure a client connection.
type DialOptions struct {
	Bind     BindOptions
	Network  Network
	Local    netip.AddrPort // the local address to bind; zero for any
	Remote   netip.AddrPort
	TLS      *tls.Config
	Settings TransportSettings
	Early    bool // attempt 0-RTT with a stored session
}

// NewClientConn prepares a client connection: it opens the connection's own
// UDP socket now, so that quicx knows its local address before the dial.
func NewClientConn(o DialOptions) (*Conn, error) {
	local := o.Local
	if _, isOS := o.Network.(OSNetwork); isOS && (!local.IsValid() || local.Addr().IsUnspecified()) {
		// Bind to the address the OS routes to the peer from, so that the
		// connection's local address is the path's, as MsQuic reports it.
		if src, ok := routeSource(o.Remote); ok {
			local = netip.AddrPortFrom(src, local.Port())
		}
	}
	b, err := Bind(o.Network, local, o.Bind)
	if err != nil {
		return nil, err
	}
	c := &Conn{binding: b, isOwner: true, local: b.local, remote: o.Remote, network: o.Network, bindOpts: o.Bind, ids: &handshakeIDs{}}
	b.tr.ConnectionIDGenerator = cidGenerator{c.ids}
	c.rec = newRecorder(o.Settings.Track, true, c)
	return c, nil
}

// ErrHandshakeClosed is the cause to cancel a Dial's context with when the
// application closes the connection during the handshake: Dial then tells the
// server with a CONNECTION_CLOSE (APPLICATION_ERROR) in an Initial packet,
// which quic-go itself does not send when its dial is cancelled. Any other
// cause abandons the handshake silently.
var ErrHandshakeClosed = fmt.Errorf("adapter: closed by the application during the handshake: %w", context.Canceled)

// Dial runs the client handshake on a Conn from NewClientConn. It returns when
// the handshake completes (or, with Early and a usable session, once 0-RTT data
// can be sent), fails, or ctx ends. On failure the connection has ended and its
// close callback has run.
func (c *Conn) Dial(ctx context.Context, o DialOptions) error {
	b := c.binding
	unreachable := reportUnreachable(b.pc, true)
	ctx = context.WithValue(ctx, connKey{}, c)
	conf := o.Settings.quicConfig(nil)
	// The tracer is always installed: its argument is the original destination
	// ID, which an Initial CONNECTION_CLOSE needs. It returns nil (no events,
	// no cost) unless the connection is traced.
	// An early dial is always traced: its recorder guards the 0-RTT phase
	// against quic-go's data race #4303 (early.go).
	traced := o.Settings.Track != 0 || o.Settings.QlogDir != "" || o.Early
	if o.Early {
		c.pg.guarded.Store(true)
	}
	conf.Tracer = func(_ context.Context, _ bool, id quic.ConnectionID) qlogwriter.Trace {
		c.ids.dialed(id)
		if !traced {
			return nil
		}
		return connTrace(c.rec, o.Settings.QlogDir, true, id)
	}
	raddr := net.UDPAddrFromAddrPort(o.Remote)
	var (
		qc  *quic.Conn
		err error
	)
	if o.Early {
		qc, err = b.tr.DialEarly(ctx, raddr, o.TLS, conf)
	} else {
		qc, err = b.tr.Dial(ctx, raddr, o.TLS, conf)
	}
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrHandshakeClosed) {
			// quic-go's connection has stopped: nothing else is sent from here.
			c.sendInitialClose(o.Settings.Versions)
		}
		c.markClosed(Classify(err))
		return err
	}
	c.attach(qc)
	if unreachable {
		// After the handshake an ICMP report could be spoofed; MsQuic ignores them.
		go func() {
			select {
			case <-qc.HandshakeComplete():
				reportUnreachable(b.pc, false)
			case <-qc.Context().Done():
			}
		}()
	}
	return nil
}

// sendInitialClose tells the server that the client abandoned the handshake:
// CONNECTION_CLOSE with APPLICATION_ERROR in an Initial packet (RFC 9000
// §10.2.3), from the IDs of the last dial attempt. After a version switch the
// version used is not known, so one packet goes out for each version the
// client could have switched to. Best effort: a server that never saw the
// client, or that has already discarded its Initial keys, ignores it.
func (c *Conn) sendInitialClose(versions []uint32) {
	src, dst, attempts := c.ids.get()
	if attempts == 0 || dst.Len() == 0 {
		return
	}
	if len(versions) == 0 {
		versions = SupportedVersions()
	}
	candidates := versions[:1]
	if attempts > 1 {
		candidates = versions[1:]
	}
	raddr := net.UDPAddrFromAddrPort(c.remote)
	for _, v := range candidates {
		pkt, err := initialClose(v, dst.Bytes(), src.Bytes())
		if err != nil {
			continue
		}
		_, _ = c.binding.pc.WriteTo(pkt, raddr)
	}
}

// routeSource asks the OS which local address it would send to remote from.
// Connecting a UDP socket sends nothing.
func routeSource(remote netip.AddrPort) (netip.Addr, bool) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(remote))
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	return addrPortOf(c.LocalAddr()).Addr(), true
}

// Abandon releases a client connection that was never dialed.
func (c *Conn) Abandon() {
	c.markClosed(CloseInfo{Kind: CloseCanceled})
}
