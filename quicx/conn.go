package quicx

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"quicx.dev/adapter"
	"quicx.dev/quicx/internal/evq"
)

type connState int

const (
	connOpened    connState = iota // client: opened, not started
	connDeciding                   // server: waiting for NewConnection's answer
	connStarting                   // client dialing / server handshaking
	connConnected                  // handshake complete
	connEnded                      // the transport connection is gone; final event queued or waiting for streams
)

// Connection is MsQuic's connection. A client connection comes from
// Registration.OpenConnection and Start; a server connection from a listener's
// NewConnection event. All methods are safe for concurrent use, including from
// the goroutine reading Events, and none waits for that goroutine.
type Connection struct {
	reg      *Registration
	server   bool
	listener *Listener
	log      *slog.Logger
	q        *evq.Queue[ConnectionEvent]

	mu          sync.Mutex
	state       connState
	ac          *adapter.Conn
	cfg         configSnapshot
	override    *Settings // Connection.SetSettings before start
	res         resolved
	owned       bool // the app owns the connection (client, or accepted server)
	closed      bool // Close was called
	localShut   bool // the app (or the registration) initiated shutdown
	shutCode    uint64
	shutAbort   bool // the shutdown came from Close: status ABORTED
	reason      string
	handshake   bool // the handshake completed
	final       bool // ConnectionShutdownComplete queued
	end         *connEnd
	dialCancel  context.CancelCauseFunc
	tlsWaits    int // waits for the app inside crypto/tls callbacks under way
	remoteSet   netip.AddrPort
	localSet    netip.AddrPort
	live        map[*Stream]struct{} // started streams without their final event
	byID        map[uint64]*Stream
	openers     [2]opener // local stream opening, per direction: 0 bidi, 1 uni
	peerLimit   [2]uint64 // the peer's MAX_STREAMS, per direction
	knownLimits bool
	dg          datagrams

	ticket       []byte        // client: SetResumptionTicket
	ticketsEarly [][]byte      // client: tickets received before Connected
	ticketData   []byte        // server: app data for the ticket
	ticketIssued bool          // server: quic-go issued its one ticket
	resumedState []byte        // server: app data of the ticket resumed with
	abort        chan struct{} // closed by a local shutdown: ends waits in TLS callbacks
	early        atomic.Bool   // client: in the 0-RTT phase (streams usable, handshake not complete)
	rejections   atomic.Uint32 // client: 1 once the server rejected 0-RTT and the streams were reopened

	idealBytes uint64 // the ideal send buffer size, once grown past the default; under mu
}

// connEnd is how the connection ended, as its streams report it.
type connEnd struct {
	byApp  bool
	remote bool
	code   uint64
	status error
}

// OpenConnection is ConnectionOpen: a client connection, not yet started.
// Streams may be opened, started and sent on before Start.
func (r *Registration) OpenConnection() (*Connection, error) {
	const op = "OpenConnection"
	if shut, _, _ := r.shutdownState(); shut {
		return nil, newErr(op, ErrInvalidState, "registration is shut down")
	}
	c := newConnection(r, false)
	c.owned = true
	if err := r.addChild(c, op); err != nil {
		return nil, err
	}
	return c, nil
}

func newConnection(r *Registration, server bool) *Connection {
	c := &Connection{
		reg:    r,
		server: server,
		log:    r.log,
		q:      evq.New[ConnectionEvent](r.eventBuffer()),
		live:   map[*Stream]struct{}{},
		byID:   map[uint64]*Stream{},
	}
	for i := range c.openers {
		c.openers[i].uni = i == 1
	}
	// Until a configuration is applied, streams opened early use MsQuic's defaults.
	c.res, _ = (&Settings{}).resolve("OpenConnection")
	return c
}

func newServerConnection(l *Listener, ac *adapter.Conn) *Connection {
	c := newConnection(l.reg, true)
	c.listener = l
	c.ac = ac
	c.state = connDeciding
	c.log = l.log.With("remote", ac.RemoteAddr())
	ac.SetOwner(c)
	return c
}

// Events returns the connection's event channel. It is closed right after
// ConnectionShutdownComplete, and for a server connection that was rejected,
// without any event.
func (c *Connection) Events() <-chan ConnectionEvent { return c.q.C() }

// IsServer reports whether the connection was accepted by a listener.
func (c *Connection) IsServer() bool { return c.server }

// ---- server side ----

// acceptedBy applies the configuration chosen in NewConnection.Accept and
// returns the TLS configuration to continue the handshake with.
func (c *Connection) acceptedBy(snap configSnapshot) *tls.Config {
	c.mu.Lock()
	c.cfg, c.res = snap, snap.res
	c.owned = true
	c.state = connStarting
	c.mu.Unlock()
	_ = c.reg.addChild(c, "NewConnection.Accept")
	c.ac.SetRecorderHandler(c)
	c.ac.SetDatagramHandler(c.datagramState)
	c.ac.OnClose(c.transportEnded)
	return c.serverTLS(snap)
}

// rejected ends a server connection the app never owned: no events.
func (c *Connection) rejected() {
	c.mu.Lock()
	owned := c.owned
	if !owned {
		c.state, c.final = connEnded, true
	}
	c.mu.Unlock()
	if !owned {
		c.q.End()
	}
}

