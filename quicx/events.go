package quicx

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"sync/atomic"
)

// ListenerEvent is an event on a Listener's channel: *NewConnection or
// *ListenerStopComplete. The set is closed: only quicx defines listener events.
type ListenerEvent interface {
	fmt.Stringer
	listenerEvent()
}

// ConnectionEvent is an event on a Connection's channel. The set is closed: only
// quicx defines connection events. See docs/events.md for the full table.
type ConnectionEvent interface {
	fmt.Stringer
	connectionEvent()
}

// StreamEvent is an event on a Stream's channel. The set is closed: only quicx
// defines stream events.
type StreamEvent interface {
	fmt.Stringer
	streamEvent()
}

// ---- Listener events ----

// NewConnectionInfo is QUIC_NEW_CONNECTION_INFO: what the client's first flight
// says about the connection it wants. The raw ClientHello (CryptoBuffer) is not
// available from crypto/tls.
type NewConnectionInfo struct {
	QUICVersion    uint32         // the QUIC version in use (1 or 0x6b3343cf for v2)
	LocalAddress   netip.AddrPort // the server address the client reached
	RemoteAddress  netip.AddrPort // the client's address
	ServerName     string         // SNI; empty if the client sent none
	ClientALPNs    []string       // the client's ALPN list, in its order of preference
	NegotiatedALPN string         // the ALPN the listener matched
}

// NewConnection is QUIC_LISTENER_EVENT_NEW_CONNECTION. The connection exists but
// its handshake waits for the decision: call Accept with a loaded configuration
// (MsQuic's ConnectionSetConfiguration) or Reject. Until then the connection is
// frozen; if neither is called within the listener's handshake idle timeout the
// connection is rejected. Once accepted, read Connection.Events().
type NewConnection struct {
	Info       NewConnectionInfo
	Connection *Connection
	answer     NewConnectionAnswer
}

// NewConnectionAnswer receives the decision on a NewConnection event. quicx's
// listener implements it; fakes (see quicxtest) implement it to observe decisions.
type NewConnectionAnswer interface {
	AcceptConnection(cfg *Configuration) error
	RejectConnection(reason error)
}

// NewNewConnectionEvent builds a NewConnection event whose Accept and Reject call
// answer. quicx builds its own events; this is for fakes and replayers.
func NewNewConnectionEvent(info NewConnectionInfo, conn *Connection, answer NewConnectionAnswer) *NewConnection {
	return &NewConnection{Info: info, Connection: conn, answer: answer}
}

// Accept lets the handshake continue with cfg's credentials, ALPNs and
// settings. It fails with ErrInvalidParameter if cfg has no credential loaded
// and ErrInvalidState if the decision was already made or its deadline passed.
func (e *NewConnection) Accept(cfg *Configuration) error {
	if e.answer == nil {
		return newErr("NewConnection.Accept", ErrInvalidState, "event has no listener behind it")
	}
	return e.answer.AcceptConnection(cfg)
}

// Reject refuses the connection. The client sees a handshake failure (see
// docs/limitations.md for the wire code). reason is kept for logs; it may be nil.
func (e *NewConnection) Reject(reason error) {
	if e.answer != nil {
		e.answer.RejectConnection(reason)
	}
}

func (e *NewConnection) String() string {
	return fmt.Sprintf("NewConnection{remote=%s sni=%q alpn=%q}", e.Info.RemoteAddress, e.Info.ServerName, e.Info.NegotiatedALPN)
}

// ListenerStopComplete is QUIC_LISTENER_EVENT_STOP_COMPLETE, the listener's final
// event for one start/stop cycle; the channel closes after it only when the
// listener is closed (a stopped listener may be started again, see Listener.Events).
type ListenerStopComplete struct {
	AppCloseInProgress bool // Listener.Close started the stop
}

func (e *ListenerStopComplete) String() string {
	return fmt.Sprintf("ListenerStopComplete{appClose=%v}", e.AppCloseInProgress)
}

func (*NewConnection) listenerEvent()        {}
func (*ListenerStopComplete) listenerEvent() {}

// ---- Connection events ----

// Connected is QUIC_CONNECTION_EVENT_CONNECTED: the handshake completed.
type Connected struct {
	SessionResumed bool
	NegotiatedALPN string
}

func (e *Connected) String() string {
	return fmt.Sprintf("Connected{resumed=%v alpn=%q}", e.SessionResumed, e.NegotiatedALPN)
}

