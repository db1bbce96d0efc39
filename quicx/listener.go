package quicx

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"quicx.dev/adapter"
	"quicx.dev/quicx/internal/evq"
)

type listenerState int

const (
	listenerOpened listenerState = iota
	listenerStarted
	listenerStopping
	listenerStopped
)

// ListenerStats is QUIC_LISTENER_STATISTICS (without BindingRecvDroppedPackets,
// which quic-go does not report).
type ListenerStats struct {
	TotalAcceptedConnections uint64
	TotalRejectedConnections uint64
}

// Listener is MsQuic's listener: it accepts connections for a set of ALPNs on
// a UDP address. Several listeners of one registration may share a port if
// their ALPN sets are disjoint. All methods are safe for concurrent use,
// including from the goroutine reading Events.
type Listener struct {
	reg *Registration
	log *slog.Logger

	mu       sync.Mutex
	q        *evq.Queue[ListenerEvent]
	state    listenerState
	closed   bool
	appClose bool
	alpns    []string
	settings Settings
	res      resolved
	sb       *serverBinding
	pending  map[*decision]struct{}
	stopDone chan struct{}
	stats    ListenerStats
}

// OpenListener is ListenerOpen.
func (r *Registration) OpenListener() (*Listener, error) {
	l := &Listener{reg: r, log: r.log, q: evq.New[ListenerEvent](r.eventBuffer()), pending: map[*decision]struct{}{}}
	res, err := l.settings.resolve("OpenListener")
	if err != nil {
		return nil, err
	}
	l.res = res
	if err := r.addChild(l, "OpenListener"); err != nil {
		return nil, err
	}
	return l, nil
}

// Events returns the channel of the current start/stop cycle. It is closed
// after that cycle's ListenerStopComplete, or by Close for a listener that was
// never started. A listener started again after a stop has a new channel: call
// Events again.
func (l *Listener) Events() <-chan ListenerEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.q.C()
}

// SetSettings sets the QUIC transport settings of the connections this listener
// will create, before Start. QUIC fixes transport parameters before the client's
// ALPN and server name are known, so they cannot come from the Configuration
// given to NewConnection.Accept; Accept checks that its configuration's
// transport settings match these and fails with ErrNotSupported otherwise.
// Listeners sharing a UDP port must use equal settings. nil restores MsQuic's
// defaults.
func (l *Listener) SetSettings(s *Settings) error {
	const op = "Listener.SetSettings"
	var set Settings
	if s != nil {
		set = *s
	}
	res, err := set.resolve(op)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return newErr(op, ErrInvalidState, "listener closed")
	}
	if l.state == listenerStarted || l.state == listenerStopping {
		return newErr(op, ErrInvalidState, "listener started")
	}
	l.settings, l.res = set, res
	return nil
}

// Start is ListenerStart: listen for alpns on addr. A zero addr, or an
// unspecified address, listens on every local address; port 0 picks a free
// port (see Addr).
func (l *Listener) Start(alpns []string, addr netip.AddrPort) error {
	const op = "Listener.Start"
	if err := validateALPNs(op, alpns); err != nil {
		return err
	}
	if shut, _, _ := l.reg.shutdownState(); shut {
		return newErr(op, ErrInvalidState, "registration is shut down")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return newErr(op, ErrInvalidState, "listener closed")
	}
	if l.state == listenerStarted || l.state == listenerStopping {
		return newErr(op, ErrInvalidState, "listener already started")
	}
	alpns = slices.Clone(alpns)
	sb, err := l.reg.attachListener(op, l, alpns, addr, l.res.transport)
	if err != nil {
		return err
	}
	if l.state == listenerStopped {
		l.q = evq.New[ListenerEvent](l.reg.eventBuffer())
	}
	l.state, l.sb, l.alpns, l.appClose = listenerStarted, sb, alpns, false
	l.log.Debug("listener started", "addr", sb.b.LocalAddr(), "alpn", alpns)
	return nil
}

// Addr is QUIC_PARAM_LISTENER_LOCAL_ADDRESS: the address the listener is bound to.
func (l *Listener) Addr() (netip.AddrPort, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return netip.AddrPort{}, newErr("Listener.Addr", ErrInvalidState, "listener closed")
	}
	if l.sb == nil || l.state != listenerStarted {
		return netip.AddrPort{}, newErr("Listener.Addr", ErrInvalidState, "listener not started")
	}
	return l.sb.b.LocalAddr(), nil
}

// Stats is QUIC_PARAM_LISTENER_STATS.
func (l *Listener) Stats() ListenerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Stop is ListenerStop: stop accepting (pending NewConnection decisions are
// rejected; accepted connections live on). ListenerStopComplete follows. Stop on
// a listener that is not started does nothing and raises no event.
func (l *Listener) Stop() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return newErr("Listener.Stop", ErrInvalidState, "listener closed")
	}
	l.mu.Unlock()
	l.stop(false)
	return nil
}