func (c *Connection) serverTLS(snap configSnapshot) *tls.Config {
	conf := snap.tlsConfig()
	c.installCertificateHook(conf, snap.cred, snap.res.transport.HandshakeIdleTimeout)
	if snap.res.resumption == ServerNoResume {
		return conf
	}
	return adapter.ServerTLS(conf, adapter.ServerSessionHooks{
		TicketAppData: func() []byte {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.ticketIssued = true
			return c.ticketData
		},
		Resumed: func(data []byte) {
			c.mu.Lock()
			c.resumedState = data
			c.mu.Unlock()
		},
	})
}

// established runs when the handshake completes (server or client).
func (c *Connection) established() {
	st, _ := c.ac.State()
	c.mu.Lock()
	if c.state != connStarting {
		c.mu.Unlock()
		return
	}
	c.state = connConnected
	c.handshake = true
	pendingShut := c.localShut
	maxLen := 0
	if st.DatagramsRemote {
		maxLen = c.ac.MaxDatagramSize()
	}
	if !c.server {
		// MsQuic raises the initial DATAGRAM_STATE_CHANGED on the client only.
		c.q.Push(&DatagramStateChanged{SendEnabled: st.DatagramsRemote, MaxSendLength: uint16(maxLen)})
	}
	if c.res.transport.ResetPartialDelivery {
		c.q.Push(&ReliableResetNegotiated{IsNegotiated: st.ResetPartial})
	}
	if c.server && st.TLS.DidResume {
		// MsQuic: RESUMED comes before CONNECTED.
		c.q.Push(&Resumed{ResumptionState: c.resumedState})
	}
	c.q.Push(&Connected{SessionResumed: st.TLS.DidResume, NegotiatedALPN: st.TLS.NegotiatedProtocol})
	for _, t := range c.ticketsEarly {
		c.q.Push(&ResumptionTicketReceived{ResumptionTicket: t})
	}
	c.ticketsEarly = nil
	c.datagramsUpLocked(st.DatagramsRemote, maxLen)
	res := c.res
	c.mu.Unlock()
	c.log.Debug("connected", "alpn", st.TLS.NegotiatedProtocol, "resumed", st.TLS.DidResume)

	if pendingShut {
		// Shutdown was called while the handshake was under way.
		c.mu.Lock()
		code, reason := c.shutCode, c.reason
		c.mu.Unlock()
		c.ac.Close(code, reason)
		return
	}
	ctx := c.ac.Context()
	if res.transport.Datagrams {
		go c.receiveDatagrams(ctx, c.ac)
	}
	if res.transport.PeerBidiStreams > 0 {
		go c.acceptLoop(ctx, false)
	}
	if res.transport.PeerUniStreams > 0 {
		go c.acceptLoop(ctx, true)
	}
	for i := range c.openers {
		c.kickOpener(i)
	}
}

// acceptLoop turns the peer's streams into PeerStreamStarted events.
func (c *Connection) acceptLoop(ctx context.Context, uni bool) {
	for {
		var (
			as  *adapter.Stream
			err error
		)
		if uni {
			as, err = c.ac.AcceptUniStream(ctx)
		} else {
			as, err = c.ac.AcceptStream(ctx)
		}
		if err != nil {
			return
		}
		// With TrackZeroRTT: was the frame that opened it in a 0-RTT packet?
		// (Waits for the recorder to see that packet, right after quic-go
		// handled it.)
		early := as.OpenedIn0RTT(ctx)
		s := newPeerStream(c, as, uni)
		c.mu.Lock()
		if c.final || c.state == connEnded {
			c.mu.Unlock()
			as.CancelRead(0)
			as.CancelWrite(0)
			return
		}
		c.live[s] = struct{}{}
		c.byID[as.ID()] = s
		flags := StreamOpenNone
		if uni {
			flags |= StreamOpenUnidirectional
		}
		if early {
			flags |= StreamOpen0RTT
		}
		c.q.Push(&PeerStreamStarted{Stream: s, Flags: flags})
		c.mu.Unlock()
		s.startPeer()
	}
}

// ---- client side ----