// ShutdownInitiatedByTransport is QUIC_CONNECTION_EVENT_SHUTDOWN_INITIATED_BY_TRANSPORT:
// the transport closed the connection (handshake failure, idle timeout, peer
// transport error, stateless reset, unreachable peer, or a peer application
// close before the handshake completed).
type ShutdownInitiatedByTransport struct {
	Status    error  // a Status, never nil
	ErrorCode uint64 // the QUIC wire error code
}

func (e *ShutdownInitiatedByTransport) String() string {
	return fmt.Sprintf("ShutdownInitiatedByTransport{status=%s code=%#x}", statusName(e.Status), e.ErrorCode)
}

// ShutdownInitiatedByPeer is QUIC_CONNECTION_EVENT_SHUTDOWN_INITIATED_BY_PEER: the
// peer application closed the connection with ErrorCode.
type ShutdownInitiatedByPeer struct {
	ErrorCode uint64
}

func (e *ShutdownInitiatedByPeer) String() string {
	return fmt.Sprintf("ShutdownInitiatedByPeer{code=%#x}", e.ErrorCode)
}

// ConnectionShutdownComplete is QUIC_CONNECTION_EVENT_SHUTDOWN_COMPLETE, the
// connection's final event. Every stream's StreamShutdownComplete is queued
// before it; the channel closes right after it.
type ConnectionShutdownComplete struct {
	HandshakeCompleted bool
	// PeerAcknowledgedShutdown is always false: quic-go does not report whether the
	// peer acknowledged its CONNECTION_CLOSE.
	PeerAcknowledgedShutdown bool
	AppCloseInProgress       bool // Connection.Close was called before shutdown completed
}

func (e *ConnectionShutdownComplete) String() string {
	return fmt.Sprintf("ConnectionShutdownComplete{handshake=%v appClose=%v}", e.HandshakeCompleted, e.AppCloseInProgress)
}

// LocalAddressChanged is QUIC_CONNECTION_EVENT_LOCAL_ADDRESS_CHANGED.
type LocalAddressChanged struct{ Address netip.AddrPort }

func (e *LocalAddressChanged) String() string {
	return fmt.Sprintf("LocalAddressChanged{%s}", e.Address)
}

// PeerAddressChanged is QUIC_CONNECTION_EVENT_PEER_ADDRESS_CHANGED.
type PeerAddressChanged struct{ Address netip.AddrPort }

func (e *PeerAddressChanged) String() string { return fmt.Sprintf("PeerAddressChanged{%s}", e.Address) }

// PeerStreamStarted is QUIC_CONNECTION_EVENT_PEER_STREAM_STARTED: the peer opened
// a stream. It is already started (no StartComplete); read Stream.Events().
type PeerStreamStarted struct {
	Stream *Stream
	Flags  StreamOpenFlags
}

func (e *PeerStreamStarted) String() string {
	id := "?"
	if e.Stream != nil {
		if v, err := e.Stream.ID(); err == nil {
			id = fmt.Sprint(v)
		}
	}
	return fmt.Sprintf("PeerStreamStarted{id=%s flags=%s}", id, e.Flags)
}

// StreamsAvailable is QUIC_CONNECTION_EVENT_STREAMS_AVAILABLE: how many streams
// of each kind the app may open now.
type StreamsAvailable struct {
	BidirectionalCount  uint16
	UnidirectionalCount uint16
}

func (e *StreamsAvailable) String() string {
	return fmt.Sprintf("StreamsAvailable{bidi=%d uni=%d}", e.BidirectionalCount, e.UnidirectionalCount)
}

// PeerNeedsStreams is QUIC_CONNECTION_EVENT_PEER_NEEDS_STREAMS: the peer is
// blocked by the stream count this side allows.
type PeerNeedsStreams struct{ Bidirectional bool }

func (e *PeerNeedsStreams) String() string {
	return fmt.Sprintf("PeerNeedsStreams{bidi=%v}", e.Bidirectional)
}

// DatagramStateChanged is QUIC_CONNECTION_EVENT_DATAGRAM_STATE_CHANGED.
type DatagramStateChanged struct {
	SendEnabled   bool
	MaxSendLength uint16
}

func (e *DatagramStateChanged) String() string {
	return fmt.Sprintf("DatagramStateChanged{send=%v max=%d}", e.SendEnabled, e.MaxSendLength)
}

