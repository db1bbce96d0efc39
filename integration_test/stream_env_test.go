package integration_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// A stream scenario is written once against streamEnv and runs over both
// networks of the "Must show": real UDP on loopback, and quicxtest's
// in-memory network losing 5 % of the packets in each direction, under
// testing/synctest.

// simLossyLink is the in-memory path of the stream scenarios: 5 % loss each
// way, a 20 ms round trip and 20 Mbit/s.
var simLossyLink = quicxtest.Link{Latency: 10 * time.Millisecond, Bandwidth: 20e6, Loss: 0.05}

// streamEnv is one connected client and server, over one of the networks.
type streamEnv struct {
	t              *testing.T
	Client, Server quicxtest.Endpoint
	pair           *quicxtest.Pair // nil on loopback
	origin         time.Time       // the stream watchers' timelines count from it
}

// envStream is a stream and the Watcher that consumes its events.
type envStream struct {
	S *quicx.Stream
	W *quicxtest.Watcher[quicx.StreamEvent]
}

// overBothNetworks runs scenario as the subtests "loopback" and "sim5%loss",
// with settings on both ends. seed makes the simulated run repeatable.
func overBothNetworks(t *testing.T, settings quicx.Settings, seed uint64, scenario func(e *streamEnv)) {
	t.Run("loopback", func(t *testing.T) {
		f := newFixture(t, settings)
		origin := time.Now()
		client := f.dial()
		server := f.serverConn()
		e := &streamEnv{t: t, origin: origin,
			Client: quicxtest.Endpoint{Conn: client, Events: quicxtest.NewWatcher(client.Events(), quicxtest.Since(origin))},
			Server: quicxtest.Endpoint{Conn: server, Events: quicxtest.NewWatcher(server.Events(), quicxtest.Since(origin))},
		}
		t.Cleanup(func() { // before the fixture's cleanup, after the streams'
			for _, ep := range []quicxtest.Endpoint{e.Client, e.Server} {
				_ = ep.Conn.Close()
				<-ep.Events.Done()
			}
		})
		for _, ep := range []quicxtest.Endpoint{e.Client, e.Server} {
			_, err := quicxtest.Await[*quicx.Connected](ep.Events)
			must(t, err)
		}
		scenario(e)
	})
	t.Run("sim5%loss", func(t *testing.T) {
		simTest(t, func(t *testing.T) {
			cryptotest.SetGlobalRandom(t, seed)
			p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: seed, Link: simLossyLink, Settings: settings})
			t.Cleanup(func() {
				up, down := p.Network.Stats(p.ClientHost, p.ServerHost), p.Network.Stats(p.ServerHost, p.ClientHost)
				t.Logf("packets lost: client→server %d of %d, server→client %d of %d", up.Lost, up.Sent, down.Lost, down.Sent)
				if up.Lost+down.Lost == 0 {
					t.Error("the link lost no packet: pick a seed whose run shows the scenario under loss")
				}
			})
			scenario(&streamEnv{t: t, Client: p.Client, Server: p.Server, pair: p, origin: p.Origin()})
		})
	})
}

// sim reports whether the scenario runs on the in-memory network.
func (e *streamEnv) sim() bool { return e.pair != nil }

// settle waits, on the in-memory network, until nothing in the bubble can run
// without the clock moving: everything already on its way has happened. On
// loopback it does nothing, so what it guards may only make a test pass there.
func (e *streamEnv) settle() {
	if e.sim() {
		synctest.Wait()
	}
}

// watch starts watching s; the stream is closed and its events read to the
// end at the test's cleanup.
func (e *streamEnv) watch(s *quicx.Stream, opts ...quicxtest.WatchOption) envStream {
	w := quicxtest.NewWatcher(s.Events(), append([]quicxtest.WatchOption{quicxtest.Since(e.origin)}, opts...)...)
	e.t.Cleanup(func() {
		_ = s.Close()
		<-w.Done()
	})
	return envStream{S: s, W: w}
}

// open opens a client stream and watches it.
func (e *streamEnv) open(flags quicx.StreamOpenFlags) envStream {
	e.t.Helper()
	s, err := e.Client.Conn.OpenStream(flags)
	must(e.t, err)
	return e.watch(s)
}

// accept waits for the next stream the client starts, skipping the server's
// other connection events, and watches it.
func (e *streamEnv) accept(opts ...quicxtest.WatchOption) envStream {
	e.t.Helper()
	ps, err := quicxtest.Await[*quicx.PeerStreamStarted](e.Server.Events)
	must(e.t, err)
	return e.watch(ps.Stream, opts...)
}

