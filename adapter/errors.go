package adapter

import (
	"context"
	"errors"
	"syscall"

	"github.com/quic-go/quic-go"
)

// CloseKind says why a connection ended.
type CloseKind int

// Close kinds.
const (
	CloseApplication        CloseKind = iota + 1 // an application close (CONNECTION_CLOSE 0x1d)
	CloseTransport                               // a transport error, including TLS alerts (0x100+alert)
	CloseIdle                                    // the idle timer fired
	CloseHandshakeTimeout                        // the handshake did not finish in time
	CloseStatelessReset                          // the peer sent a stateless reset
	CloseVersionNegotiation                      // no common QUIC version
	CloseUnreachable                             // the network reported the peer unreachable
	CloseCanceled                                // quicx abandoned the handshake (dial cancelled)
	CloseTransportGone                           // the UDP binding was closed under the connection
	CloseOther                                   // anything else (a socket error, a bug)
)

func (k CloseKind) String() string {
	switch k {
	case CloseApplication:
		return "application"
	case CloseTransport:
		return "transport"
	case CloseIdle:
		return "idle"
	case CloseHandshakeTimeout:
		return "handshake-timeout"
	case CloseStatelessReset:
		return "stateless-reset"
	case CloseVersionNegotiation:
		return "version-negotiation"
	case CloseUnreachable:
		return "unreachable"
	case CloseCanceled:
		return "canceled"
	case CloseTransportGone:
		return "transport-gone"
	}
	return "other"
}

// CloseInfo describes how a connection ended.
type CloseInfo struct {
	Kind   CloseKind
	Remote bool   // the peer sent the close (application and transport kinds)
	Code   uint64 // the wire error code (application and transport kinds)
	Reason string // the reason phrase, if any
	Err    error  // quic-go's error, for logs
}

// Transport error codes quicx needs by name (RFC 9000 §20.1).
const (
	CodeNoError           uint64 = 0x0
	CodeInternalError     uint64 = 0x1
	CodeConnectionRefused uint64 = 0x2
	CodeProtocolViolation uint64 = 0xa
	CodeApplicationError  uint64 = 0xc
	CodeCryptoBase        uint64 = 0x100
)

// Classify turns an error from quic-go (a Dial result, a context cause, a failed
// stream operation) into a CloseInfo.
func Classify(err error) CloseInfo {
	ci := CloseInfo{Kind: CloseOther, Err: err}
	var (
		appErr   *quic.ApplicationError
		trErr    *quic.TransportError
		idleErr  *quic.IdleTimeoutError
		hsErr    *quic.HandshakeTimeoutError
		resetErr *quic.StatelessResetError
		vnErr    *quic.VersionNegotiationError
	)
	switch {
	case err == nil:
	case errors.As(err, &appErr):
		ci.Kind, ci.Remote, ci.Code, ci.Reason = CloseApplication, appErr.Remote, uint64(appErr.ErrorCode), appErr.ErrorMessage
	case errors.As(err, &trErr):
		ci.Kind, ci.Remote, ci.Code, ci.Reason = CloseTransport, trErr.Remote, uint64(trErr.ErrorCode), trErr.ErrorMessage
	case errors.As(err, &idleErr):
		ci.Kind = CloseIdle
	case errors.As(err, &hsErr):
		ci.Kind = CloseHandshakeTimeout
	case errors.As(err, &resetErr):
		ci.Kind, ci.Remote = CloseStatelessReset, true
	case errors.As(err, &vnErr):
		ci.Kind = CloseVersionNegotiation
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		ci.Kind = CloseUnreachable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		ci.Kind = CloseCanceled
	case errors.Is(err, quic.ErrTransportClosed):
		ci.Kind = CloseTransportGone
	}
	return ci
}

// StreamErr reports a stream cancellation: RESET_STREAM / STOP_SENDING from
// the peer (Remote) or by us.
type StreamErr struct {
	Code   uint64
	Remote bool
}

func (e *StreamErr) Error() string {
	if e.Remote {
		return "stream canceled by peer"
	}
	return "stream canceled locally"
}

// streamErrOf extracts a stream cancellation from a quic-go error.
func streamErrOf(err error) (*StreamErr, bool) {
	var se *quic.StreamError
	if errors.As(err, &se) {
		return &StreamErr{Code: uint64(se.ErrorCode), Remote: se.Remote}, true
	}
	return nil, false
}
