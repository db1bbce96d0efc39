// Package perfbase holds what both transports of `quicx perf` share — the
// secnetperf wire protocol, the scenarios, the transport settings, results and
// latency statistics — and the raw quic-go implementation of the tool, the
// baseline quicx is measured against.
//
// The wire protocol is MsQuic's secnetperf (draft-banks-quic-performance): ALPN
// "perf", UDP port 4433 by default. On every bidirectional stream the client
// sends an 8-byte big-endian response length, then its upload bytes, then FIN.
// After the client's FIN the server sends that many bytes and FIN. A response
// length of all ones (Unbounded) asks for an endless response: the client
// aborts its receive direction (STOP_SENDING) when it has measured enough, and
// the server resets its send direction in answer. A stream that ends before the
// 8 bytes arrive is aborted by the server, and so are unidirectional streams.
//
// Nothing under quicx/ imports this package; it exists so that the cost of
// quicx can be measured against quic-go doing the same work.
package perfbase

import (
	"encoding/binary"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Protocol constants, as secnetperf defines them (src/perf/lib/SecNetPerf.h).
const (
	ALPN             = "perf"     // PERF_ALPN
	DefaultPort      = 4433       // PERF_DEFAULT_PORT
	HeaderLen        = 8          // the response length that opens every request
	Unbounded        = ^uint64(0) // a response length asking for an endless response
	DefaultIO        = 256 << 10  // default size of one send and one receive buffer
	MaxStreams       = 10000      // PERF_DEFAULT_STREAM_COUNT: the server's peer stream limit
	ServerConnWindow = 0x8000000  // PERF_DEFAULT_CONN_FLOW_CONTROL (128 MiB)
)

// EncodeHeader writes the 8-byte response length that opens a request.
func EncodeHeader(b []byte, responseLen uint64) { binary.BigEndian.PutUint64(b, responseLen) }

// HeaderParser collects the 8-byte response length from the first bytes of a
// stream, which may arrive split across any number of buffers.
type HeaderParser struct {
	buf [HeaderLen]byte
	n   int
}

// Feed consumes the header bytes at the front of p and reports how many it
// took.
func (h *HeaderParser) Feed(p []byte) int {
	n := copy(h.buf[h.n:], p)
	h.n += n
	return n
}

// Done reports whether all 8 bytes have arrived.
func (h *HeaderParser) Done() bool { return h.n == HeaderLen }

// Length is the response length; valid once Done.
func (h *HeaderParser) Length() uint64 { return binary.BigEndian.Uint64(h.buf[:]) }

// Payload returns a read-only buffer of n bytes filled as secnetperf fills its
// I/O buffers (byte i holds i mod 256). Senders slice it and never write to it,
// so any number of outstanding sends may share it.
func Payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// Settings are the transport settings that matter for a fair comparison; both
// transports apply the same values.
type Settings struct {
	StreamWindow uint64        // initial stream receive window (auto-tuned upwards by quic-go in both)
	ConnWindow   uint64        // connection receive window (fixed)
	PeerStreams  int64         // bidirectional and unidirectional streams the peer may open; 0: none
	IdleTimeout  time.Duration // idle timeout
	Handshake    time.Duration // handshake idle timeout
}

// ServerSettings are secnetperf's server settings: 128 MiB connection window,
// 10000 peer streams of each kind, 30 s idle timeout.
func ServerSettings() Settings {
	return Settings{StreamWindow: 64 << 10, ConnWindow: ServerConnWindow, PeerStreams: MaxStreams, IdleTimeout: 30 * time.Second, Handshake: 10 * time.Second}
}

// ClientSettings are secnetperf's client settings: MsQuic's defaults (64 KiB
// stream window, 16 MiB connection window), no peer streams, 30 s idle timeout.
func ClientSettings() Settings {
	return Settings{StreamWindow: 64 << 10, ConnWindow: 16 << 20, IdleTimeout: 30 * time.Second, Handshake: 10 * time.Second}
}

// Scenario is one of secnetperf's client scenarios.
type Scenario string

// Scenarios.
const (
	Upload   Scenario = "upload"   // one stream sends for the duration (or Bytes); response length 0
	Download Scenario = "download" // one stream receives for the duration (or Bytes)
	RPS      Scenario = "rps"      // 512 B up / 4000 B down on 100 parallel streams, repeated
	HPS      Scenario = "hps"      // handshakes per second with many parallel dialers
	Latency  Scenario = "latency"  // 512 B up / 4000 B down, one request at a time
)

// Scenarios lists every scenario in the order "all" runs them.
var Scenarios = []Scenario{Upload, Download, RPS, HPS, Latency}

// ClientConfig is one client run. The same value drives both transports.
type ClientConfig struct {
	Scenario   Scenario
	Host       string // the server's IP address, already resolved
	Port       uint16
	ServerName string        // TLS SNI
	Duration   time.Duration // how long a timed run lasts
	Bytes      uint64        // upload/download: bytes per stream instead of a timed run (0: timed)
	Request    uint64        // rps/latency: bytes sent per request, the 8-byte header included (≥ 8)
	Response   uint64        // rps/latency: bytes asked for per request
	Streams    int           // parallel streams per connection
	Conns      int           // connections (hps: parallel dialers)
	IOSize     int           // bytes per send and per receive buffer
	Settings   Settings
	Progress   *Progress // live counters; may be nil
}

// Addr is the server's host:port.
func (c *ClientConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))) }