// DatagramReceived is QUIC_CONNECTION_EVENT_DATAGRAM_RECEIVED. Buffer belongs to
// the app.
type DatagramReceived struct {
	Buffer []byte
	Flags  ReceiveFlags
}

func (e *DatagramReceived) String() string {
	return fmt.Sprintf("DatagramReceived{len=%d flags=%s}", len(e.Buffer), e.Flags)
}

// DatagramSendStateChanged is QUIC_CONNECTION_EVENT_DATAGRAM_SEND_STATE_CHANGED.
// Context is the value given to SendDatagram.
type DatagramSendStateChanged struct {
	Context any
	State   DatagramSendState
}

func (e *DatagramSendStateChanged) String() string {
	return fmt.Sprintf("DatagramSendStateChanged{%s ctx=%v}", e.State, e.Context)
}

// Resumed is QUIC_CONNECTION_EVENT_RESUMED (server): the client resumed a session;
// ResumptionState is the app data the server put into the ticket.
type Resumed struct{ ResumptionState []byte }

func (e *Resumed) String() string {
	return fmt.Sprintf("Resumed{state=%d bytes}", len(e.ResumptionState))
}

// ResumptionTicketReceived is QUIC_CONNECTION_EVENT_RESUMPTION_TICKET_RECEIVED
// (client): a ticket to store and pass to Connection.SetResumptionTicket later.
type ResumptionTicketReceived struct{ ResumptionTicket []byte }

func (e *ResumptionTicketReceived) String() string {
	return fmt.Sprintf("ResumptionTicketReceived{%d bytes}", len(e.ResumptionTicket))
}

// PeerCertificateReceived is QUIC_CONNECTION_EVENT_PEER_CERTIFICATE_RECEIVED,
// raised with CredentialIndicateCertificateReceived. The handshake waits for
// Complete; unanswered, the certificate is rejected at the handshake idle timeout.
type PeerCertificateReceived struct {
	Certificate        *x509.Certificate   // the peer's leaf certificate
	Chain              []*x509.Certificate // the leaf and the intermediates the peer sent
	DeferredErrorFlags uint32              // always 0: a platform (Schannel) concept
	DeferredStatus     error               // why validation failed when it was deferred; nil if it passed or was not run
	answer             func(accept bool)
}

// NewPeerCertificateReceivedEvent builds a PeerCertificateReceived event whose
// Complete calls answer; for fakes and replayers.
func NewPeerCertificateReceivedEvent(leaf *x509.Certificate, chain []*x509.Certificate, deferred error, answer func(accept bool)) *PeerCertificateReceived {
	return &PeerCertificateReceived{Certificate: leaf, Chain: chain, DeferredStatus: deferred, answer: answer}
}

// Complete is ConnectionCertificateValidationComplete: accept or reject the
// certificate. Only the first call counts.
func (e *PeerCertificateReceived) Complete(accept bool) {
	if e.answer != nil {
		e.answer(accept)
	}
}

func (e *PeerCertificateReceived) String() string {
	sub := ""
	if e.Certificate != nil {
		sub = e.Certificate.Subject.String()
	}
	return fmt.Sprintf("PeerCertificateReceived{subject=%q deferred=%s}", sub, statusName(e.DeferredStatus))
}

// ReliableResetNegotiated is QUIC_CONNECTION_EVENT_RELIABLE_RESET_NEGOTIATED,
// raised before Connected when Settings.ReliableResetEnabled is set: whether
// both sides support RESET_STREAM_AT (Stream.SetReliableOffset).
type ReliableResetNegotiated struct{ IsNegotiated bool }

func (e *ReliableResetNegotiated) String() string {
	return fmt.Sprintf("ReliableResetNegotiated{%v}", e.IsNegotiated)
}

func (*ReliableResetNegotiated) connectionEvent()      {}
func (*Connected) connectionEvent()                    {}
func (*ShutdownInitiatedByTransport) connectionEvent() {}
func (*ShutdownInitiatedByPeer) connectionEvent()      {}
func (*ConnectionShutdownComplete) connectionEvent()   {}
func (*LocalAddressChanged) connectionEvent()          {}
func (*PeerAddressChanged) connectionEvent()           {}
func (*PeerStreamStarted) connectionEvent()            {}
func (*StreamsAvailable) connectionEvent()             {}
func (*PeerNeedsStreams) connectionEvent()             {}
func (*DatagramStateChanged) connectionEvent()         {}
func (*DatagramReceived) connectionEvent()             {}
func (*DatagramSendStateChanged) connectionEvent()     {}
func (*Resumed) connectionEvent()                      {}
func (*ResumptionTicketReceived) connectionEvent()     {}
func (*PeerCertificateReceived) connectionEvent()      {}

