package quicxtest_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// recordEcho runs the echo handler on a real server stream over the
// simulated network, recording the stream's events, and returns the
// recording and what the client got back.
func recordEcho(t *testing.T, chunks ...string) (*quicxtest.Recording, string) {
	t.Helper()
	p := quicxtest.NewPair(t, quicxtest.PairConfig{
		Link:     quicxtest.Link{Latency: 10 * time.Millisecond},
		Settings: quicx.Settings{PeerBidiStreamCount: 1},
	})
	c, err := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
	if err != nil {
		t.Fatal(err)
	}
	cw := quicxtest.NewWatcher(c.Events(), quicxtest.CompleteReceives())
	send := func(i int) {
		flags := quicx.SendNone
		if i == 0 {
			flags |= quicx.SendStart
		}
		if i == len(chunks)-1 {
			flags |= quicx.SendFin
		}
		if err := c.Send([][]byte{[]byte(chunks[i])}, flags, nil); err != nil {
			t.Fatal(err)
		}
	}
	send(0)
	started, err := quicxtest.Await[*quicx.PeerStreamStarted](p.Server.Events)
	if err != nil {
		t.Fatal(err)
	}
	rec := quicxtest.NewRecorder()
	events := quicxtest.Record(rec, "echo", started.Stream.Events())
	done := make(chan error, 1)
	go func() {
		_, err := echo(context.Background(), started.Stream, events)
		done <- err
	}()
	for i := 1; i < len(chunks); i++ {
		time.Sleep(50 * time.Millisecond) // the scenario: one chunk every 50 ms
		send(i)
	}
	if _, err := cw.Expect(quicxtest.Type[*quicx.StreamShutdownComplete]()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.Wait()
	_ = c.Close()
	<-cw.Done()
	var buf bytes.Buffer
	if err := rec.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := quicxtest.ReadRecording(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return got, string(cw.Received())
}

// recordFlag regenerates testdata/echo.json, the recording Example_handlerWithReplay
// replays: go test -run TestEchoRecording -record.
var recordFlag = flag.Bool("record", false, "rewrite testdata/echo.json from a run over the simulated network")

// TestEchoRecording records the echo handler against a real client over the
// simulated network (-record writes it to testdata/echo.json), and checks
// that the handler does on that stored recording what it does on a fresh one:
// echo the same bytes, answering every event as it was answered when
// recorded. (The two need not be identical event for event: whether the
// client's last data and its FIN travel in one packet or two depends on
// goroutine scheduling.)
func TestEchoRecording(t *testing.T) {
	var fresh *quicxtest.Recording
	synctest.Test(t, func(t *testing.T) {
		fresh, _ = recordEcho(t, "hello ", "world")
	})
	if *recordFlag {
		var buf bytes.Buffer
		if err := fresh.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/echo.json", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open("testdata/echo.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stored, err := quicxtest.ReadRecording(f)
	if err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]*quicxtest.Recording{"fresh": fresh, "stored": stored} {
		replay, err := quicxtest.NewReplay[quicx.StreamEvent](context.Background(), rec, "echo", quicxtest.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fake := quicxtest.NewFakeStream(0, 0)
		if _, err := echo(context.Background(), fake, replay.Events()); err != nil {
			t.Fatal(err)
		}
		if got := string(fake.Sent()); got != "hello world" {
			t.Errorf("%s recording: echoed %q", name, got)
		}
		if d := replay.Divergences(); len(d) > 0 {
			t.Errorf("%s recording: %q", name, d)
		}
	}
}

func TestRecordThenReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec, echoed := recordEcho(t, "hello ", "world")
		if echoed != "hello world" {
			t.Fatalf("echoed %q", echoed)
		}
		track, ok := rec.Track("echo")
		if !ok || track.Kind != quicxtest.KindStream || !track.Closed {
			t.Fatalf("track %+v", track)
		}
		var types []string
		for _, e := range track.Events {
			types = append(types, e.Type)
			if e.Type == "Receive" && e.Answer == nil {
				t.Errorf("the Receive at %v has no recorded Complete", e.At)
			}
		}
		if types[0] != "Receive" || types[len(types)-1] != "StreamShutdownComplete" || !slices.Contains(types, "PeerSendShutdown") {
			t.Errorf("recorded %v", types)
		}

		// Replay it, paced, into the same handler with a fake stream, and record
		// the replay: it must reproduce the recording, times and answers
		// included.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		replay, err := quicxtest.NewReplay[quicx.StreamEvent](ctx, rec, "echo", quicxtest.ReplayOptions{Paced: true})
		if err != nil {
			t.Fatal(err)
		}
		again := quicxtest.NewRecorder()
		fake := quicxtest.NewFakeStream(0, 0)
		n, err := echo(ctx, fake, quicxtest.Record(again, "echo", replay.Events()))
		if err != nil || n != len("hello world") || string(fake.Sent()) != "hello world" {
			t.Fatalf("echo over the replay: %d, %v, sent %q", n, err, fake.Sent())
		}
		<-replay.Done()
		if d := replay.Divergences(); len(d) > 0 {
			t.Errorf("divergences: %v", d)
		}
		if got := fake.Calls(); got[len(got)-1] != "Close()" {
			t.Errorf("calls %v", got)
		}
		again.Wait()
		replayed, _ := again.Recording().Track("echo")
		if len(replayed.Events) != len(track.Events) {
			t.Fatalf("replayed %d events, recorded %d", len(replayed.Events), len(track.Events))
		}
		for i, e := range track.Events {
			r := replayed.Events[i]
			if r.At != e.At || r.Text != e.Text || r.Answer.String() != e.Answer.String() {
				t.Errorf("event %d: replayed %v %s (%s), recorded %v %s (%s)", i, r.At, r.Text, r.Answer, e.At, e.Text, e.Answer)
			}
		}
	})
}