// SetRemoteAddr is QUIC_PARAM_CONN_REMOTE_ADDRESS: connect to addr (its IP;
// Start's port is used) instead of resolving the server name, which then only
// sets SNI. Before Start only.
func (c *Connection) SetRemoteAddr(addr netip.AddrPort) error {
	const op = "Connection.SetRemoteAddr"
	if !addr.IsValid() || addr.Addr().IsUnspecified() {
		return newErr(op, ErrInvalidParameter, "address must be a specific IP")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.beforeStartLocked(op); err != nil {
		return err
	}
	c.remoteSet = addr
	return nil
}

// SetLocalAddr is QUIC_PARAM_CONN_LOCAL_ADDRESS (client). Before Start it
// binds the connection's socket to addr. Once connected it migrates the
// connection: a new socket on addr, a path probed and switched to, then
// LocalAddressChanged (nothing if the path fails validation: the connection
// stays where it was). While the handshake runs it returns ErrInvalidState.
func (c *Connection) SetLocalAddr(addr netip.AddrPort) error {
	const op = "Connection.SetLocalAddr"
	c.mu.Lock()
	if c.server {
		c.mu.Unlock()
		return newErr(op, ErrInvalidParameter, "client connections only")
	}
	if c.closed || c.end != nil {
		c.mu.Unlock()
		return newErr(op, ErrInvalidState, "connection closed")
	}
	switch c.state {
	case connOpened:
		defer c.mu.Unlock()
		if err := c.beforeStartLocked(op); err != nil {
			return err
		}
		c.localSet = addr
		return nil
	case connConnected:
	default:
		c.mu.Unlock()
		return newErr(op, ErrInvalidState, "the handshake is not complete")
	}
	ac := c.ac
	c.mu.Unlock()
	go c.migrate(ac, addr)
	return nil
}

// migrate moves the connection to a new local address.
func (c *Connection) migrate(ac *adapter.Conn, addr netip.AddrPort) {
	ctx, cancel := context.WithTimeout(ac.Context(), 10*time.Second)
	defer cancel()
	local, err := ac.Migrate(ctx, addr)
	if err != nil {
		c.log.Debug("migration failed", "to", addr, "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.final && c.end == nil {
		c.q.Push(&LocalAddressChanged{Address: local})
	}
}

func (c *Connection) beforeStartLocked(op string) error {
	if c.closed {
		return newErr(op, ErrInvalidState, "connection closed")
	}
	if c.server {
		return newErr(op, ErrInvalidParameter, "client connections only")
	}
	if c.state != connOpened || c.localShut {
		return newErr(op, ErrInvalidState, "connection already started")
	}
	return nil
}

// Start is ConnectionStart: connect to serverName (resolved for family) on
// port with cfg, a configuration holding a client credential. It returns at
// once; the outcome arrives as Connected or as ShutdownInitiatedByTransport
// followed by ConnectionShutdownComplete.
func (c *Connection) Start(cfg *Configuration, family AddressFamily, serverName string, port uint16) error {
	const op = "Connection.Start"
	snap, err := cfg.use(op, true)
	if err != nil {
		return err
	}
	switch {
	case port == 0:
		return newErr(op, ErrInvalidParameter, "port 0")
	case family != AddressFamilyUnspec && family != AddressFamilyINET && family != AddressFamilyINET6:
		return newErr(op, ErrInvalidParameter, "unknown address family %d", family)
	case len(serverName) > 65535:
		return newErr(op, ErrInvalidParameter, "server name too long")
	}
	c.mu.Lock()
	if err := c.beforeStartLocked(op); err != nil {
		c.mu.Unlock()
		return err
	}
	if serverName == "" && !c.remoteSet.IsValid() {
		c.mu.Unlock()
		return newErr(op, ErrInvalidParameter, "no server name and no remote address")
	}
	res := snap.res
	if c.override != nil {
		if res, err = c.override.resolve(op); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.cfg, c.res = snap, res
	if shut, _, code := c.reg.shutdownState(); shut {
		// MsQuic accepts the start and shuts the connection down at once.
		c.localShut, c.shutCode = true, code
		c.mu.Unlock()
		c.finish(&connEnd{byApp: true, code: code}, nil)
		return nil
	}
	c.state = connStarting
	ctx, cancel := context.WithCancelCause(context.Background())
	c.dialCancel = cancel
	remote, local := c.remoteSet, c.localSet
	c.mu.Unlock()
	go c.dial(ctx, family, serverName, port, remote, local)
	return nil
}

func (c *Connection) dial(ctx context.Context, family AddressFamily, serverName string, port uint16, remote, local netip.AddrPort) {
	defer c.dialCancelDone()
	addr, err := c.resolve(ctx, family, serverName, remote)
	if err != nil {
		c.endBeforeTransport(err)
		return
	}
	addr = netip.AddrPortFrom(addr.Addr(), port)
	c.mu.Lock()
	res, snap := c.res, c.cfg
	c.mu.Unlock()
	tlsConf := snap.tlsConfig()
	c.mu.Lock()
	ticket := c.ticket
	c.mu.Unlock()
	cache, err := adapter.NewTicketCache(ticket, c.ticketReceived)
	if err != nil {
		c.endBeforeTransport(wrapErr("Connection.Start", ErrInvalidParameter, err, "resumption ticket"))
		return
	}
	tlsConf.ClientSessionCache = cache
	c.installCertificateHook(tlsConf, snap.cred, res.transport.HandshakeIdleTimeout)
	if serverName != "" {
		tlsConf.ServerName = serverName
	} else {
		tlsConf.ServerName = addr.Addr().String()
	}
	opts := adapter.DialOptions{Network: c.reg.network, Bind: c.reg.bindOpts, Local: local, Remote: addr, TLS: tlsConf, Settings: c.reg.transport(res.transport)}
	ac, err := adapter.NewClientConn(opts)
	if err != nil {
		c.endBeforeTransport(wrapErr("Connection.Start", bindStatus(err), err, "opening the UDP socket"))
		return
	}
	c.mu.Lock()
	c.ac = ac
	c.mu.Unlock()
	ac.SetOwner(c)
	ac.SetRecorderHandler(c)
	ac.SetDatagramHandler(c.datagramState)
	ac.OnClose(c.transportEnded)
	opts.Early = len(ticket) > 0 && adapter.TicketAllowsEarlyData(ticket)
	if ctx.Err() != nil {
		ac.Abandon() // shut down before anything went out: nothing to tell the server
		return
	}
	if err := ac.Dial(ctx, opts); err != nil {
		return // transportEnded has run
	}
	if ac.InEarlyPhase() {
		// 0-RTT: streams open now and sends flagged SendAllow0RTT go out before
		// the handshake completes.
		c.early.Store(true)
		for i := range c.openers {
			c.kickOpener(i)
		}
		select {
		case <-ac.HandshakeDone():
		case <-ac.Context().Done():
			c.early.Store(false)
			return // transportEnded has run
		}
		if !ac.Used0RTT() {
			c.replayRejected0RTT(ac)
		}
		// From here on no write is logged as early; what was written in 0-RTT
		// is either accepted or replayed on the reopened streams.
		c.early.Store(false)
		c.forEachLive(func(s *Stream) { s.earlyOver() })
	}
	c.established()
	c.forEachLive(func(s *Stream) { s.kickWriter() }) // sends held back from 0-RTT
}

// replayRejected0RTT recovers from a server that rejected 0-RTT. quic-go voided
// every stream opened in 0-RTT and restarted its stream IDs; MsQuic simply
// sends the data again. So the streams are reopened in ID order — they get
// their IDs back — and each replays what it wrote in 0-RTT. The openers are
// held meanwhile so that no other stream takes an ID.
func (c *Connection) replayRejected0RTT(ac *adapter.Conn) {
	ctx := ac.Context()
	for i := range c.openers {
		c.openers[i].mu.Lock()
		defer c.openers[i].mu.Unlock()
	}
	c.rejections.Add(1) // streams the opener got before this are void
	var opened [2][]*Stream
	c.forEachLive(func(s *Stream) {
		if s.local && s.opened() {
			opened[dirIndex(s.uni)] = append(opened[dirIndex(s.uni)], s)
		}
	})
	for _, streams := range opened {
		sort.Slice(streams, func(a, b int) bool { return streams[a].id < streams[b].id })
	}
	// The adapter reopens them all in one step: no other open can take one
	// of their IDs first.
	reopened, err := ac.AfterRejected0RTT(ctx, len(opened[0]), len(opened[1]))
	if err != nil {
		return // the connection ended
	}
	for i, streams := range opened {
		for k, s := range streams {
			as := reopened[i][k]
			if as.ID() != s.id {
				c.log.Error("reopened stream got another ID after 0-RTT rejection", "got", as.ID(), "want", s.id)
			}
			s.reopenAfterRejection(as)
		}
	}
	c.log.Debug("0-RTT rejected: streams reopened", "bidi", len(opened[0]), "uni", len(opened[1]))
}

func (c *Connection) dialCancelDone() {
	c.mu.Lock()
	cancel := c.dialCancel
	c.dialCancel = nil
	c.mu.Unlock()
	if cancel != nil {
		cancel(nil)
	}
}

// resolve picks the address to dial.
func (c *Connection) resolve(ctx context.Context, family AddressFamily, name string, remote netip.AddrPort) (netip.AddrPort, error) {
	if remote.IsValid() {
		return remote, nil
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		if (family == AddressFamilyINET && !ip.Unmap().Is4()) || (family == AddressFamilyINET6 && !ip.Is6()) {
			return netip.AddrPort{}, newErr("Connection.Start", ErrInvalidAddress, "%s is not of family %s", ip, family)
		}
		return netip.AddrPortFrom(ip.Unmap(), 0), nil
	}
	network := "ip"
	switch family {
	case AddressFamilyINET:
		network = "ip4"
	case AddressFamilyINET6:
		network = "ip6"
	}
	ips, err := c.reg.network.LookupNetIP(ctx, network, name)
	if err != nil || len(ips) == 0 {
		if err == nil {
			err = errors.New("no addresses")
		}
		return netip.AddrPort{}, wrapErr("Connection.Start", ErrInvalidAddress, err, "resolving "+name)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), 0), nil
}

// endBeforeTransport ends a client connection that failed before it had a
// quic-go connection (name resolution, socket).
func (c *Connection) endBeforeTransport(err error) {
	c.mu.Lock()
	local := c.localShut
	c.mu.Unlock()
	if local {
		c.finish(&connEnd{byApp: true, code: c.shutCode, status: c.localStatus()}, nil)
		return
	}
	st := StatusOf(err)
	c.finish(&connEnd{code: adapter.CodeInternalError, status: err},
		&ShutdownInitiatedByTransport{Status: errorOrStatus(err, st), ErrorCode: adapter.CodeInternalError})
}

func errorOrStatus(err error, st Status) error {
	if err != nil {
		return err
	}
	return st
}

// ---- the end of a connection ----

// transportEnded runs once when the quic-go connection is gone.
func (c *Connection) transportEnded(ci adapter.CloseInfo) {
	c.mu.Lock()
	local, handshake := c.localShut, c.handshake
	code, abort := c.shutCode, c.shutAbort
	c.mu.Unlock()
	c.log.Debug("transport ended", "kind", ci.Kind, "remote", ci.Remote, "code", ci.Code, "local", local)
	if local {
		st := error(nil)
		if abort {
			st = ErrAborted
		}
		c.finish(&connEnd{byApp: true, code: code, status: st}, nil)
		return
	}
	end, ev := endOf(ci, handshake)
	c.finish(end, ev)
}

// endOf maps how quic-go says a connection ended onto MsQuic's events: a peer
// application close after the handshake is BY_PEER; everything else,
// including a peer close during the handshake, is BY_TRANSPORT.
func endOf(ci adapter.CloseInfo, handshake bool) (*connEnd, ConnectionEvent) {
	transport := func(st error, code uint64, remote bool) (*connEnd, ConnectionEvent) {
		return &connEnd{remote: remote, code: code, status: st}, &ShutdownInitiatedByTransport{Status: st, ErrorCode: code}
	}
	switch ci.Kind {
	case adapter.CloseApplication:
		if ci.Remote && handshake {
			return &connEnd{remote: true, code: ci.Code}, &ShutdownInitiatedByPeer{ErrorCode: ci.Code}
		}
		if ci.Remote {
			return transport(ErrUserCanceled, adapter.CodeApplicationError, true)
		}
		return transport(ErrAborted, ci.Code, false)
	case adapter.CloseTransport:
		return transport(wireStatus(ci.Code), ci.Code, ci.Remote)
	case adapter.CloseIdle, adapter.CloseHandshakeTimeout:
		return transport(ErrConnectionIdle, adapter.CodeInternalError, false)
	case adapter.CloseStatelessReset:
		return transport(ErrAborted, adapter.CodeInternalError, true)
	case adapter.CloseVersionNegotiation:
		return transport(ErrVerNegError, adapter.CodeInternalError, false)
	case adapter.CloseUnreachable:
		return transport(ErrUnreachable, adapter.CodeInternalError, false)
	case adapter.CloseCanceled, adapter.CloseTransportGone:
		return transport(ErrAborted, adapter.CodeInternalError, false)
	}
	return transport(ErrInternalError, adapter.CodeInternalError, false)
}

// wireStatus is MsQuic's QuicErrorCodeToStatus.
func wireStatus(code uint64) error {
	switch code {
	case adapter.CodeNoError:
		return nil
	case adapter.CodeConnectionRefused:
		return ErrConnectionRefused
	case adapter.CodeProtocolViolation:
		return ErrProtocolError
	case adapter.CodeApplicationError, adapter.CodeCryptoBase + 90: // CRYPTO_USER_CANCELED
		return ErrUserCanceled
	case adapter.CodeCryptoBase + 40: // handshake_failure
		return ErrHandshakeFailure
	case adapter.CodeCryptoBase + 120: // no_application_protocol
		return ErrAlpnNegFailure
	case 0x11: // VERSION_NEGOTIATION_ERROR
		return ErrVerNegError
	}
	if code >= adapter.CodeCryptoBase && code <= adapter.CodeCryptoBase+0xff {
		return TLSAlertStatus(uint8(code - adapter.CodeCryptoBase))
	}
	return ErrInternalError
}

// finish records the end, queues the initiated event if any, ends every
// stream, and queues ConnectionShutdownComplete once the last stream is done.
func (c *Connection) finish(end *connEnd, initiated ConnectionEvent) {
	c.mu.Lock()
	if c.end != nil || c.final {
		c.mu.Unlock()
		return
	}
	c.end = end
	c.state = connEnded
	if initiated != nil {
		c.q.Push(initiated)
	}
	streams := make([]*Stream, 0, len(c.live))
	for s := range c.live {
		streams = append(streams, s)
	}
	ac := c.ac
	c.mu.Unlock()
	c.clearOpeners()
	for _, s := range streams {
		s.connectionEnded(end)
	}
	// Every datagram gets its final state before the connection's final event.
	if ac != nil {
		ac.FinishDatagrams()
	}
	c.mu.Lock()
	c.cancelDatagramsLocked()
	c.mu.Unlock()
	c.maybeFinal()
}

// localStatus is the close status of an app-initiated shutdown.
func (c *Connection) localStatus() error {
	if c.shutAbort {
		return ErrAborted
	}
	return nil
}

// streamFinished is called by a stream once its final event is queued.
func (c *Connection) streamFinished(s *Stream, id uint64, hasID bool) {
	c.mu.Lock()
	delete(c.live, s)
	if hasID && c.byID[id] == s {
		delete(c.byID, id)
	}
	c.mu.Unlock()
	c.maybeFinal()
}

// maybeFinal queues ConnectionShutdownComplete when the connection has ended
// and every stream has queued its own final event.
func (c *Connection) maybeFinal() {
	c.mu.Lock()
	if c.final || c.end == nil || len(c.live) > 0 {
		c.mu.Unlock()
		return
	}
	c.final = true
	ev := &ConnectionShutdownComplete{HandshakeCompleted: c.handshake, AppCloseInProgress: c.closed}
	c.q.PushFinal(ev)
	closed := c.closed
	c.mu.Unlock()
	c.log.Debug("connection shutdown complete")
	if closed {
		c.reg.removeChild(c)
	}
}

// Shutdown is ConnectionShutdown: close the connection with an application
// error code (at most 2^62-1). The peer sees ShutdownInitiatedByPeer (or, before
// the handshake completed, ShutdownInitiatedByTransport with USER_CANCELED: the
// code is replaced by APPLICATION_ERROR, RFC 9000 §10.2.3); this side gets no
// "initiated" event, only ConnectionShutdownComplete after its streams'. During
// a client's handshake that comes at once. Repeated calls are
// no-ops. ShutdownSilent is possible only for a client connection, which owns
// its socket; elsewhere it returns ErrNotSupported.
func (c *Connection) Shutdown(flags ConnectionShutdownFlags, code uint64) error {
	return c.shutdown("Connection.Shutdown", flags, code, false)
}

func (c *Connection) shutdown(op string, flags ConnectionShutdownFlags, code uint64, abort bool) error {
	if code > maxVarint {
		return newErr(op, ErrInvalidParameter, "error code above 2^62-1")
	}
	if flags > ShutdownSilent {
		return newErr(op, ErrInvalidParameter, "unknown flags %s", flags)
	}
	silent := flags&ShutdownSilent != 0
	c.mu.Lock()
	if c.localShut || c.end != nil || c.final {
		c.mu.Unlock()
		return nil
	}
	if silent && c.server {
		c.mu.Unlock()
		return newErr(op, ErrNotSupported, "a silent shutdown needs a connection that owns its socket (client connections only)")
	}
	if c.state == connDeciding {
		c.mu.Unlock()
		return newErr(op, ErrInvalidState, "answer NewConnection (Accept or Reject) first")
	}
	c.localShut, c.shutCode, c.shutAbort = true, code, abort
	state, ac, cancel, reason := c.state, c.ac, c.dialCancel, c.reason
	inTLS := c.tlsWaits > 0
	c.abortWaits()
	close(c.abort)
	c.mu.Unlock()
	c.log.Debug("shutdown", "code", code, "silent", silent)

	switch state {
	case connOpened:
		// Never started: MsQuic closes it silently and reports completion.
		c.finish(&connEnd{byApp: true, code: code, status: c.localStatus()}, nil)
	case connStarting:
		switch {
		case cancel == nil:
		case silent:
			cancel(nil) // abandons the handshake without a word
		case inTLS:
			// The client is frozen in a TLS callback waiting for the app, which
			// the close above ends with alert user_canceled: quic-go sends
			// that CONNECTION_CLOSE itself, with the keys the server expects.
			// Cancelling the dial now could drop the connection first.
		default:
			// quic-go drops a cancelled dial without a close; the adapter then
			// sends CONNECTION_CLOSE (APPLICATION_ERROR) in an Initial packet.
			cancel(adapter.ErrHandshakeClosed)
		}
		if ac != nil {
			if silent {
				ac.CloseSilently()
			} else {
				ac.Close(code, reason) // a server mid-handshake: quic-go closes it once it has the connection
			}
		}
	case connConnected:
		if silent {
			ac.CloseSilently()
		} else {
			ac.Close(code, reason)
		}
	}
	return nil
}

// Close is ConnectionClose. A connection not yet shut down is aborted first
// (error code 0, status ABORTED) and still delivers its final events with
// AppCloseInProgress set. Close does not wait for the consumer of Events.
// Calls on a closed connection return ErrInvalidState.
func (c *Connection) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return newErr("Connection.Close", ErrInvalidState, "connection already closed")
	}
	if c.state == connDeciding {
		c.mu.Unlock()
		return newErr("Connection.Close", ErrInvalidState, "answer NewConnection (Accept or Reject) first")
	}
	c.closed = true
	final, owned := c.final, c.owned
	c.mu.Unlock()
	if !owned {
		return nil
	}
	if final {
		c.reg.removeChild(c)
		return nil
	}
	_ = c.shutdown("Connection.Close", ShutdownNone, 0, true)
	return nil
}

