package quicxtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// Two hosts and a link: what one sends, the other receives a latency later.
// Inside a testing/synctest bubble the latency is simulated time.
func ExampleNetwork() {
	n, err := quicxtest.NewNetwork(quicxtest.NetworkConfig{Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	a, b := n.Host("a"), n.Host("b")
	// One way: 2 ms and 10 Mbit/s. Loss, Reorder and Duplicate would make it lossy.
	_ = n.SetLink(a, b, quicxtest.Link{Latency: 2 * time.Millisecond, Bandwidth: 10e6})

	pa, _ := a.ListenPacket(netip.AddrPort{})
	pb, _ := b.ListenPacket(netip.MustParseAddrPort("0.0.0.0:9"))
	defer pa.Close()
	defer pb.Close()
	_, _ = pa.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.2:9")))
	buf := make([]byte, 1500)
	m, from, _ := pb.ReadFrom(buf)
	fmt.Printf("b got %q from %v\n", buf[:m], from)
	st := n.Stats(a, b)
	fmt.Println("sent", st.Sent, "delivered", st.Delivered)
	// Output:
	// b got "hello" from 10.0.0.1:49152
	// sent 1 delivered 1
}

// A host is a quicx.Network: a registration pointed at it opens its sockets
// and resolves names there.
func ExampleHost() {
	n, _ := quicxtest.NewNetwork(quicxtest.NetworkConfig{})
	defer n.Close()
	server := n.Host("server")
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "sim", Network: server})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()
	ips, _ := n.Host("client").LookupNetIP(context.Background(), "ip", "server")
	fmt.Println("server is at", ips)
	// Output:
	// server is at [10.0.0.1]
}

// After a NAT rebinding, the host's packets leave from a new port.
func ExampleHost_Rebind() {
	n, _ := quicxtest.NewNetwork(quicxtest.NetworkConfig{})
	defer n.Close()
	a, b := n.Host("a"), n.Host("b")
	pa, _ := a.ListenPacket(netip.AddrPort{})
	pb, _ := b.ListenPacket(netip.MustParseAddrPort("0.0.0.0:9"))
	defer pa.Close()
	defer pb.Close()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.2:9"))
	buf := make([]byte, 100)
	for range 2 {
		_, _ = pa.WriteTo([]byte("x"), to)
		_, from, _ := pb.ReadFrom(buf)
		fmt.Println("from", from)
		a.Rebind()
	}
	// Output:
	// from 10.0.0.1:49152
	// from 10.0.0.1:49153
}

