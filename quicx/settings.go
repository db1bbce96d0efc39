package quicx

import (
	"fmt"
	"math/bits"
	"slices"
	"time"

	"quicx.dev/adapter"
)

// Toggle is an on/off setting whose zero value means "MsQuic's default".
type Toggle uint8

// Toggle values.
const (
	Default Toggle = iota // MsQuic's default for the setting
	On
	Off
)

func (t Toggle) String() string {
	switch t {
	case Default:
		return "default"
	case On:
		return "on"
	case Off:
		return "off"
	}
	return fmt.Sprintf("Toggle(%d)", uint8(t))
}

func (t Toggle) enabled(def bool) bool {
	switch t {
	case On:
		return true
	case Off:
		return false
	}
	return def
}

// NoTimeout switches a timeout setting off (MsQuic's value 0), since a zero
// time.Duration already means "MsQuic's default".
const NoTimeout time.Duration = -1

// ServerResumptionLevel is QUIC_SERVER_RESUMPTION_LEVEL.
type ServerResumptionLevel uint8

// Server resumption levels.
const (
	ServerNoResume         ServerResumptionLevel = 0 // QUIC_SERVER_NO_RESUME (default): no tickets
	ServerResumeOnly       ServerResumptionLevel = 1 // QUIC_SERVER_RESUME_ONLY: tickets, no 0-RTT
	ServerResumeAndZeroRTT ServerResumptionLevel = 2 // QUIC_SERVER_RESUME_AND_ZERORTT: tickets and 0-RTT
)

// CongestionControlAlgorithm is QUIC_CONGESTION_CONTROL_ALGORITHM, shifted by one
// so that zero can mean "the transport's own" (quic-go runs NewReno and offers
// no choice, so either explicit value is refused with ErrNotSupported).
type CongestionControlAlgorithm uint8

// Congestion control algorithms.
const (
	CongestionControlTransport CongestionControlAlgorithm = 0 // whatever the transport runs (quic-go: NewReno)
	CongestionControlCubic     CongestionControlAlgorithm = 1 // QUIC_CONGESTION_CONTROL_ALGORITHM_CUBIC
	CongestionControlBBR       CongestionControlAlgorithm = 2 // QUIC_CONGESTION_CONTROL_ALGORITHM_BBR
)

// MsQuic's defaults for the settings quicx honours (MsQuic settings.c).
const (
	DefaultHandshakeIdleTimeout  = 10 * time.Second
	DefaultIdleTimeout           = 30 * time.Second
	DefaultStreamRecvWindow      = 65536
	DefaultConnFlowControlWindow = 16 << 20
	DefaultIdealSendBufferSize   = 131072
	defaultMinimumMtu            = 1288
	defaultMaximumMtu            = 1500
	minMtu                       = 1248
	maxMtu                       = 1500
	udpIPv6Overhead              = 48
)

