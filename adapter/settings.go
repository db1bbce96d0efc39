// Package adapter drives quic-go on behalf of quicx. It is the only package that
// imports quic-go: it owns the UDP bindings, the quic-go connections and streams,
// the TLS hooks that turn crypto/tls callbacks into decisions, the in-process
// qlog recorder, and the translation of MsQuic settings into a quic.Config.
//
// Its API speaks plain Go (net/netip, crypto/tls, uint64 codes) and knows nothing
// of MsQuic's events: quicx builds those from the callbacks and return values
// here.
package adapter

import (
	"context"
	"reflect"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
)

// Track selects what the per-connection qlog recorder derives. Any bit makes
// quic-go build qlog events for the connection, which costs throughput; with
// no bit set quic-go builds none.
type Track uint32

const (
	// TrackAcks follows which stream bytes and FINs the peer acknowledged.
	TrackAcks Track = 1 << iota
	// TrackStreamCredit follows the peer's MAX_STREAMS and STREAMS_BLOCKED frames.
	TrackStreamCredit
	// TrackDatagrams follows each sent datagram to its acknowledgement or loss.
	TrackDatagrams
	// TrackPaths follows changes of the peer's address.
	TrackPaths
	// TrackLoss reports lost packets that carried stream data.
	TrackLoss
	// TrackZeroRTT follows which received bytes arrived in 0-RTT packets.
	TrackZeroRTT
	// TrackReceive follows the STREAM and RESET_STREAM frames received, so that
	// a stream's reader can stop while nothing is readable and be woken
	// (RecorderHandler.StreamReadable) when something is.
	TrackReceive

	// TrackAll is every feature.
	TrackAll = TrackAcks | TrackStreamCredit | TrackDatagrams | TrackPaths | TrackLoss | TrackZeroRTT | TrackReceive
)

// TransportSettings are the QUIC transport parameters and knobs of one
// connection, already resolved from MsQuic's settings: no zero here means
// "default".
type TransportSettings struct {
	HandshakeIdleTimeout time.Duration // > 0
	IdleTimeout          time.Duration // 0: never time out (quic-go gets a very large value)
	KeepAlive            time.Duration // 0: off
	StreamReceiveWindow  uint64        // initial per-stream window (auto-tuned upwards by quic-go)
	ConnReceiveWindow    uint64        // connection window, fixed (MsQuic does not tune it)
	PeerBidiStreams      int64         // concurrent bidi streams the peer may open; 0: none
	PeerUniStreams       int64         // concurrent uni streams the peer may open; 0: none
	Datagrams            bool          // advertise max_datagram_frame_size
	ResetPartialDelivery bool          // RESET_STREAM_AT
	Allow0RTT            bool          // server: accept 0-RTT
	InitialPacketSize    uint16        // 0: quic-go's default
	DisablePMTUD         bool
	Versions             []uint32 // nil: quic-go's list (v1, v2)
	Track                Track
	QlogDir              string // write a qlog file per connection here
}

// idleForever stands for "no idle timeout": quic-go has no way to switch the
// timer off, so it gets a duration no connection lives to see. The peer's own
// value still applies, as RFC 9000 requires.
const idleForever = 100 * 365 * 24 * time.Hour

// Equal reports whether two settings would produce the same quic.Config.
func (s TransportSettings) Equal(o TransportSettings) bool { return reflect.DeepEqual(s, o) }

// quicConfig translates the settings. tracer may be nil.
func (s TransportSettings) quicConfig(tracer func(ctx context.Context, isClient bool, id quic.ConnectionID) qlogwriter.Trace) *quic.Config {
	c := &quic.Config{
		HandshakeIdleTimeout:           s.HandshakeIdleTimeout,
		MaxIdleTimeout:                 s.IdleTimeout,
		KeepAlivePeriod:                s.KeepAlive,
		InitialStreamReceiveWindow:     s.StreamReceiveWindow,
		InitialConnectionReceiveWindow: s.ConnReceiveWindow,
		MaxConnectionReceiveWindow:     s.ConnReceiveWindow,
		MaxIncomingStreams:             countToQUIC(s.PeerBidiStreams),
		MaxIncomingUniStreams:          countToQUIC(s.PeerUniStreams),
		// quicx returns stream credit itself: at once for ordinary streams (quic-go
		// then frees it when the stream completes), at Stream.Close for streams
		// opened with DELAY_ID_FC_UPDATES.
		RequireStreamCreditRelease:       true,
		EnableDatagrams:                  s.Datagrams,
		EnableStreamResetPartialDelivery: s.ResetPartialDelivery,
		Allow0RTT:                        s.Allow0RTT,
		InitialPacketSize:                s.InitialPacketSize,
		DisablePathMTUDiscovery:          s.DisablePMTUD,
	}
	if s.IdleTimeout == 0 {
		c.MaxIdleTimeout = idleForever
	}
	for _, v := range s.Versions {
		c.Versions = append(c.Versions, quic.Version(v))
	}
	if (s.Track != 0 || s.QlogDir != "") && tracer != nil {
		c.Tracer = tracer
	}
	return c
}

// countToQUIC maps a stream count onto quic-go, where 0 means 100 and a negative
// value means none.
func countToQUIC(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// SupportedVersions lists the QUIC versions quic-go speaks, most preferred first.
func SupportedVersions() []uint32 {
	var out []uint32
	for _, v := range quic.SupportedVersions() {
		out = append(out, uint32(v))
	}
	return out
}
