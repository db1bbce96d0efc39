// Package quicxtest helps test code that consumes quicx events.
//
// It has five parts:
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
//   - A Recorder that writes the event timeline of real objects as JSON, and
//     Replay, which feeds a recorded timeline to a consumer: record once against
//     a real peer, test forever offline.
//
// # Determinism
//
// The network's random decisions come from a source per flow (source and
// destination address), seeded from NetworkConfig.Seed, and every packet draws
// the same number of values whatever the link's settings. Host addresses and
// ephemeral ports are assigned in order. Under testing/synctest the clock is
// simulated too, so the same seed gives the same per-object event timeline.
// Events of different objects that happen at the same simulated instant may
// interleave differently; compare timelines per object.
package quicxtest