// Settings is QUIC_SETTINGS. The zero value of every field means MsQuic's
// default, so Settings{} is MsQuic's defaults. Fields are MsQuic's, by name.
//
// quic-go fixes much of what MsQuic makes tunable. A field quic-go cannot
// honour is refused with ErrNotSupported when it is set to anything but its
// zero value (docs/limitations.md lists each with the reason), so nothing is
// silently ignored. All transport parameters are fixed when the connection is
// created; see Connection.SetSettings and Listener.SetSettings.
type Settings struct {
	// Honoured.

	HandshakeIdleTimeout time.Duration // default 10 s; NoTimeout disables. quic-go also gives up after twice this.
	IdleTimeout          time.Duration // default 30 s; NoTimeout disables (the peer's value still applies)
	KeepAliveInterval    time.Duration // default 0: no keep-alive PINGs

	PeerBidiStreamCount  uint16 // default 0: the peer may open no bidirectional stream
	PeerUnidiStreamCount uint16 // default 0: the peer may open no unidirectional stream

	StreamRecvWindowDefault uint32 // initial stream receive window, a power of two; default 65536
	ConnFlowControlWindow   uint32 // connection receive window; default 16 MiB

	DatagramReceiveEnabled    bool                  // advertise datagram support; default false
	SendBufferingEnabled      Toggle                // default On: copy sends and complete them early
	ServerResumptionLevel     ServerResumptionLevel // default ServerNoResume
	ReliableResetEnabled      bool                  // RESET_STREAM_AT; default false
	StreamMultiReceiveEnabled bool                  // several outstanding Receive events per stream

	// Versions are the QUIC versions the connection accepts, most preferred
	// first; a client starts with the first. Nil means quic-go's list (v1, then
	// v2, 0x6b3343cf). MsQuic sets these in QUIC_VERSION_SETTINGS.
	Versions []uint32

	// MinimumMtu sets the packet size quic-go starts with (MTU minus 48 bytes of
	// IPv6 and UDP headers), default 1288. MaximumMtu can only be the default
	// (path MTU discovery up to quic-go's own ceiling) or equal to MinimumMtu
	// (no discovery).
	MinimumMtu uint16
	MaximumMtu uint16

	// EcnEnabled: quic-go sends ECN-capable packets whenever the socket allows it
	// (MsQuic's default is off); Off is refused with ErrNotSupported.
	EcnEnabled Toggle
	// MigrationEnabled: a quic-go server always accepts client migration; Off is
	// refused with ErrNotSupported.
	MigrationEnabled Toggle
	// PacingEnabled: quic-go always paces; Off is refused with ErrNotSupported.
	PacingEnabled Toggle

	// TransportEvents subscribes to the events quicx derives from quic-go's
	// in-process qlog recorder (quicx's own setting; MsQuic raises them always).
	// The default is none: with any subscription quic-go builds a qlog event for
	// every packet, which costs about a sixth of its throughput (docs/perf.md).
	// SendBufferingEnabled Off subscribes to TrackAcks by itself.
	TransportEvents TransportEvents

	// Refused unless zero: quic-go fixes these.

	MaxBytesPerKey                    uint64                     // key updates every 100 000 packets, fixed
	MtuDiscoverySearchCompleteTimeout time.Duration              // not tunable
	MtuDiscoveryMissingProbeCount     uint8                      // not tunable
	TLSClientMaxSendBuffer            uint32                     // crypto/tls buffers internally
	TLSServerMaxSendBuffer            uint32                     // crypto/tls buffers internally
	StreamRecvBufferDefault           uint32                     // quic-go buffers frames as they come
	MaxWorkerQueueDelay               time.Duration              // no worker queue
	MaxStatelessOperations            uint32                     // not tunable
	InitialWindowPackets              uint32                     // fixed at 32
	SendIdleTimeout                   time.Duration              // not tunable
	InitialRtt                        time.Duration              // fixed at 100 ms
	MaxAckDelay                       time.Duration              // fixed at 25 ms
	DisconnectTimeout                 time.Duration              // quic-go uses the idle timeout
	CongestionControlAlgorithm        CongestionControlAlgorithm // NewReno, fixed
	MaxBindingStatelessOperations     uint16                     // not tunable
	StatelessOperationExpiration      time.Duration              // not tunable
	GreaseQuicBitEnabled              bool                       // not implemented by quic-go
	MaxOperationsPerDrain             uint8                      // no operation queue
	DestCidUpdateIdleTimeout          time.Duration              // not tunable
	HyStartEnabled                    bool                       // no HyStart++
	EncryptionOffloadAllowed          bool                       // no QUIC encryption offload
	OneWayDelayEnabled                bool                       // no timestamp extension
	NetStatsEventEnabled              bool                       // no network statistics event
	XdpEnabled                        bool                       // no XDP datapath
	QTIPEnabled                       bool                       // no QUIC over TCP
	// The per-type windows may only repeat StreamRecvWindowDefault: quic-go has one
	// window for all stream types.
	StreamRecvWindowBidiLocalDefault  uint32
	StreamRecvWindowBidiRemoteDefault uint32
	StreamRecvWindowUnidiDefault      uint32
}

// TransportEvents is a set of recorder-derived events a connection subscribes
// to (Settings.TransportEvents).
type TransportEvents uint32

