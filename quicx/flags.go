package quicx

import (
	"fmt"
	"strings"
)

// flagNames renders a bit set as "A|B" using names listed from lowest bit up;
// bits without a name are printed in hex. Zero prints as zero.
func flagNames(v uint32, zero string, names []string) string {
	if v == 0 {
		return zero
	}
	var parts []string
	for i, n := range names {
		if v&(1<<i) != 0 && n != "" {
			parts = append(parts, n)
			v &^= 1 << i
		}
	}
	if v != 0 {
		parts = append(parts, fmt.Sprintf("%#x", v))
	}
	return strings.Join(parts, "|")
}

// AddressFamily is QUIC_ADDRESS_FAMILY: which IP family ConnectionStart resolves a
// server name to.
type AddressFamily uint16

// Address families (QUIC_ADDRESS_FAMILY_*).
const (
	AddressFamilyUnspec AddressFamily = 0  // QUIC_ADDRESS_FAMILY_UNSPEC: either
	AddressFamilyINET   AddressFamily = 2  // QUIC_ADDRESS_FAMILY_INET: IPv4
	AddressFamilyINET6  AddressFamily = 10 // QUIC_ADDRESS_FAMILY_INET6: IPv6
)

func (f AddressFamily) String() string {
	switch f {
	case AddressFamilyUnspec:
		return "UNSPEC"
	case AddressFamilyINET:
		return "INET"
	case AddressFamilyINET6:
		return "INET6"
	}
	return fmt.Sprintf("AddressFamily(%d)", uint16(f))
}

// ConnectionShutdownFlags is QUIC_CONNECTION_SHUTDOWN_FLAGS.
type ConnectionShutdownFlags uint32

// Connection shutdown flags.
const (
	ShutdownNone ConnectionShutdownFlags = 0 // QUIC_CONNECTION_SHUTDOWN_FLAG_NONE: send CONNECTION_CLOSE
	// ShutdownSilent is QUIC_CONNECTION_SHUTDOWN_FLAG_SILENT: tear down without telling the
	// peer. quic-go can do this only for a client connection that owns its UDP socket;
	// elsewhere it is refused with ErrNotSupported.
	ShutdownSilent ConnectionShutdownFlags = 1
)

func (f ConnectionShutdownFlags) String() string {
	return flagNames(uint32(f), "NONE", []string{"SILENT"})
}

// StreamOpenFlags is QUIC_STREAM_OPEN_FLAGS.
type StreamOpenFlags uint32

// Stream open flags.
const (
	StreamOpenNone             StreamOpenFlags = 0   // QUIC_STREAM_OPEN_FLAG_NONE: bidirectional
	StreamOpenUnidirectional   StreamOpenFlags = 0x1 // QUIC_STREAM_OPEN_FLAG_UNIDIRECTIONAL
	StreamOpen0RTT             StreamOpenFlags = 0x2 // QUIC_STREAM_OPEN_FLAG_0_RTT: set on peer streams opened in 0-RTT
	StreamOpenDelayIDFCUpdates StreamOpenFlags = 0x4 // QUIC_STREAM_OPEN_FLAG_DELAY_ID_FC_UPDATES
	StreamOpenAppOwnedBuffers  StreamOpenFlags = 0x8 // QUIC_STREAM_OPEN_FLAG_APP_OWNED_BUFFERS
)

func (f StreamOpenFlags) String() string {
	return flagNames(uint32(f), "NONE", []string{"UNIDIRECTIONAL", "0_RTT", "DELAY_ID_FC_UPDATES", "APP_OWNED_BUFFERS"})
}

// StreamStartFlags is QUIC_STREAM_START_FLAGS.
type StreamStartFlags uint32