// stop begins a stop if the listener is started and returns the channel closed
// when the stop has completed (nil if no stop is under way).
func (l *Listener) stop(appClose bool) chan struct{} {
	l.mu.Lock()
	switch l.state {
	case listenerStopping:
		done := l.stopDone
		l.mu.Unlock()
		return done
	case listenerStarted:
	default:
		l.mu.Unlock()
		return nil
	}
	l.state = listenerStopping
	l.appClose = appClose
	l.stopDone = make(chan struct{})
	done := l.stopDone
	pending := make([]*decision, 0, len(l.pending))
	for d := range l.pending {
		pending = append(pending, d)
	}
	sb := l.sb
	l.mu.Unlock()
	for _, d := range pending {
		d.resolve(decisionResult{err: errListenerStopped})
	}
	go func() {
		l.reg.detachListener(sb, l)
		l.mu.Lock()
		l.state = listenerStopped
		l.sb = nil
		l.q.PushFinal(&ListenerStopComplete{AppCloseInProgress: l.appClose})
		close(l.stopDone)
		l.mu.Unlock()
		l.log.Debug("listener stopped")
	}()
	return done
}

var errListenerStopped = errors.New("quicx: listener stopped")

// Close is ListenerClose: it stops the listener if needed and returns once the
// stop is complete (it does not wait for the consumer to read
// ListenerStopComplete). Further calls return ErrInvalidState.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return newErr("Listener.Close", ErrInvalidState, "listener already closed")
	}
	l.closed = true
	l.mu.Unlock()
	if done := l.stop(true); done != nil {
		<-done
	}
	l.mu.Lock()
	if l.state == listenerOpened {
		l.q.End()
	}
	l.mu.Unlock()
	l.reg.removeChild(l)
	return nil
}

func (l *Listener) shutdownByRegistration(ConnectionShutdownFlags, uint64) { l.stop(false) }

// ---- the NEW_CONNECTION decision ----

type decisionResult struct {
	tls *tls.Config
	err error
}

// decision is one pending NEW_CONNECTION: the TLS callback waits on ch.
type decision struct {
	l    *Listener
	conn *Connection
	ch   chan decisionResult
	mu   sync.Mutex
	done bool
}

// resolve delivers the decision once; later calls report false.
func (d *decision) resolve(r decisionResult) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return false
	}
	d.done = true
	d.ch <- r
	return true
}

// AcceptConnection implements NewConnectionAnswer.
func (d *decision) AcceptConnection(cfg *Configuration) error {
	const op = "NewConnection.Accept"
	snap, err := cfg.use(op, false)
	if err != nil {
		return err
	}
	d.l.mu.Lock()
	ts := d.l.res.transport
	d.l.mu.Unlock()
	if !snap.res.transport.Equal(ts) {
		return newErr(op, ErrNotSupported, "the configuration's transport settings differ from the listener's (QUIC fixes them before the handshake; see Listener.SetSettings)")
	}
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return newErr(op, ErrInvalidState, "the connection was already accepted, rejected or timed out")
	}
	tlsConf := d.conn.acceptedBy(snap)
	d.done = true
	d.ch <- decisionResult{tls: tlsConf}
	d.mu.Unlock()
	return nil
}

// RejectConnection implements NewConnectionAnswer.
func (d *decision) RejectConnection(reason error) {
	if reason == nil {
		reason = errors.New("quicx: rejected by the application")
	}
	d.resolve(decisionResult{err: reason})
}

// decide runs inside crypto/tls for a connection matched to l; it waits, bounded,
// for the application's answer.
func (l *Listener) decide(ctx context.Context, ac *adapter.Conn, hello adapter.Hello, alpn string) (*tls.Config, error) {
	conn := newServerConnection(l, ac)
	d := &decision{l: l, conn: conn, ch: make(chan decisionResult, 1)}
	info := NewConnectionInfo{
		QUICVersion:    hello.QUICVersion,
		LocalAddress:   hello.Local,
		RemoteAddress:  hello.Remote,
		ServerName:     hello.ServerName,
		ClientALPNs:    slices.Clone(hello.ALPNs),
		NegotiatedALPN: alpn,
	}
	l.mu.Lock()
	if l.state != listenerStarted {
		l.mu.Unlock()
		conn.rejected()
		return nil, errListenerStopped
	}
	l.pending[d] = struct{}{}
	timeout := l.res.transport.HandshakeIdleTimeout
	l.q.Push(&NewConnection{Info: info, Connection: conn, answer: d})
	l.mu.Unlock()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var res decisionResult
	select {
	case res = <-d.ch:
	case <-timer.C:
		// Unanswered: rejected. If an answer raced the timer, it is in d.ch.
		d.resolve(decisionResult{err: errors.New("quicx: NewConnection not answered in time")})
		res = <-d.ch
	case <-ctx.Done():
		d.resolve(decisionResult{err: context.Cause(ctx)})
		res = <-d.ch
	}
	l.mu.Lock()
	delete(l.pending, d)
	if res.err == nil {
		l.stats.TotalAcceptedConnections++
	} else {
		l.stats.TotalRejectedConnections++
	}
	l.mu.Unlock()
	if res.err != nil {
		l.log.Debug("connection rejected", "remote", hello.Remote, "reason", res.err)
		conn.rejected()
		return nil, res.err
	}
	return res.tls, nil
}

