// Package quicxtest helps test code that consumes quicx events.
//
// A test of an idle timeout, over a lossy path with a 100 ms round trip,
// taking a millisecond of real time for five seconds of QUIC:
//
//	func TestIdle(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			p := quicxtest.NewPair(t, quicxtest.PairConfig{
//				Link:     quicxtest.Link{Latency: 50 * time.Millisecond, Loss: 0.01},
//				Settings: quicx.Settings{IdleTimeout: 5 * time.Second},
//			})
//			_, err := p.Client.Events.ExpectExactly(
//				quicxtest.Equal(&quicx.ShutdownInitiatedByTransport{Status: quicx.ErrConnectionIdle, ErrorCode: 1}),
//				quicxtest.Type[*quicx.ConnectionShutdownComplete](),
//			)
//			if err != nil {
//				t.Fatal(err) // the error shows the client's whole timeline
//			}
//		})
//	}
//
// The package has five parts:
//
//   - An in-memory network (Network, Host, Link) built on quic-go's
//     testutils/simnet: hosts with addresses and names, and directed links with
//     latency, bandwidth, queue limit, MTU, loss, reordering and duplication
//     decided by a seeded random source, plus NAT rebinding. A Host implements
//     quicx.Network, so a registration is pointed at it with
//     quicx.RegistrationConfig.Network. Under testing/synctest every delay and
//     timeout runs in simulated time: seconds of QUIC run in milliseconds.
//   - Ready-made endpoints (OpenPair, NewPair, Pair.Connect): registrations,
//     configurations, a generated certificate, a started listener and connected
//     client and server connections, all closed and drained at cleanup.
//   - Expectations (Watcher, Matcher, Type, Match, Equal, Any): assert exact or
//     partial event sequences on any quicx event channel. A failure reports the
//     whole timeline observed so far.
//   - Fakes for unit tests without a network: events whose answers are
//     observable (NewReceive, NewConnectionEvent, NewPeerCertificateEvent),
//     Feed, and FakeStream, a stand-in for the methods a stream handler calls.
//     Drain and ReadAll consume a channel to its end, answering what waits.
//   - A Recorder that writes the event timeline of real objects as JSON, and
//     NewReplay, which feeds a recorded timeline to a consumer: record once
//     against a real peer, test forever offline.
//
// # Determinism
//
// Inside a testing/synctest bubble the clock is simulated, and the network
// takes the remaining chance out of what it controls: its random decisions
// are a function of NetworkConfig.Seed and of the packets (see Link), host
// addresses and ephemeral ports are assigned in order, and no two packets
// arrive at the same instant (see Network), so that everything a packet sets
// off happens before the next one arrives. quic-go and crypto/tls draw from
// crypto/rand (connection IDs, keys, greased transport parameters whose
// length changes packet sizes): seed it too with
// testing/cryptotest.SetGlobalRandom, and NewPair's certificate is derived
// from PairConfig.Seed. Then a seed gives the same timeline, event for event
// and nanosecond for nanosecond, run after run (integration_test's
// TestSimDeterminism checks it, under the race detector too).
//
// What remains is scheduling inside one instant: goroutines of quicx and
// quic-go that run at the same simulated instant may interleave differently,
// and where that changes what goes into a packet (whether a stream's last
// data and its FIN share one, or an ACK rides with data), the runs diverge
// from there on. Handshakes, timeouts, keep-alives, migrations and closes
// repeat exactly; a bulk transfer under loss repeats its outcome (the
// bytes delivered) but not always its timing. The race detector, which
// shuffles goroutine scheduling on purpose, makes such divergence likelier.
// Timelines of different objects at the same instant may also interleave
// differently: compare them per object, as a Watcher records them.
package quicxtest