// Progress counts what a running client has done so far, for the progress
// line. Every field is updated atomically by the client's goroutines.
type Progress struct {
	Bytes      atomic.Uint64 // payload bytes moved in the measured direction
	Requests   atomic.Uint64 // completed requests
	Handshakes atomic.Uint64 // completed handshakes
}

// Result is the outcome of one client run.
type Result struct {
	Transport  string        `json:"transport"`
	Scenario   Scenario      `json:"scenario"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Bytes      uint64        `json:"bytes,omitempty"`
	Requests   uint64        `json:"requests,omitempty"`
	Handshakes uint64        `json:"handshakes,omitempty"`
	Failures   uint64        `json:"failures,omitempty"`   // hps: handshakes that failed
	LastError  string        `json:"last_error,omitempty"` // hps: why the last failed handshake failed
	Latency    *LatencyStats `json:"latency,omitempty"`
	// AllocBytes and Allocs are the process's heap allocations during the run
	// (the in-process server's included when there is one), filled in by the
	// caller of Run.
	AllocBytes uint64 `json:"alloc_bytes,omitempty"`
	Allocs     uint64 `json:"allocs,omitempty"`
	// Goroutines is how many goroutines the process created during the run and
	// CPU the CPU time (user and system) it used, filled in like AllocBytes.
	Goroutines uint64        `json:"goroutines_created,omitempty"`
	CPU        time.Duration `json:"cpu_ns,omitempty"`
}

// Costs are a run's costs per unit of work (Ops).
type Costs struct {
	AllocBytes float64 `json:"alloc_bytes"`
	Allocs     float64 `json:"allocs"`
	Goroutines float64 `json:"goroutines"`
	CPU        float64 `json:"cpu_us"` // microseconds
}

// PerOp returns the run's costs per unit of work (zero without work).
func (r *Result) PerOp() Costs {
	ops := r.Ops()
	if ops <= 0 {
		return Costs{}
	}
	return Costs{
		AllocBytes: float64(r.AllocBytes) / ops,
		Allocs:     float64(r.Allocs) / ops,
		Goroutines: float64(r.Goroutines) / ops,
		CPU:        float64(r.CPU) / 1e3 / ops,
	}
}

// Ops is the number of units the scenario did: MB moved for upload and
// download, requests for rps and latency, handshakes for hps.
func (r *Result) Ops() float64 {
	switch r.Scenario {
	case Upload, Download:
		return float64(r.Bytes) / 1e6
	case RPS, Latency:
		return float64(r.Requests)
	case HPS:
		return float64(r.Handshakes)
	}
	return 0
}

// OpName names the unit of Ops.
func (s Scenario) OpName() string {
	switch s {
	case Upload, Download:
		return "MB"
	case HPS:
		return "handshake"
	}
	return "request"
}

// Value is the scenario's headline figure: Gbit/s for upload and download,
// requests/s for rps, handshakes/s for hps and the median latency in
// microseconds for latency.
func (r *Result) Value() float64 {
	secs := r.Elapsed.Seconds()
	if secs <= 0 {
		return 0
	}
	switch r.Scenario {
	case Upload, Download:
		return float64(r.Bytes) * 8 / secs / 1e9
	case RPS:
		return float64(r.Requests) / secs
	case HPS:
		return float64(r.Handshakes) / secs
	case Latency:
		if r.Latency == nil {
			return 0
		}
		return float64(r.Latency.P50) / 1e3
	}
	return 0
}

// Unit names the unit of Value.
func (s Scenario) Unit() string {
	switch s {
	case Upload, Download:
		return "Gbit/s"
	case RPS:
		return "req/s"
	case HPS:
		return "hs/s"
	case Latency:
		return "p50 µs"
	}
	return ""
}

// LowerIsBetter reports whether a smaller Value is the better one.
func (s Scenario) LowerIsBetter() bool { return s == Latency }

// Ratio compares quicx with quic-go so that 1 means "as good" and more is
// better: quicx/quic-go for rates, quic-go/quicx for latency.
func Ratio(s Scenario, quicx, quicgo float64) float64 {
	if quicx <= 0 || quicgo <= 0 {
		return 0
	}
	if s.LowerIsBetter() {
		return quicgo / quicx
	}
	return quicx / quicgo
}

// LatencyStats summarises request latencies.
type LatencyStats struct {
	Count int           `json:"count"`
	Min   time.Duration `json:"min_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p99_9_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize sorts samples and computes the statistics (nil for no samples).
func Summarize(samples []time.Duration) *LatencyStats {
	if len(samples) == 0 {
		return nil
	}
	slices.Sort(samples)
	at := func(p float64) time.Duration {
		// Nearest rank: the smallest sample with at least p of them at or below it.
		i := int(p*float64(len(samples))+0.999999) - 1
		return samples[min(max(i, 0), len(samples)-1)]
	}
	return &LatencyStats{
		Count: len(samples),
		Min:   samples[0],
		P50:   at(0.50),
		P90:   at(0.90),
		P99:   at(0.99),
		P999:  at(0.999),
		Max:   samples[len(samples)-1],
	}
}
