package quicx

import (
	"errors"
	"fmt"
	"strings"
)

// Status is an MsQuic QUIC_STATUS value, numbered as MsQuic numbers it on Linux.
//
// A Status other than StatusSuccess is an error, so the constants below serve as
// sentinels for errors.Is:
//
//	if errors.Is(err, quicx.ErrInvalidState) { … }
//
// Every error quicx returns wraps exactly one Status; errors.As recovers it.
// MsQuic's two success codes for asynchronous work (QUIC_STATUS_PENDING and
// QUIC_STATUS_CONTINUE) have no equivalent: calls return nil and results
// arrive as events.
type Status uint32

// MsQuic status codes (QUIC_STATUS_*). Values are MsQuic's Linux values.
const (
	StatusSuccess Status = 0 // QUIC_STATUS_SUCCESS; never returned as an error

	ErrInvalidState        Status = 1   // QUIC_STATUS_INVALID_STATE: wrong lifecycle state
	ErrNotFound            Status = 2   // QUIC_STATUS_NOT_FOUND
	ErrInternalError       Status = 5   // QUIC_STATUS_INTERNAL_ERROR
	ErrOutOfMemory         Status = 12  // QUIC_STATUS_OUT_OF_MEMORY
	ErrInvalidParameter    Status = 22  // QUIC_STATUS_INVALID_PARAMETER: bad argument, nothing changed
	ErrConnectionIdle      Status = 62  // QUIC_STATUS_CONNECTION_IDLE: idle or handshake-idle timeout
	ErrProtocolError       Status = 71  // QUIC_STATUS_PROTOCOL_ERROR
	ErrBufferTooSmall      Status = 75  // QUIC_STATUS_BUFFER_TOO_SMALL
	ErrStreamLimitReached  Status = 86  // QUIC_STATUS_STREAM_LIMIT_REACHED
	ErrAlpnInUse           Status = 91  // QUIC_STATUS_ALPN_IN_USE
	ErrAlpnNegFailure      Status = 92  // QUIC_STATUS_ALPN_NEG_FAILURE
	ErrVerNegError         Status = 93  // QUIC_STATUS_VER_NEG_ERROR
	ErrNotSupported        Status = 95  // QUIC_STATUS_NOT_SUPPORTED: quic-go cannot honour it
	ErrInvalidAddress      Status = 97  // QUIC_STATUS_INVALID_ADDRESS
	ErrAddressInUse        Status = 98  // QUIC_STATUS_ADDRESS_IN_USE
	ErrAddressNotAvailable Status = 99  // QUIC_STATUS_ADDRESS_NOT_AVAILABLE
	ErrHandshakeFailure    Status = 103 // QUIC_STATUS_HANDSHAKE_FAILURE
	ErrConnectionTimeout   Status = 110 // QUIC_STATUS_CONNECTION_TIMEOUT
	ErrConnectionRefused   Status = 111 // QUIC_STATUS_CONNECTION_REFUSED
	ErrUnreachable         Status = 113 // QUIC_STATUS_UNREACHABLE
	ErrAborted             Status = 125 // QUIC_STATUS_ABORTED: the connection or stream was aborted
	ErrTLSError            Status = 126 // QUIC_STATUS_TLS_ERROR
	ErrUserCanceled        Status = 130 // QUIC_STATUS_USER_CANCELED: peer app closed during the handshake

	statusTLSAlertBase  Status = 0xBEBC300
	statusCertErrorBase Status = 0xBEBC400

	ErrCloseNotify            = statusTLSAlertBase + 0   // QUIC_STATUS_CLOSE_NOTIFY
	ErrBadCertificate         = statusTLSAlertBase + 42  // QUIC_STATUS_BAD_CERTIFICATE
	ErrUnsupportedCertificate = statusTLSAlertBase + 43  // QUIC_STATUS_UNSUPPORTED_CERTIFICATE
	ErrRevokedCertificate     = statusTLSAlertBase + 44  // QUIC_STATUS_REVOKED_CERTIFICATE
	ErrExpiredCertificate     = statusTLSAlertBase + 45  // QUIC_STATUS_EXPIRED_CERTIFICATE
	ErrUnknownCertificate     = statusTLSAlertBase + 46  // QUIC_STATUS_UNKNOWN_CERTIFICATE
	ErrRequiredCertificate    = statusTLSAlertBase + 116 // QUIC_STATUS_REQUIRED_CERTIFICATE

	ErrCertExpired       = statusCertErrorBase + 1 // QUIC_STATUS_CERT_EXPIRED
	ErrCertUntrustedRoot = statusCertErrorBase + 2 // QUIC_STATUS_CERT_UNTRUSTED_ROOT
	ErrCertNoCert        = statusCertErrorBase + 3 // QUIC_STATUS_CERT_NO_CERT
)