// ---- bindings shared by listeners ----

// serverBinding is one UDP address with its quic-go listener, shared by the
// registration's listeners on that address.
type serverBinding struct {
	reg *Registration
	key netip.AddrPort // the bound address, its key in Registration.bindings
	b   *adapter.Binding
	ts  adapter.TransportSettings

	mu        sync.Mutex
	listeners []*Listener
}

// attachListener finds or creates the binding for addr and adds l with alpns.
func (r *Registration) attachListener(op string, l *Listener, alpns []string, addr netip.AddrPort, ts adapter.TransportSettings) (*serverBinding, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return nil, newErr(op, ErrInvalidState, "registration is closing")
	}
	if sb := r.bindings[addr]; addr.Port() != 0 && sb != nil {
		sb.mu.Lock()
		defer sb.mu.Unlock()
		for _, other := range sb.listeners {
			other.mu.Lock()
			overlap := slices.ContainsFunc(alpns, func(a string) bool { return slices.Contains(other.alpns, a) })
			other.mu.Unlock()
			if overlap {
				return nil, newErr(op, ErrAlpnInUse, "another listener on %s has one of %q", addr, alpns)
			}
		}
		if !sb.ts.Equal(ts) {
			return nil, newErr(op, ErrNotSupported, "listeners sharing %s must have equal transport settings", addr)
		}
		sb.listeners = append(sb.listeners, l)
		return sb, nil
	}
	b, err := adapter.Bind(r.network, addr, r.bindOpts)
	if err != nil {
		return nil, wrapErr(op, bindStatus(err), err, "binding "+addr.String())
	}
	sb := &serverBinding{reg: r, b: b, ts: ts, listeners: []*Listener{l}}
	if err := b.Listen(r.transport(ts), sb); err != nil {
		b.Unref()
		return nil, wrapErr(op, ErrInternalError, err, "listening")
	}
	// Found again by its actual address, so that a listener started on port 0
	// can share its port with listeners started later on that port.
	sb.key = b.LocalAddr()
	r.bindings[sb.key] = sb
	return sb, nil
}

// detachListener removes l from its binding, closing the quic-go listener when
// it was the last one. Accepted connections keep the socket open.
func (r *Registration) detachListener(sb *serverBinding, l *Listener) {
	r.mu.Lock()
	sb.mu.Lock()
	sb.listeners = slices.DeleteFunc(sb.listeners, func(x *Listener) bool { return x == l })
	last := len(sb.listeners) == 0
	if last && sb.key.IsValid() && r.bindings[sb.key] == sb {
		delete(r.bindings, sb.key)
	}
	sb.mu.Unlock()
	r.mu.Unlock()
	if last {
		sb.b.StopListening()
		sb.b.Unref()
	}
}

func bindStatus(err error) Status {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return ErrAddressInUse
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return ErrAddressNotAvailable
	case errors.Is(err, syscall.EAFNOSUPPORT):
		return ErrInvalidAddress
	}
	return ErrInternalError
}

// Decide implements adapter.ServerHooks: match the client's ALPNs to a started
// listener and ask it.
func (sb *serverBinding) Decide(ctx context.Context, ac *adapter.Conn, hello adapter.Hello) (*tls.Config, error) {
	sb.mu.Lock()
	ls := slices.Clone(sb.listeners)
	sb.mu.Unlock()
	for _, l := range ls {
		l.mu.Lock()
		started := l.state == listenerStarted
		alpns := l.alpns
		l.mu.Unlock()
		if !started {
			continue
		}
		// The server's order of preference decides, as crypto/tls does.
		for _, a := range alpns {
			if slices.Contains(hello.ALPNs, a) {
				return l.decide(ctx, ac, hello, a)
			}
		}
	}
	// No listener wants any of the client's protocols: a TLS configuration that
	// cannot match makes crypto/tls send no_application_protocol, which the
	// client reports as ALPN_NEG_FAILURE.
	return &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"\x00quicx-no-match"}, GetCertificate: noCertificate}, nil
}

func noCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return nil, errors.New("quicx: no listener for the client's ALPNs")
}

// Established implements adapter.ServerHooks.
func (sb *serverBinding) Established(ac *adapter.Conn) {
	if c, ok := ac.Owner().(*Connection); ok {
		c.established()
	}
}