// Transport event subscriptions.
const (
	// TrackAcks: graceful SendShutdownComplete once the peer acknowledged the FIN
	// and all data (without it: once the FIN is handed to quic-go), and
	// SendComplete after acknowledgement with SendBufferingEnabled Off, and
	// IdealSendBufferSize as the bytes in flight grow.
	TrackAcks TransportEvents = 1 << iota
	// TrackStreamCredit: StreamsAvailable (from the peer's MAX_STREAMS) and
	// PeerNeedsStreams (from its STREAMS_BLOCKED).
	TrackStreamCredit
	// TrackDatagrams: each sent datagram's DatagramSendStateChanged up to
	// acknowledgement or loss.
	TrackDatagrams
	// TrackPeerAddress: PeerAddressChanged when the peer migrates.
	TrackPeerAddress
	// TrackLoss: losses of stream data, needed by SendCancelOnLoss.
	TrackLoss
	// TrackZeroRTT: a server marks what the client sent in 0-RTT packets, as
	// MsQuic does: StreamOpen0RTT on PeerStreamStarted for a stream whose
	// opening frame came in a 0-RTT packet, and Receive0RTT on a Receive whose
	// offset lies below the end of the stream's furthest 0-RTT data (so the
	// data includes bytes received in 0-RTT). Without it neither flag is set.
	TrackZeroRTT
	// TrackReceive raises no event of its own: it lets a stream that waits for
	// its peer hold no goroutine. quic-go tells of arriving data only by
	// returning from a Read that waited for it, so without the recorder each
	// stream with a receive direction keeps one reader goroutine waiting in
	// quic-go. With it, the recorder follows the STREAM and RESET_STREAM frames
	// received and a reader runs only while something is readable. Every other
	// subscription turns it on too, as the recorder's cost is then paid
	// anyway; alone it costs what the recorder costs (docs/perf.md), which is
	// worth it for many mostly idle streams.
	TrackReceive

	// TrackAll subscribes to every event quicx derives: MsQuic's full event set.
	TrackAll = TrackAcks | TrackStreamCredit | TrackDatagrams | TrackPeerAddress | TrackLoss | TrackZeroRTT | TrackReceive
)

var transportEventNames = []string{"ACKS", "STREAM_CREDIT", "DATAGRAMS", "PEER_ADDRESS", "LOSS", "ZERO_RTT", "RECEIVE"}

func (t TransportEvents) String() string { return flagNames(uint32(t), "NONE", transportEventNames) }

// adapterTrack maps subscriptions onto the adapter's recorder features.
func (t TransportEvents) adapterTrack() adapter.Track {
	var a adapter.Track
	for _, m := range []struct {
		q TransportEvents
		a adapter.Track
	}{{TrackAcks, adapter.TrackAcks}, {TrackStreamCredit, adapter.TrackStreamCredit}, {TrackDatagrams, adapter.TrackDatagrams},
		{TrackPeerAddress, adapter.TrackPaths}, {TrackLoss, adapter.TrackLoss}, {TrackZeroRTT, adapter.TrackZeroRTT}} {
		if t&m.q != 0 {
			a |= m.a
		}
	}
	if t != 0 {
		// The recorder runs: let it spare idle streams their reader goroutine.
		a |= adapter.TrackReceive
	}
	return a
}

// resolved is a validated Settings: the transport part for quic-go and the
// rest, which quicx itself implements.
type resolved struct {
	transport     adapter.TransportSettings
	sendBuffering bool
	multiReceive  bool
	resumption    ServerResumptionLevel
	events        TransportEvents // the recorder subscriptions in effect
}