var statusNames = map[Status]string{
	StatusSuccess:             "SUCCESS",
	ErrInvalidState:           "INVALID_STATE",
	ErrNotFound:               "NOT_FOUND",
	ErrInternalError:          "INTERNAL_ERROR",
	ErrOutOfMemory:            "OUT_OF_MEMORY",
	ErrInvalidParameter:       "INVALID_PARAMETER",
	ErrConnectionIdle:         "CONNECTION_IDLE",
	ErrProtocolError:          "PROTOCOL_ERROR",
	ErrBufferTooSmall:         "BUFFER_TOO_SMALL",
	ErrStreamLimitReached:     "STREAM_LIMIT_REACHED",
	ErrAlpnInUse:              "ALPN_IN_USE",
	ErrAlpnNegFailure:         "ALPN_NEG_FAILURE",
	ErrVerNegError:            "VER_NEG_ERROR",
	ErrNotSupported:           "NOT_SUPPORTED",
	ErrInvalidAddress:         "INVALID_ADDRESS",
	ErrAddressInUse:           "ADDRESS_IN_USE",
	ErrAddressNotAvailable:    "ADDRESS_NOT_AVAILABLE",
	ErrHandshakeFailure:       "HANDSHAKE_FAILURE",
	ErrConnectionTimeout:      "CONNECTION_TIMEOUT",
	ErrConnectionRefused:      "CONNECTION_REFUSED",
	ErrUnreachable:            "UNREACHABLE",
	ErrAborted:                "ABORTED",
	ErrTLSError:               "TLS_ERROR",
	ErrUserCanceled:           "USER_CANCELED",
	ErrCloseNotify:            "CLOSE_NOTIFY",
	ErrBadCertificate:         "BAD_CERTIFICATE",
	ErrUnsupportedCertificate: "UNSUPPORTED_CERTIFICATE",
	ErrRevokedCertificate:     "REVOKED_CERTIFICATE",
	ErrExpiredCertificate:     "EXPIRED_CERTIFICATE",
	ErrUnknownCertificate:     "UNKNOWN_CERTIFICATE",
	ErrRequiredCertificate:    "REQUIRED_CERTIFICATE",
	ErrCertExpired:            "CERT_EXPIRED",
	ErrCertUntrustedRoot:      "CERT_UNTRUSTED_ROOT",
	ErrCertNoCert:             "CERT_NO_CERT",
}

// TLSAlertStatus returns QUIC_STATUS_TLS_ALERT(alert): the status MsQuic reports when a
// handshake fails with that TLS alert.
func TLSAlertStatus(alert uint8) Status { return statusTLSAlertBase + Status(alert) }

// TLSAlert reports the TLS alert a QUIC_STATUS_TLS_ALERT status carries.
func (s Status) TLSAlert() (alert uint8, ok bool) {
	if s >= statusTLSAlertBase && s <= statusTLSAlertBase+0xFF {
		return uint8(s - statusTLSAlertBase), true
	}
	return 0, false
}

// Name is MsQuic's name for the status without the QUIC_STATUS_ prefix,
// such as "INVALID_PARAMETER" or "TLS_ALERT(80)".
func (s Status) Name() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	if a, ok := s.TLSAlert(); ok {
		return fmt.Sprintf("TLS_ALERT(%d)", a)
	}
	if s >= statusCertErrorBase && s <= statusCertErrorBase+0xFF {
		return fmt.Sprintf("CERT_ERROR(%d)", s-statusCertErrorBase)
	}
	return fmt.Sprintf("STATUS(%d)", uint32(s))
}

// Error implements error.
func (s Status) Error() string { return "QUIC_STATUS_" + s.Name() }

// Error is the error a quicx call returns: which operation failed, its MsQuic
// status, and why. errors.Is matches it against the Status sentinels and against
// the underlying cause, if there is one.
type Error struct {
	Op     string // the call, such as "Stream.Send"
	Status Status // never StatusSuccess
	Reason string // a short human explanation; may be empty
	Err    error  // the underlying cause (a socket error, say); may be nil
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("quicx: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Status.Error())
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the status and, if present, the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Status}
	}
	return []error{e.Status, e.Err}
}

// newErr builds an *Error; reason is formatted with args when args are given.
func newErr(op string, s Status, reason string, args ...any) error {
	if len(args) > 0 {
		reason = fmt.Sprintf(reason, args...)
	}
	return &Error{Op: op, Status: s, Reason: reason}
}

// wrapErr builds an *Error with an underlying cause.
func wrapErr(op string, s Status, cause error, reason string) error {
	return &Error{Op: op, Status: s, Reason: reason, Err: cause}
}

// StatusOf returns the Status an error carries: StatusSuccess for nil, the
// wrapped Status otherwise, and ErrInternalError for an error that carries none.
func StatusOf(err error) Status {
	if err == nil {
		return StatusSuccess
	}
	var s Status
	if errors.As(err, &s) {
		return s
	}
	return ErrInternalError
}