func (c *Connection) shutdownByRegistration(flags ConnectionShutdownFlags, code uint64) {
	c.mu.Lock()
	notStarted := c.state == connOpened && !c.server
	c.mu.Unlock()
	if notStarted {
		return // MsQuic skips clients that were never started
	}
	if c.server && flags&ShutdownSilent != 0 {
		flags = ShutdownNone
	}
	_ = c.shutdown("Registration.Shutdown", flags, code, false)
}

// ---- resumption ----

// SendResumptionFlags is QUIC_SEND_RESUMPTION_FLAGS.
type SendResumptionFlags uint32

// Send resumption flags.
const (
	SendResumptionNone  SendResumptionFlags = 0 // QUIC_SEND_RESUMPTION_FLAG_NONE
	SendResumptionFinal SendResumptionFlags = 1 // QUIC_SEND_RESUMPTION_FLAG_FINAL: no more tickets
)

// SendResumptionTicket is ConnectionSendResumptionTicket (server): appData (at
// most 1000 bytes) goes into the session ticket and comes back in Resumed when a
// client resumes with it. It needs ServerResumptionLevel ResumeOnly or more.
//
// quic-go issues exactly one ticket per connection, automatically, when the
// handshake completes, and the app cannot make it send another. So call
// SendResumptionTicket on the NewConnection's connection before Accept: the
// handshake cannot complete before, so the data is sure to go into that ticket
// (it is used only if the accepting configuration enables resumption). Later
// calls work only while the ticket is not issued yet, which is a race with the
// handshake; once it is issued the call returns ErrNotSupported.
// SendResumptionFinal changes nothing: no ticket follows the first.
func (c *Connection) SendResumptionTicket(flags SendResumptionFlags, appData []byte) error {
	const op = "Connection.SendResumptionTicket"
	switch {
	case !c.server:
		return newErr(op, ErrInvalidParameter, "server connections only")
	case flags > SendResumptionFinal:
		return newErr(op, ErrInvalidParameter, "flags %d", flags)
	case len(appData) > 1000:
		return newErr(op, ErrInvalidParameter, "app data above 1000 bytes")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return newErr(op, ErrInvalidState, "connection closed")
	case c.end != nil:
		return newErr(op, ErrInvalidState, "connection shut down")
	case c.state == connDeciding:
		// Before Accept: kept for the ticket, whatever configuration comes.
		c.ticketData = slices.Clone(appData)
		return nil
	case c.res.resumption == ServerNoResume:
		return newErr(op, ErrInvalidState, "resumption is disabled (Settings.ServerResumptionLevel)")
	case c.ticketIssued:
		return newErr(op, ErrNotSupported, "quic-go issued its only ticket when the handshake completed; call SendResumptionTicket before Connected")
	}
	c.ticketData = slices.Clone(appData)
	return nil
}