// resolve validates s as MsQuic does and translates it. op names the calling API
// for errors.
func (s *Settings) resolve(op string) (resolved, error) {
	var r resolved
	if s == nil {
		s = &Settings{}
	}
	bad := func(field, why string) error { return newErr(op, ErrInvalidParameter, "Settings.%s: %s", field, why) }
	unsupported := func(field, why string) error { return newErr(op, ErrNotSupported, "Settings.%s: %s", field, why) }

	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"HandshakeIdleTimeout", s.HandshakeIdleTimeout}, {"IdleTimeout", s.IdleTimeout}, {"KeepAliveInterval", s.KeepAliveInterval}} {
		if t.d < 0 && t.d != NoTimeout {
			return r, bad(t.name, "negative duration (use quicx.NoTimeout to disable)")
		}
	}
	if s.KeepAliveInterval == NoTimeout {
		return r, bad("KeepAliveInterval", "keep-alive is off by default; NoTimeout applies to timeouts only")
	}

	refused := []struct {
		name string
		set  bool
		why  string
	}{
		{"MaxBytesPerKey", s.MaxBytesPerKey != 0, "quic-go updates keys on a fixed packet count"},
		{"MtuDiscoverySearchCompleteTimeout", s.MtuDiscoverySearchCompleteTimeout != 0, "quic-go's path MTU discovery is not tunable"},
		{"MtuDiscoveryMissingProbeCount", s.MtuDiscoveryMissingProbeCount != 0, "quic-go's path MTU discovery is not tunable"},
		{"TLSClientMaxSendBuffer", s.TLSClientMaxSendBuffer != 0, "crypto/tls buffers handshake data itself"},
		{"TLSServerMaxSendBuffer", s.TLSServerMaxSendBuffer != 0, "crypto/tls buffers handshake data itself"},
		{"StreamRecvBufferDefault", s.StreamRecvBufferDefault != 0, "quic-go has no stream receive buffer setting"},
		{"MaxWorkerQueueDelay", s.MaxWorkerQueueDelay != 0, "quic-go has no worker queue"},
		{"MaxStatelessOperations", s.MaxStatelessOperations != 0, "quic-go's stateless operations are not tunable"},
		{"InitialWindowPackets", s.InitialWindowPackets != 0, "quic-go's initial congestion window is fixed at 32 packets"},
		{"SendIdleTimeout", s.SendIdleTimeout != 0, "quic-go's congestion controller is not tunable"},
		{"InitialRtt", s.InitialRtt != 0, "quic-go's initial RTT is fixed at 100 ms"},
		{"MaxAckDelay", s.MaxAckDelay != 0, "quic-go's max_ack_delay is fixed at 25 ms"},
		{"DisconnectTimeout", s.DisconnectTimeout != 0, "quic-go detects a dead path only by the idle timeout"},
		{"CongestionControlAlgorithm", s.CongestionControlAlgorithm != CongestionControlTransport, "quic-go runs NewReno and offers no choice"},
		{"MaxBindingStatelessOperations", s.MaxBindingStatelessOperations != 0, "quic-go's stateless operations are not tunable"},
		{"StatelessOperationExpiration", s.StatelessOperationExpiration != 0, "quic-go's stateless operations are not tunable"},
		{"GreaseQuicBitEnabled", s.GreaseQuicBitEnabled, "quic-go does not implement grease_quic_bit"},
		{"MaxOperationsPerDrain", s.MaxOperationsPerDrain != 0, "quic-go has no operation queue"},
		{"DestCidUpdateIdleTimeout", s.DestCidUpdateIdleTimeout != 0, "quic-go rotates connection IDs on its own schedule"},
		{"HyStartEnabled", s.HyStartEnabled, "quic-go has no HyStart++"},
		{"EncryptionOffloadAllowed", s.EncryptionOffloadAllowed, "quic-go has no encryption offload"},
		{"OneWayDelayEnabled", s.OneWayDelayEnabled, "quic-go has no one-way-delay extension"},
		{"NetStatsEventEnabled", s.NetStatsEventEnabled, "quicx raises no network statistics event; poll Connection.Stats"},
		{"XdpEnabled", s.XdpEnabled, "quic-go has no XDP datapath"},
		{"QTIPEnabled", s.QTIPEnabled, "quic-go has no QUIC-over-TCP"},
		{"EcnEnabled", s.EcnEnabled == Off, "quic-go always uses ECN where the socket supports it"},
		{"MigrationEnabled", s.MigrationEnabled == Off, "a quic-go server always accepts client migration"},
		{"PacingEnabled", s.PacingEnabled == Off, "quic-go always paces"},
	}
	for _, f := range refused {
		if f.set {
			return r, unsupported(f.name, f.why)
		}
	}

	window := uint32(DefaultStreamRecvWindow)
	if s.StreamRecvWindowDefault != 0 {
		if bits.OnesCount32(s.StreamRecvWindowDefault) != 1 {
			return r, bad("StreamRecvWindowDefault", "must be a power of two")
		}
		window = s.StreamRecvWindowDefault
	}
	for _, w := range []struct {
		name string
		v    uint32
	}{{"StreamRecvWindowBidiLocalDefault", s.StreamRecvWindowBidiLocalDefault}, {"StreamRecvWindowBidiRemoteDefault", s.StreamRecvWindowBidiRemoteDefault}, {"StreamRecvWindowUnidiDefault", s.StreamRecvWindowUnidiDefault}} {
		if w.v == 0 {
			continue
		}
		if bits.OnesCount32(w.v) != 1 {
			return r, bad(w.name, "must be a power of two")
		}
		if w.v != window {
			return r, unsupported(w.name, "quic-go has one receive window for every stream type")
		}
	}
	if s.ServerResumptionLevel > ServerResumeAndZeroRTT {
		return r, bad("ServerResumptionLevel", "unknown level")
	}
	for _, t := range []struct {
		name string
		v    Toggle
	}{{"SendBufferingEnabled", s.SendBufferingEnabled}, {"EcnEnabled", s.EcnEnabled}, {"MigrationEnabled", s.MigrationEnabled}, {"PacingEnabled", s.PacingEnabled}} {
		if t.v > Off {
			return r, bad(t.name, "unknown Toggle value")
		}
	}

	var versions []uint32 // nil and empty both mean the default
	if len(s.Versions) > 0 {
		versions = slices.Clone(s.Versions)
	}
	for _, v := range versions {
		if !slices.Contains(adapter.SupportedVersions(), v) {
			return r, unsupported("Versions", fmt.Sprintf("quic-go does not speak version %#x", v))
		}
	}
	ts := adapter.TransportSettings{
		Versions:             versions,
		HandshakeIdleTimeout: DefaultHandshakeIdleTimeout,
		IdleTimeout:          DefaultIdleTimeout,
		KeepAlive:            s.KeepAliveInterval,
		StreamReceiveWindow:  uint64(window),
		ConnReceiveWindow:    DefaultConnFlowControlWindow,
		PeerBidiStreams:      int64(s.PeerBidiStreamCount),
		PeerUniStreams:       int64(s.PeerUnidiStreamCount),
		Datagrams:            s.DatagramReceiveEnabled,
		ResetPartialDelivery: s.ReliableResetEnabled,
		Allow0RTT:            s.ServerResumptionLevel == ServerResumeAndZeroRTT,
	}
	switch s.HandshakeIdleTimeout {
	case 0:
	case NoTimeout:
		// quic-go always bounds the handshake; a day is as close to "never" as it
		// gets while still cleaning up a peer that vanished.
		ts.HandshakeIdleTimeout = 24 * time.Hour
	default:
		ts.HandshakeIdleTimeout = s.HandshakeIdleTimeout
	}
	switch s.IdleTimeout {
	case 0:
	case NoTimeout:
		ts.IdleTimeout = 0
	default:
		ts.IdleTimeout = s.IdleTimeout
	}
	if s.ConnFlowControlWindow != 0 {
		ts.ConnReceiveWindow = uint64(s.ConnFlowControlWindow)
	}

	minM, maxM := s.MinimumMtu, s.MaximumMtu
	if minM != 0 || maxM != 0 {
		lo, hi := uint16(defaultMinimumMtu), uint16(defaultMaximumMtu)
		if minM != 0 {
			lo = min(max(minM, minMtu), maxMtu)
		}
		if maxM != 0 {
			hi = min(max(maxM, minMtu), maxMtu)
		}
		if lo > hi {
			return r, bad("MinimumMtu", "above MaximumMtu")
		}
		if minM != 0 {
			ts.InitialPacketSize = lo - udpIPv6Overhead
		}
		if maxM != 0 && hi != maxMtu {
			if hi != lo {
				return r, unsupported("MaximumMtu", "quic-go cannot cap path MTU discovery; set it equal to MinimumMtu to turn discovery off")
			}
			ts.DisablePMTUD = true
		}
	}

	if s.TransportEvents&^TrackAll != 0 {
		return r, bad("TransportEvents", "unknown bits")
	}
	r.sendBuffering = s.SendBufferingEnabled.enabled(true)
	r.events = s.TransportEvents
	if !r.sendBuffering {
		// Completion after acknowledgement is what non-buffered mode means.
		r.events |= TrackAcks
	}
	ts.Track = r.events.adapterTrack()
	r.multiReceive = s.StreamMultiReceiveEnabled
	r.resumption = s.ServerResumptionLevel
	r.transport = ts
	return r, nil
}