// ---- Stream events ----

// StartComplete is QUIC_STREAM_EVENT_START_COMPLETE: the answer to Start (or to
// a send with SendStart), exactly once per start.
type StartComplete struct {
	Status       error  // nil on success; ErrStreamLimitReached with StreamStartFailBlocked, ErrAborted …
	ID           uint64 // the stream ID, valid when Status is nil
	PeerAccepted bool   // the peer's stream limit covers this stream
}

func (e *StartComplete) String() string {
	return fmt.Sprintf("StartComplete{status=%s id=%d peerAccepted=%v}", statusName(e.Status), e.ID, e.PeerAccepted)
}

// Receive is QUIC_STREAM_EVENT_RECEIVE: contiguous data from AbsoluteOffset. The
// event and its buffers belong to quicx and stay valid until the receive is
// completed.
//
// Complete(n) says how many bytes the app consumed: all of them, some, or none.
// It may be called at once or later from any goroutine — Go's form of
// QUIC_STATUS_PENDING. Consuming fewer bytes than were indicated pauses further
// Receive events until Stream.SetReceiveEnabled(true); the rest is indicated again.
// Without multi-receive mode, the next Receive waits for this one's Complete.
type Receive struct {
	AbsoluteOffset uint64
	Buffers        [][]byte // zero buffers with ReceiveFin: the peer's FIN alone
	Flags          ReceiveFlags
	completer      func(n uint64)
	rcv            *recvSide // completes a stream's reused Receive (no closure needed)
	bufs           [2][]byte // Buffers' backing for a stream's reused Receive
	done           atomic.Bool
}

// NewReceiveEvent builds a Receive event whose Complete calls complete (at most
// once); for fakes and replayers.
func NewReceiveEvent(offset uint64, buffers [][]byte, flags ReceiveFlags, complete func(n uint64)) *Receive {
	return &Receive{AbsoluteOffset: offset, Buffers: buffers, Flags: flags, completer: complete}
}

// TotalLength is TotalBufferLength: the bytes in Buffers.
func (e *Receive) TotalLength() uint64 {
	var n int
	for _, b := range e.Buffers {
		n += len(b)
	}
	return uint64(n)
}

// Complete is StreamReceiveComplete for this receive: n bytes (≤ TotalLength)
// were consumed. Calls after the first are ignored; a larger n is clamped.
// After Complete the event and its buffers belong to quicx again, which reuses
// them for a later Receive on the same stream: do not keep them.
func (e *Receive) Complete(n uint64) {
	if !e.done.CompareAndSwap(false, true) {
		return
	}
	switch {
	case e.rcv != nil:
		e.rcv.complete(e, min(n, e.TotalLength()))
	case e.completer != nil:
		e.completer(min(n, e.TotalLength()))
	}
}

func (e *Receive) String() string {
	return fmt.Sprintf("Receive{off=%d len=%d flags=%s}", e.AbsoluteOffset, e.TotalLength(), e.Flags)
}

// SendComplete is QUIC_STREAM_EVENT_SEND_COMPLETE: quicx no longer needs the
// buffers of the send that carried Context. It does not mean the peer got them.
type SendComplete struct {
	Canceled bool
	Context  any
}

func (e *SendComplete) String() string {
	return fmt.Sprintf("SendComplete{canceled=%v ctx=%v}", e.Canceled, e.Context)
}

// PeerSendShutdown is QUIC_STREAM_EVENT_PEER_SEND_SHUTDOWN: the peer's FIN, after
// the app consumed all its data.
type PeerSendShutdown struct{}

func (*PeerSendShutdown) String() string { return "PeerSendShutdown" }

// PeerSendAborted is QUIC_STREAM_EVENT_PEER_SEND_ABORTED: the peer reset its send
// direction (RESET_STREAM); unread data is discarded.
type PeerSendAborted struct{ ErrorCode uint64 }

func (e *PeerSendAborted) String() string {
	return fmt.Sprintf("PeerSendAborted{code=%#x}", e.ErrorCode)
}