// A connected pair, in real time here (pass t to NewPair inside a
// testing/synctest bubble instead).
func ExampleOpenPair() {
	p, err := quicxtest.OpenPair(quicxtest.PairConfig{Settings: quicx.Settings{PeerBidiStreamCount: 1}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	for _, o := range p.Client.Events.Observed() {
		fmt.Println("client:", o.Text)
	}
	for _, o := range p.Server.Events.Observed() {
		fmt.Println("server:", o.Text)
	}

	s, _ := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
	w := quicxtest.NewWatcher(s.Events(), quicxtest.CompleteReceives())
	_ = s.Send([][]byte{[]byte("hi")}, quicx.SendStart|quicx.SendFin, nil)
	peer, _ := quicxtest.Await[*quicx.PeerStreamStarted](p.Server.Events)
	_ = peer.Stream.Shutdown(quicx.StreamShutdownGraceful, 0) // nothing to send back
	data, _, _ := quicxtest.ReadAll(peer.Stream.Events())
	fmt.Printf("server read %q\n", data)
	_ = s.Close()
	<-w.Done()
	// Output:
	// client: DatagramStateChanged{send=false max=0}
	// client: Connected{resumed=false alpn="quicxtest"}
	// server: Connected{resumed=false alpn="quicxtest"}
	// server read "hi"
}

// Expect checks a partial sequence: other events may come between.
func ExampleWatcher_Expect() {
	w := quicxtest.NewWatcher(quicxtest.Feed[quicx.ConnectionEvent](
		&quicx.DatagramStateChanged{},
		&quicx.Connected{NegotiatedALPN: "h3"},
		&quicx.ShutdownInitiatedByPeer{ErrorCode: 0x100},
		&quicx.ConnectionShutdownComplete{HandshakeCompleted: true},
	))
	evs, err := w.Expect(
		quicxtest.Match(func(e *quicx.Connected) bool { return e.NegotiatedALPN == "h3" }),
		quicxtest.Equal(&quicx.ConnectionShutdownComplete{HandshakeCompleted: true}),
	)
	fmt.Println(evs, err)
	fmt.Println(w.ExpectClosed())
	// Output:
	// [Connected{resumed=false alpn="h3"} ConnectionShutdownComplete{handshake=true appClose=false}] <nil>
	// <nil>
}

// ExpectExactly fails on the first event that does not match; the error
// carries the timeline seen so far.
func ExampleWatcher_ExpectExactly() {
	w := quicxtest.NewWatcher(quicxtest.Feed[quicx.StreamEvent](
		&quicx.StartComplete{ID: 0},
		&quicx.PeerSendAborted{ErrorCode: 9},
	))
	_, err := w.ExpectExactly(
		quicxtest.Type[*quicx.StartComplete](),
		quicxtest.Type[*quicx.PeerSendShutdown](),
	)
	var ee *quicxtest.ExpectError
	if errors.As(err, &ee) && errors.Is(err, quicxtest.ErrMismatch) {
		fmt.Println("got:", ee.Got)
		fmt.Println("missing:", ee.Missing)
		fmt.Println("failed in", ee.Op)
	}
	// Output:
	// got: *quicx.PeerSendAborted is not a *quicx.PeerSendShutdown
	// missing: [*quicx.PeerSendShutdown]
	// failed in ExpectExactly
}

// A Receive built by NewReceive reports how much the consumer completed.
func ExampleNewReceive() {
	ev, done := quicxtest.NewReceive(0, quicx.ReceiveFin, []byte("data"))
	consume := func(e *quicx.Receive) { e.Complete(2) } // a consumer that takes half
	consume(ev)
	n, ok := done.Completed()
	fmt.Println(n, ok)
	// Output:
	// 2 true
}

// A NewConnection built by NewConnectionEvent reports the listener handler's
// decision.
func ExampleNewConnectionEvent() {
	ev, decision := quicxtest.NewConnectionEvent(quicx.NewConnectionInfo{ServerName: "blocked.example"}, nil)
	handle := func(e *quicx.NewConnection) { // the listener handler under test
		if strings.HasPrefix(e.Info.ServerName, "blocked.") {
			e.Reject(errors.New("blocked"))
		}
	}
	handle(ev)
	reason, rejected := decision.Rejected()
	fmt.Println(rejected, reason)
	// Output:
	// true blocked
}

// A PeerCertificateReceived built by NewPeerCertificateEvent reports the
// handler's verdict.
func ExampleNewPeerCertificateEvent() {
	cert, _ := quicxtest.NewCertificate(1, "peer.example")
	ev, verdict := quicxtest.NewPeerCertificateEvent(cert.Leaf, nil, quicx.ErrExpiredCertificate)
	ev.Complete(!errors.Is(ev.DeferredStatus, quicx.ErrExpiredCertificate))
	fmt.Println(verdict.Completed())
	// Output:
	// false true
}

// Feed hands a consumer a whole object life on a closed channel.
func ExampleFeed() {
	for ev := range quicxtest.Feed[quicx.ListenerEvent](&quicx.ListenerStopComplete{AppCloseInProgress: true}) {
		fmt.Println(ev)
	}
	// Output:
	// ListenerStopComplete{appClose=true}
}

// ReadAll collects a stream's data, completing each Receive.
func ExampleReadAll() {
	r1, _ := quicxtest.NewReceive(0, quicx.ReceiveNone, []byte("hel"))
	r2, _ := quicxtest.NewReceive(3, quicx.ReceiveFin, []byte("lo"))
	data, timeline, err := quicxtest.ReadAll(quicxtest.Feed[quicx.StreamEvent](r1, r2, &quicx.PeerSendShutdown{}))
	fmt.Printf("%q %q %v\n", data, timeline, err)
	// Output:
	// "hello" ["Receive{off=0 len=3 flags=NONE}" "Receive{off=3 len=2 flags=FIN}" "PeerSendShutdown"] <nil>
}

// A Recorder sits between an object and its consumer and records the events
// and the consumer's answers.
func ExampleRecorder() {
	rcv, _ := quicxtest.NewReceive(0, quicx.ReceiveFin, []byte("abc"))
	real := quicxtest.Feed[quicx.StreamEvent](rcv, &quicx.PeerSendShutdown{}) // a real stream's Events() in practice
	rec := quicxtest.NewRecorder()
	for ev := range quicxtest.Record(rec, "stream", real) {
		if r, ok := ev.(*quicx.Receive); ok {
			r.Complete(r.TotalLength())
		}
	}
	rec.Wait()
	track, _ := rec.Recording().Track("stream")
	for _, e := range track.Events {
		fmt.Println(e.Type, e.Answer)
	}
	// Output:
	// Receive Complete(3)
	// PeerSendShutdown no answer
}

// NewReplay feeds a recorded track to a consumer.
func ExampleNewReplay() {
	const recorded = `{"version": 1, "tracks": [{"name": "client", "kind": "connection", "closed": true, "events": [
		{"at": 20000000, "type": "Connected", "fields": {"NegotiatedALPN": "h3"}},
		{"at": 90000000, "type": "ShutdownInitiatedByTransport", "fields": {"Status": {"status": 62}, "ErrorCode": 1}},
		{"at": 90000000, "type": "ConnectionShutdownComplete", "fields": {"HandshakeCompleted": true}}]}]}`
	rec, err := quicxtest.ReadRecording(strings.NewReader(recorded))
	if err != nil {
		fmt.Println(err)
		return
	}
	replay, err := quicxtest.NewReplay[quicx.ConnectionEvent](context.Background(), rec, "client", quicxtest.ReplayOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for ev := range replay.Events() {
		if e, ok := ev.(*quicx.ShutdownInitiatedByTransport); ok {
			fmt.Println("idle:", errors.Is(e.Status, quicx.ErrConnectionIdle))
		}
		fmt.Println(ev)
	}
	// Output:
	// Connected{resumed=false alpn="h3"}
	// idle: true
	// ShutdownInitiatedByTransport{status=CONNECTION_IDLE code=0x1}
	// ConnectionShutdownComplete{handshake=true appClose=false}
}

// NewCertificate derives a certificate from a seed: the same seed, the same
// certificate.
func ExampleNewCertificate() {
	a, _ := quicxtest.NewCertificate(42, "server")
	b, _ := quicxtest.NewCertificate(42, "server")
	fmt.Println(a.Leaf.Subject.CommonName, a.Leaf.Equal(b.Leaf), a.Leaf.PublicKeyAlgorithm)
	// Output:
	// server true Ed25519
}