// SetResumptionTicket is QUIC_PARAM_CONN_RESUMPTION_TICKET (client, before
// Start): resume the session of a ticket from ResumptionTicketReceived.
func (c *Connection) SetResumptionTicket(ticket []byte) error {
	const op = "Connection.SetResumptionTicket"
	if _, err := adapter.ParseTicket(ticket); err != nil {
		return wrapErr(op, ErrInvalidParameter, err, "not a ticket from ResumptionTicketReceived")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.beforeStartLocked(op); err != nil {
		return err
	}
	c.ticket = slices.Clone(ticket)
	return nil
}

// ticketReceived runs on quic-go's goroutine when the server sends a ticket:
// MsQuic reports it after CONNECTED.
func (c *Connection) ticketReceived(blob []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.final:
	case c.handshake: // Connected is queued
		c.q.Push(&ResumptionTicketReceived{ResumptionTicket: blob})
	default:
		c.ticketsEarly = append(c.ticketsEarly, blob)
	}
}

// ---- parameters ----

// SetCloseReason is QUIC_PARAM_CONN_CLOSE_REASON_PHRASE: the reason phrase sent
// with this side's CONNECTION_CLOSE (at most 512 bytes).
func (c *Connection) SetCloseReason(reason string) error {
	if len(reason) > 512 {
		return newErr("Connection.SetCloseReason", ErrInvalidParameter, "longer than 512 bytes")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return newErr("Connection.SetCloseReason", ErrInvalidState, "connection closed")
	}
	c.reason = reason
	return nil
}