// Stream start flags.
const (
	StreamStartNone               StreamStartFlags = 0    // QUIC_STREAM_START_FLAG_NONE
	StreamStartImmediate          StreamStartFlags = 0x1  // QUIC_STREAM_START_FLAG_IMMEDIATE
	StreamStartFailBlocked        StreamStartFlags = 0x2  // QUIC_STREAM_START_FLAG_FAIL_BLOCKED
	StreamStartShutdownOnFail     StreamStartFlags = 0x4  // QUIC_STREAM_START_FLAG_SHUTDOWN_ON_FAIL
	StreamStartIndicatePeerAccept StreamStartFlags = 0x8  // QUIC_STREAM_START_FLAG_INDICATE_PEER_ACCEPT
	StreamStartPriorityWork       StreamStartFlags = 0x10 // QUIC_STREAM_START_FLAG_PRIORITY_WORK
)

func (f StreamStartFlags) String() string {
	return flagNames(uint32(f), "NONE", []string{"IMMEDIATE", "FAIL_BLOCKED", "SHUTDOWN_ON_FAIL", "INDICATE_PEER_ACCEPT", "PRIORITY_WORK"})
}

// StreamShutdownFlags is QUIC_STREAM_SHUTDOWN_FLAGS.
type StreamShutdownFlags uint32

// Stream shutdown flags.
const (
	StreamShutdownNone         StreamShutdownFlags = 0    // invalid on its own
	StreamShutdownGraceful     StreamShutdownFlags = 0x1  // QUIC_STREAM_SHUTDOWN_FLAG_GRACEFUL: FIN after queued data
	StreamShutdownAbortSend    StreamShutdownFlags = 0x2  // QUIC_STREAM_SHUTDOWN_FLAG_ABORT_SEND: RESET_STREAM
	StreamShutdownAbortReceive StreamShutdownFlags = 0x4  // QUIC_STREAM_SHUTDOWN_FLAG_ABORT_RECEIVE: STOP_SENDING
	StreamShutdownAbort        StreamShutdownFlags = 0x6  // QUIC_STREAM_SHUTDOWN_FLAG_ABORT: both directions
	StreamShutdownImmediate    StreamShutdownFlags = 0x8  // QUIC_STREAM_SHUTDOWN_FLAG_IMMEDIATE: complete now
	StreamShutdownInline       StreamShutdownFlags = 0x10 // QUIC_STREAM_SHUTDOWN_FLAG_INLINE
)

func (f StreamShutdownFlags) String() string {
	return flagNames(uint32(f), "NONE", []string{"GRACEFUL", "ABORT_SEND", "ABORT_RECEIVE", "IMMEDIATE", "INLINE"})
}

// SendFlags is QUIC_SEND_FLAGS, for stream sends and datagrams.
type SendFlags uint32

// Send flags.
const (
	SendNone            SendFlags = 0    // QUIC_SEND_FLAG_NONE
	SendAllow0RTT       SendFlags = 0x1  // QUIC_SEND_FLAG_ALLOW_0_RTT
	SendStart           SendFlags = 0x2  // QUIC_SEND_FLAG_START: start the stream with this send
	SendFin             SendFlags = 0x4  // QUIC_SEND_FLAG_FIN: graceful send shutdown after this data
	SendDgramPriority   SendFlags = 0x8  // QUIC_SEND_FLAG_DGRAM_PRIORITY
	SendDelaySend       SendFlags = 0x10 // QUIC_SEND_FLAG_DELAY_SEND
	SendCancelOnLoss    SendFlags = 0x20 // QUIC_SEND_FLAG_CANCEL_ON_LOSS
	SendPriorityWork    SendFlags = 0x40 // QUIC_SEND_FLAG_PRIORITY_WORK
	SendCancelOnBlocked SendFlags = 0x80 // QUIC_SEND_FLAG_CANCEL_ON_BLOCKED
)

func (f SendFlags) String() string {
	return flagNames(uint32(f), "NONE", []string{"ALLOW_0_RTT", "START", "FIN", "DGRAM_PRIORITY", "DELAY_SEND", "CANCEL_ON_LOSS", "PRIORITY_WORK", "CANCEL_ON_BLOCKED"})
}

// ReceiveFlags is QUIC_RECEIVE_FLAGS.
type ReceiveFlags uint32