// PeerReceiveAborted is QUIC_STREAM_EVENT_PEER_RECEIVE_ABORTED: the peer asked us
// to stop sending (STOP_SENDING); the send direction is aborted in response.
type PeerReceiveAborted struct{ ErrorCode uint64 }

func (e *PeerReceiveAborted) String() string {
	return fmt.Sprintf("PeerReceiveAborted{code=%#x}", e.ErrorCode)
}

// SendShutdownComplete is QUIC_STREAM_EVENT_SEND_SHUTDOWN_COMPLETE: the send
// direction is finished, gracefully (FIN and all data acknowledged) or not.
type SendShutdownComplete struct{ Graceful bool }

func (e *SendShutdownComplete) String() string {
	return fmt.Sprintf("SendShutdownComplete{graceful=%v}", e.Graceful)
}

// StreamShutdownComplete is QUIC_STREAM_EVENT_SHUTDOWN_COMPLETE, the stream's final
// event; the channel closes right after it.
type StreamShutdownComplete struct {
	ConnectionShutdown       bool   // the connection's shutdown ended the stream
	AppCloseInProgress       bool   // Stream.Close was called before the stream finished
	ConnectionShutdownByApp  bool   // the local app shut the connection down
	ConnectionClosedRemotely bool   // the peer closed the connection
	ConnectionErrorCode      uint64 // the connection's close code, with ConnectionShutdown
	ConnectionCloseStatus    error  // the connection's close status, with ConnectionShutdown
}

func (e *StreamShutdownComplete) String() string {
	if !e.ConnectionShutdown {
		return fmt.Sprintf("StreamShutdownComplete{appClose=%v}", e.AppCloseInProgress)
	}
	return fmt.Sprintf("StreamShutdownComplete{conn byApp=%v remote=%v code=%#x status=%s appClose=%v}",
		e.ConnectionShutdownByApp, e.ConnectionClosedRemotely, e.ConnectionErrorCode, statusName(e.ConnectionCloseStatus), e.AppCloseInProgress)
}

// IdealSendBufferSize is QUIC_STREAM_EVENT_IDEAL_SEND_BUFFER_SIZE: how many bytes
// to keep queued to fill the path.
type IdealSendBufferSize struct{ ByteCount uint64 }

func (e *IdealSendBufferSize) String() string {
	return fmt.Sprintf("IdealSendBufferSize{%d}", e.ByteCount)
}

// PeerAccepted is QUIC_STREAM_EVENT_PEER_ACCEPTED: the peer's stream limit now
// covers a stream whose StartComplete said PeerAccepted=false.
type PeerAccepted struct{}

func (*PeerAccepted) String() string { return "PeerAccepted" }

// CancelOnLoss is QUIC_STREAM_EVENT_CANCEL_ON_LOSS: a packet carrying data of a
// stream in cancel-on-loss mode was lost, and the stream's send direction was
// aborted with ErrorCode (chosen beforehand with Stream.SetCancelOnLossCode,
// because a channel cannot answer inside the loss detection).
type CancelOnLoss struct{ ErrorCode uint64 }

func (e *CancelOnLoss) String() string { return fmt.Sprintf("CancelOnLoss{code=%#x}", e.ErrorCode) }

// ReceiveBufferNeeded is QUIC_STREAM_EVENT_RECEIVE_BUFFER_NEEDED: a stream in
// app-owned buffer mode has data waiting and no buffer to put it in.
type ReceiveBufferNeeded struct{ BufferLengthNeeded uint64 }

func (e *ReceiveBufferNeeded) String() string {
	return fmt.Sprintf("ReceiveBufferNeeded{%d}", e.BufferLengthNeeded)
}

func (*StartComplete) streamEvent()          {}
func (*Receive) streamEvent()                {}
func (*SendComplete) streamEvent()           {}
func (*PeerSendShutdown) streamEvent()       {}
func (*PeerSendAborted) streamEvent()        {}
func (*PeerReceiveAborted) streamEvent()     {}
func (*SendShutdownComplete) streamEvent()   {}
func (*StreamShutdownComplete) streamEvent() {}
func (*IdealSendBufferSize) streamEvent()    {}
func (*PeerAccepted) streamEvent()           {}
func (*CancelOnLoss) streamEvent()           {}
func (*ReceiveBufferNeeded) streamEvent()    {}

// statusName renders an error for event strings: SUCCESS for nil, the status
// name for quicx errors.
func statusName(err error) string {
	if err == nil {
		return "SUCCESS"
	}
	return StatusOf(err).Name()
}