// Settings is QUIC_PARAM_CONN_SETTINGS (get).
func (c *Connection) Settings() Settings {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.override != nil {
		return *c.override
	}
	return c.cfg.settings
}

// SetSettings is QUIC_PARAM_CONN_SETTINGS (set). Before Start it replaces the
// configuration's settings for this connection. After start quic-go cannot
// change transport parameters, so a change to any of them returns
// ErrNotSupported; quicx's own settings (SendBufferingEnabled,
// StreamMultiReceiveEnabled) apply to streams opened afterwards.
func (c *Connection) SetSettings(s *Settings) error {
	const op = "Connection.SetSettings"
	if s == nil {
		return newErr(op, ErrInvalidParameter, "nil settings")
	}
	res, err := s.resolve(op)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return newErr(op, ErrInvalidState, "connection closed")
	}
	if c.state == connOpened {
		cp := *s
		c.override = &cp
		c.res = res
		return nil
	}
	if !res.transport.Equal(c.res.transport) {
		return newErr(op, ErrNotSupported, "quic-go cannot change transport parameters after the connection started")
	}
	cp := *s
	c.override = &cp
	c.res.sendBuffering, c.res.multiReceive = res.sendBuffering, res.multiReceive
	return nil
}

func (c *Connection) adapterConn(op string) (*adapter.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, newErr(op, ErrInvalidState, "connection closed")
	}
	if c.ac == nil {
		return nil, newErr(op, ErrInvalidState, "connection not started")
	}
	return c.ac, nil
}