// Receive flags.
const (
	ReceiveNone ReceiveFlags = 0   // QUIC_RECEIVE_FLAG_NONE
	Receive0RTT ReceiveFlags = 0x1 // QUIC_RECEIVE_FLAG_0_RTT: the data arrived in 0-RTT packets
	ReceiveFin  ReceiveFlags = 0x2 // QUIC_RECEIVE_FLAG_FIN: the peer's data ends here
)

func (f ReceiveFlags) String() string {
	return flagNames(uint32(f), "NONE", []string{"0_RTT", "FIN"})
}

// DatagramSendState is QUIC_DATAGRAM_SEND_STATE.
type DatagramSendState uint32

// Datagram send states. States from DatagramLostDiscarded up are final.
const (
	DatagramSendUnknown              DatagramSendState = 0 // QUIC_DATAGRAM_SEND_UNKNOWN
	DatagramSendSent                 DatagramSendState = 1 // QUIC_DATAGRAM_SEND_SENT
	DatagramSendLostSuspect          DatagramSendState = 2 // QUIC_DATAGRAM_SEND_LOST_SUSPECT
	DatagramSendLostDiscarded        DatagramSendState = 3 // QUIC_DATAGRAM_SEND_LOST_DISCARDED
	DatagramSendAcknowledged         DatagramSendState = 4 // QUIC_DATAGRAM_SEND_ACKNOWLEDGED
	DatagramSendAcknowledgedSpurious DatagramSendState = 5 // QUIC_DATAGRAM_SEND_ACKNOWLEDGED_SPURIOUS
	DatagramSendCanceled             DatagramSendState = 6 // QUIC_DATAGRAM_SEND_CANCELED
)

// IsFinal reports QUIC_DATAGRAM_SEND_STATE_IS_FINAL: no further state follows.
func (s DatagramSendState) IsFinal() bool { return s >= DatagramSendLostDiscarded }

func (s DatagramSendState) String() string {
	names := [...]string{"UNKNOWN", "SENT", "LOST_SUSPECT", "LOST_DISCARDED", "ACKNOWLEDGED", "ACKNOWLEDGED_SPURIOUS", "CANCELED"}
	if int(s) < len(names) {
		return names[s]
	}
	return fmt.Sprintf("DatagramSendState(%d)", uint32(s))
}

// ExecutionProfile is QUIC_EXECUTION_PROFILE. Go schedules goroutines itself, so a
// profile means only what quicx's own machinery can do with it:
//
//   - ProfileLowLatency (the default): receive buffers grow to 64 KiB and sends
//     are copied ahead of the transport up to 128 KiB (MsQuic's ideal send
//     buffer), so data moves in small steps.
//   - ProfileMaxThroughput: receive buffers grow to 256 KiB and sends are copied
//     up to 1 MiB ahead, so fewer, larger Receive events and fewer wake-ups per
//     byte.
//   - ProfileScavenger and ProfileRealTime need control of thread priority and
//     dedicated threads, which Go does not give; OpenRegistration refuses them with
//     ErrNotSupported.
type ExecutionProfile uint32

// Execution profiles.
const (
	ProfileLowLatency    ExecutionProfile = 0 // QUIC_EXECUTION_PROFILE_LOW_LATENCY
	ProfileMaxThroughput ExecutionProfile = 1 // QUIC_EXECUTION_PROFILE_TYPE_MAX_THROUGHPUT
	ProfileScavenger     ExecutionProfile = 2 // QUIC_EXECUTION_PROFILE_TYPE_SCAVENGER
	ProfileRealTime      ExecutionProfile = 3 // QUIC_EXECUTION_PROFILE_TYPE_REAL_TIME
)

func (p ExecutionProfile) String() string {
	switch p {
	case ProfileLowLatency:
		return "LOW_LATENCY"
	case ProfileMaxThroughput:
		return "MAX_THROUGHPUT"
	case ProfileScavenger:
		return "SCAVENGER"
	case ProfileRealTime:
		return "REAL_TIME"
	}
	return fmt.Sprintf("ExecutionProfile(%d)", uint32(p))
}