// exactly checks that the next events of w are ms, one for one.
func (es envStream) exactly(t testing.TB, ms ...quicxtest.Matcher) []quicx.StreamEvent {
	t.Helper()
	evs, err := es.W.ExpectExactly(ms...)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// ends checks that the next events of w are ms, one for one, and that the
// channel closes after them: the last of ms is the stream's only final event.
func (es envStream) ends(t testing.TB, ms ...quicxtest.Matcher) []quicx.StreamEvent {
	t.Helper()
	evs := es.exactly(t, ms...)
	if err := es.W.ExpectClosed(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// receive takes the next event, which must be a Receive at offset with flags,
// checks its bytes and completes n of them.
func (es envStream) receive(t testing.TB, offset uint64, flags quicx.ReceiveFlags, want []byte, n uint64) {
	t.Helper()
	evs := es.exactly(t, quicxtest.Type[*quicx.Receive]())
	r := evs[0].(*quicx.Receive)
	if got := bytes.Join(r.Buffers, nil); r.AbsoluteOffset != offset || r.Flags != flags || !bytes.Equal(got, want) {
		t.Fatalf("got %v with %d bytes, want offset %d flags %v and %d bytes (equal: %v)",
			r, len(got), offset, flags, len(want), bytes.Equal(got, want))
	}
	r.Complete(n)
}

// readAll completes every Receive in full until a Receive carries the FIN,
// checking that each starts where the previous ended, and returns the bytes.
func (es envStream) readAll(t testing.TB) []byte {
	t.Helper()
	var got []byte
	for {
		evs := es.exactly(t, quicxtest.Type[*quicx.Receive]())
		r := evs[0].(*quicx.Receive)
		if r.AbsoluteOffset != uint64(len(got)) {
			t.Fatalf("receive at offset %d after %d bytes", r.AbsoluteOffset, len(got))
		}
		got = append(got, bytes.Join(r.Buffers, nil)...)
		fin := r.Flags&quicx.ReceiveFin != 0
		r.Complete(r.TotalLength())
		if fin {
			return got
		}
	}
}

// rest reads the stream's events until its channel closes and returns their
// texts, completing no Receive: for the sequences whose order the test cannot
// fix.
func (es envStream) rest(t testing.TB) []string {
	t.Helper()
	var out []string
	for {
		ev, err := es.W.Next()
		if errors.Is(err, quicxtest.ErrClosed) {
			return out
		}
		must(t, err)
		out = append(out, ev.String())
	}
}

// payload returns n reproducible bytes for seed.
func payload(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// Matchers of the stream events the scenarios expect over and over.
var (
	mPeerSendShutdown = quicxtest.Type[*quicx.PeerSendShutdown]()
	mGracefulSend     = quicxtest.Equal(&quicx.SendShutdownComplete{Graceful: true})
	mAbortedSend      = quicxtest.Equal(&quicx.SendShutdownComplete{Graceful: false})
	mStreamDone       = quicxtest.Equal(&quicx.StreamShutdownComplete{})
	mStreamClosed     = quicxtest.Equal(&quicx.StreamShutdownComplete{AppCloseInProgress: true})
)

// mStarted matches a successful StartComplete.
func mStarted(id uint64, accepted bool) quicxtest.Matcher {
	return quicxtest.Equal(&quicx.StartComplete{ID: id, PeerAccepted: accepted})
}

// mSent matches an uncanceled SendComplete of the send with ctx.
func mSent(ctx any) quicxtest.Matcher { return quicxtest.Equal(&quicx.SendComplete{Context: ctx}) }

// quiet checks that the stream raised no event beyond the n it had: on the
// in-memory network after everything on its way has happened (settle).
func (es envStream) quiet(e *streamEnv, n int) {
	e.t.Helper()
	e.settle()
	if got := len(es.W.Events()); got != n {
		e.t.Fatalf("%d events, want %d:\n%s", got, n, es.W.Timeline())
	}
}

// nextReceive takes the next event, which must be a Receive at offset.
func (es envStream) nextReceive(t testing.TB, offset uint64) *quicx.Receive {
	t.Helper()
	r := es.exactly(t, quicxtest.Type[*quicx.Receive]())[0].(*quicx.Receive)
	if r.AbsoluteOffset != offset {
		t.Fatalf("%v, want offset %d", r, offset)
	}
	return r
}