// LocalAddr is QUIC_PARAM_CONN_LOCAL_ADDRESS (get).
func (c *Connection) LocalAddr() (netip.AddrPort, error) {
	ac, err := c.adapterConn("Connection.LocalAddr")
	if err != nil {
		return netip.AddrPort{}, err
	}
	return ac.LocalAddr(), nil
}

// RemoteAddr is QUIC_PARAM_CONN_REMOTE_ADDRESS (get).
func (c *Connection) RemoteAddr() (netip.AddrPort, error) {
	c.mu.Lock()
	if c.ac == nil && c.remoteSet.IsValid() && !c.closed {
		defer c.mu.Unlock()
		return c.remoteSet, nil
	}
	c.mu.Unlock()
	ac, err := c.adapterConn("Connection.RemoteAddr")
	if err != nil {
		return netip.AddrPort{}, err
	}
	return ac.RemoteAddr(), nil
}

// QUICVersion is QUIC_PARAM_CONN_QUIC_VERSION: 0 before the handshake.
func (c *Connection) QUICVersion() (uint32, error) {
	ac, err := c.adapterConn("Connection.QUICVersion")
	if err != nil {
		if StatusOf(err) == ErrInvalidState && !c.isClosed() {
			return 0, nil
		}
		return 0, err
	}
	st, _ := ac.State()
	return st.Version, nil
}

func (c *Connection) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// NegotiatedALPN is QUIC_PARAM_TLS_NEGOTIATED_ALPN.
func (c *Connection) NegotiatedALPN() (string, error) {
	st, err := c.TLSState()
	if err != nil {
		return "", err
	}
	return st.NegotiatedProtocol, nil
}

// TLSState is QUIC_PARAM_TLS_HANDSHAKE_INFO, as crypto/tls reports it.
func (c *Connection) TLSState() (tls.ConnectionState, error) {
	ac, err := c.adapterConn("Connection.TLSState")
	if err != nil {
		return tls.ConnectionState{}, err
	}
	st, ok := ac.State()
	if !ok || !st.HandshakeComplete {
		return tls.ConnectionState{}, newErr("Connection.TLSState", ErrInvalidState, "handshake not complete")
	}
	return st.TLS, nil
}

// ConnectionStats is the part of QUIC_STATISTICS_V2 quic-go reports.
type ConnectionStats struct {
	MinRTT, LatestRTT, SmoothedRTT, RTTVariance int64 // microseconds, as MsQuic reports RTTs
	CongestionWindow                            uint64
	SendTotalBytes, SendTotalPackets            uint64
	RecvTotalBytes, RecvTotalPackets            uint64
	SendSuspectedLostBytes, SendSuspectedLost   uint64
}

