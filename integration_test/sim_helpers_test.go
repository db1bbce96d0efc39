package integration_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// This file holds the helpers of the tests that run on quicxtest's in-memory
// network under testing/synctest (sim_*_test.go): their timeouts run in
// simulated time, so seconds of QUIC take milliseconds.

// simTest runs f in a synctest bubble and logs how much simulated time it
// covered and how much real time that took.
func simTest(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	realStart := time.Now()
	var simulated time.Duration
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		t.Cleanup(func() { simulated = time.Since(start) }) // runs last, after f's cleanups
		f(t)
	})
	t.Logf("simulated %v in %v of real time", simulated, time.Since(realStart).Round(10*time.Microsecond))
}

// simMust fails the test on err.
func simMust(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// simBetween checks that d lies in [lo, hi].
func simBetween(t testing.TB, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s after %v, want %v to %v", what, d, lo, hi)
	}
}

// simSendAll starts s and sends data on it with FIN.
func simSendAll(t testing.TB, s *quicx.Stream, data []byte) {
	t.Helper()
	simMust(t, s.Send([][]byte{data}, quicx.SendStart|quicx.SendFin, nil))
}

// simAwaitStream waits for the next stream the peer of w's connection starts.
func simAwaitStream(t testing.TB, w *quicxtest.Watcher[quicx.ConnectionEvent]) *quicx.Stream {
	t.Helper()
	ev, err := quicxtest.Await[*quicx.PeerStreamStarted](w)
	simMust(t, err)
	return ev.Stream
}

// simUpload sends data with FIN on a new bidirectional client stream of p;
// the server's end answers with a bare FIN and reads to the end. It returns
// the client's stream, a watcher of its events (completing receives), and the
// bytes and event timeline of the server's end.
func simUpload(t testing.TB, p *quicxtest.Pair, data []byte) (*quicx.Stream, *quicxtest.Watcher[quicx.StreamEvent], []byte, []string) {
	t.Helper()
	c, err := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
	simMust(t, err)
	cw := quicxtest.NewWatcher(c.Events(), quicxtest.CompleteReceives())
	simSendAll(t, c, data)
	s := simAwaitStream(t, p.Server.Events)
	simMust(t, s.Shutdown(quicx.StreamShutdownGraceful, 0)) // nothing to send back
	got, timeline, err := quicxtest.ReadAll(s.Events())
	simMust(t, err)
	return c, cw, got, timeline
}

// netipAddrPort parses an address and port.
func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