func TestReplayDivergence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec, _ := recordEcho(t, "abc")
		replay, err := quicxtest.NewReplay[quicx.StreamEvent](context.Background(), rec, "echo", quicxtest.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// A consumer that completes none of the data.
		for ev := range replay.Events() {
			if r, ok := ev.(*quicx.Receive); ok {
				r.Complete(0)
			}
		}
		d := replay.Divergences()
		if len(d) == 0 || !strings.Contains(d[0], "recorded Complete(3), replay got Complete(0)") {
			t.Errorf("divergences %q", d)
		}
		if _, err := quicxtest.NewReplay[quicx.ConnectionEvent](context.Background(), rec, "echo", quicxtest.ReplayOptions{}); !errors.Is(err, quicxtest.ErrKindMismatch) {
			t.Errorf("a stream track replayed as a connection: %v", err)
		}
		if _, err := quicxtest.NewReplay[quicx.StreamEvent](context.Background(), rec, "nope", quicxtest.ReplayOptions{}); err == nil {
			t.Error("an unknown track was replayed")
		}
	})
}

// Every event type survives the trip through JSON.
func TestRecordingRoundTripsEveryEvent(t *testing.T) {
	cert, err := quicxtest.NewCertificate(3, "peer")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort("192.0.2.1:443")
	info := quicx.NewConnectionInfo{QUICVersion: 1, LocalAddress: addr, RemoteAddress: addr, ServerName: "s", ClientALPNs: []string{"a", "b"}, NegotiatedALPN: "b"}
	nc, _ := quicxtest.NewConnectionEvent(info, nil)
	pc, _ := quicxtest.NewPeerCertificateEvent(cert.Leaf, []*x509.Certificate{cert.Leaf}, quicx.ErrBadCertificate)
	rcv, _ := quicxtest.NewReceive(7, quicx.ReceiveFin|quicx.Receive0RTT, []byte("ab"), []byte("c"))
	listener := []quicx.ListenerEvent{nc, &quicx.ListenerStopComplete{AppCloseInProgress: true}}
	conn := []quicx.ConnectionEvent{
		&quicx.Connected{SessionResumed: true, NegotiatedALPN: "b"},
		&quicx.ShutdownInitiatedByTransport{Status: fmt.Errorf("wrapped: %w", quicx.ErrConnectionIdle), ErrorCode: 1},
		&quicx.ShutdownInitiatedByPeer{ErrorCode: 9},
		&quicx.ConnectionShutdownComplete{HandshakeCompleted: true, AppCloseInProgress: true},
		&quicx.LocalAddressChanged{Address: addr},
		&quicx.PeerAddressChanged{Address: addr},
		&quicx.PeerStreamStarted{Flags: quicx.StreamOpenUnidirectional},
		&quicx.StreamsAvailable{BidirectionalCount: 3, UnidirectionalCount: 4},
		&quicx.PeerNeedsStreams{Bidirectional: true},
		&quicx.DatagramStateChanged{SendEnabled: true, MaxSendLength: 1200},
		&quicx.DatagramReceived{Buffer: []byte{1, 2}, Flags: quicx.Receive0RTT},
		&quicx.DatagramSendStateChanged{Context: "tag", State: quicx.DatagramSendAcknowledged},
		&quicx.Resumed{ResumptionState: []byte("state")},
		&quicx.ResumptionTicketReceived{ResumptionTicket: []byte("ticket")},
		pc,
	}
	stream := []quicx.StreamEvent{
		&quicx.StartComplete{Status: quicx.ErrStreamLimitReached, ID: 8, PeerAccepted: true},
		rcv,
		&quicx.SendComplete{Canceled: true, Context: "ctx"},
		&quicx.PeerSendShutdown{},
		&quicx.PeerSendAborted{ErrorCode: 5},
		&quicx.PeerReceiveAborted{ErrorCode: 6},
		&quicx.SendShutdownComplete{Graceful: true},
		&quicx.IdealSendBufferSize{ByteCount: 1 << 20},
		&quicx.PeerAccepted{},
		&quicx.CancelOnLoss{ErrorCode: 2},
		&quicx.ReceiveBufferNeeded{BufferLengthNeeded: 100},
		&quicx.StreamShutdownComplete{ConnectionShutdown: true, ConnectionShutdownByApp: true, ConnectionErrorCode: 3, ConnectionCloseStatus: quicx.ErrAborted},
	}
	rec := quicxtest.NewRecorder()
	drainAll := func(ch any) {
		switch c := ch.(type) {
		case <-chan quicx.ListenerEvent:
			for range c {
			}
		case <-chan quicx.ConnectionEvent:
			for range c {
			}
		case <-chan quicx.StreamEvent:
			for range c {
			}
		}
	}
	drainAll(quicxtest.Record(rec, "l", quicxtest.Feed(listener...)))
	drainAll(quicxtest.Record(rec, "c", quicxtest.Feed(conn...)))
	drainAll(quicxtest.Record(rec, "s", quicxtest.Feed(stream...)))
	rec.Wait()
	var buf bytes.Buffer
	if err := rec.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := quicxtest.ReadRecording(&buf)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, want []string, got []fmt.Stringer) {
		t.Helper()
		var gs []string
		for _, g := range got {
			gs = append(gs, g.String())
		}
		if !slices.Equal(gs, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, gs, want)
		}
	}
	ctx := context.Background()
	lr, err := quicxtest.NewReplay[quicx.ListenerEvent](ctx, back, "l", quicxtest.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := quicxtest.NewReplay[quicx.ConnectionEvent](ctx, back, "c", quicxtest.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sr, err := quicxtest.NewReplay[quicx.StreamEvent](ctx, back, "s", quicxtest.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var lgot, cgot, sgot []fmt.Stringer
	var lwant, cwant, swant []string
	for ev := range lr.Events() {
		lgot = append(lgot, ev)
	}
	for _, e := range listener {
		lwant = append(lwant, e.String())
	}
	for ev := range cr.Events() {
		cgot = append(cgot, ev)
		if p, ok := ev.(*quicx.PeerCertificateReceived); ok {
			if !p.Certificate.Equal(cert.Leaf) || len(p.Chain) != 1 || !errors.Is(p.DeferredStatus, quicx.ErrBadCertificate) {
				t.Errorf("certificate event %+v", p)
			}
		}
		if d, ok := ev.(*quicx.DatagramSendStateChanged); ok && d.Context != "tag" {
			t.Errorf("context %#v", d.Context)
		}
	}
	for _, e := range conn {
		cwant = append(cwant, e.String())
	}
	for ev := range sr.Events() {
		sgot = append(sgot, ev)
		if r, ok := ev.(*quicx.Receive); ok {
			r.Complete(r.TotalLength())
		}
	}
	for _, e := range stream {
		swant = append(swant, e.String())
	}
	check("listener", lwant, lgot)
	check("connection", cwant, cgot)
	check("stream", swant, sgot)
	// The wrapped status came back as the bare Status.
	if st := cgot[1].(*quicx.ShutdownInitiatedByTransport).Status; st != quicx.ErrConnectionIdle {
		t.Errorf("status %#v", st)
	}
}