// Stats is QUIC_PARAM_CONN_STATISTICS_V2 (the fields quic-go counts).
func (c *Connection) Stats() (ConnectionStats, error) {
	ac, err := c.adapterConn("Connection.Stats")
	if err != nil {
		return ConnectionStats{}, err
	}
	s, ok := ac.Stats()
	if !ok {
		return ConnectionStats{}, newErr("Connection.Stats", ErrInvalidState, "connection not established")
	}
	return ConnectionStats{
		MinRTT: s.MinRTT.Microseconds(), LatestRTT: s.LatestRTT.Microseconds(),
		SmoothedRTT: s.SmoothedRTT.Microseconds(), RTTVariance: s.RTTVariance.Microseconds(),
		CongestionWindow: s.CongestionWindow,
		SendTotalBytes:   s.BytesSent, SendTotalPackets: s.PacketsSent,
		RecvTotalBytes: s.BytesReceived, RecvTotalPackets: s.PacketsReceived,
		SendSuspectedLostBytes: s.BytesLost, SendSuspectedLost: s.PacketsLost,
	}, nil
}

// ---- recorder events (adapter.RecorderHandler); quic-go's goroutines, never block ----

// PeerStreamLimits implements adapter.RecorderHandler.
func (c *Connection) PeerStreamLimits(bidi, uni uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peerLimit = [2]uint64{bidi, uni}
	c.knownLimits = true
	// MsQuic raises the initial STREAMS_AVAILABLE on the client only: the server
	// processes the client's parameters before the app owns the connection.
	if !c.server && (bidi > 0 || uni > 0) && !c.final {
		c.q.Push(c.streamsAvailableLocked())
	}
}

// MaxStreams implements adapter.RecorderHandler.
func (c *Connection) MaxStreams(bidi bool, max uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 1
	if bidi {
		i = 0
	}
	if max <= c.peerLimit[i] || c.final {
		return
	}
	c.peerLimit[i] = max
	c.q.Push(c.streamsAvailableLocked())
}

func (c *Connection) streamsAvailableLocked() *StreamsAvailable {
	avail := func(i int) uint16 {
		used := c.openers[i].next.Load()
		if c.peerLimit[i] <= used {
			return 0
		}
		return uint16(min(c.peerLimit[i]-used, 0xFFFF))
	}
	return &StreamsAvailable{BidirectionalCount: avail(0), UnidirectionalCount: avail(1)}
}

// StreamsBlocked implements adapter.RecorderHandler.
func (c *Connection) StreamsBlocked(bidi bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.final {
		c.q.Push(&PeerNeedsStreams{Bidirectional: bidi})
	}
}

// StopSending implements adapter.RecorderHandler.
func (c *Connection) StopSending(id, code uint64) {
	c.mu.Lock()
	s := c.byID[id]
	c.mu.Unlock()
	if s != nil {
		s.peerStopSending(code)
	}
}

// StreamAcked implements adapter.RecorderHandler.
func (c *Connection) StreamAcked(id uint64, acked uint64, finAcked bool) {
	c.mu.Lock()
	s := c.byID[id]
	c.mu.Unlock()
	if s != nil {
		s.acked(acked, finAcked)
	}
}

// StreamReadable implements adapter.RecorderHandler: data, the FIN or a reset
// arrived for a stream whose reader stopped with nothing to read.
func (c *Connection) StreamReadable(id uint64) {
	c.mu.Lock()
	s := c.byID[id]
	c.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.rcv.kickLocked()
		s.mu.Unlock()
	}
}

// StreamDataLost implements adapter.RecorderHandler.
func (c *Connection) StreamDataLost(id uint64) {
	c.mu.Lock()
	s := c.byID[id]
	c.mu.Unlock()
	if s != nil {
		s.dataLost()
	}
}

// InFlightMaxGrew implements adapter.RecorderHandler: MsQuic's ideal send
// buffer size follows the most bytes ever in flight, in steps of 1.5× from
// DefaultIdealSendBufferSize, and only grows. Each step is indicated to every
// stream that still sends.
func (c *Connection) InFlightMaxGrew(inFlight uint64) {
	ideal := nextIdealBytes(inFlight)
	c.mu.Lock()
	if ideal <= max(c.idealBytes, DefaultIdealSendBufferSize) {
		c.mu.Unlock()
		return
	}
	c.idealBytes = ideal
	c.mu.Unlock()
	c.forEachLive(func(s *Stream) { s.idealSendBuffer(ideal) })
}

// forEachLive runs f on every started stream not yet finished.
func (c *Connection) forEachLive(f func(*Stream)) {
	c.mu.Lock()
	streams := make([]*Stream, 0, len(c.live))
	for s := range c.live {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	for _, s := range streams {
		f(s)
	}
}

// maxIdealSendBufferSize caps the ideal send buffer size (MsQuic's
// QUIC_MAX_IDEAL_SEND_BUFFER_SIZE).
const maxIdealSendBufferSize = 0x8000000

// nextIdealBytes is the first step above n: DefaultIdealSendBufferSize grown
// by half at a time, capped at maxIdealSendBufferSize.
func nextIdealBytes(n uint64) uint64 {
	t := uint64(DefaultIdealSendBufferSize)
	for t <= n {
		if t+t/2 > maxIdealSendBufferSize {
			return maxIdealSendBufferSize
		}
		t += t / 2
	}
	return t
}

// PeerAddressChanged implements adapter.RecorderHandler.
func (c *Connection) PeerAddressChanged(addr netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.final && c.handshake {
		c.q.Push(&PeerAddressChanged{Address: addr})
	}
}
