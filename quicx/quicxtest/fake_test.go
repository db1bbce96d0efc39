package quicxtest_test

import (
	"errors"
	"slices"
	"testing"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

func TestReceiveCompletion(t *testing.T) {
	ev, c := quicxtest.NewReceive(10, quicx.ReceiveFin, []byte("abc"), []byte("de"))
	if ev.AbsoluteOffset != 10 || ev.TotalLength() != 5 || ev.Flags != quicx.ReceiveFin {
		t.Fatalf("event %v", ev)
	}
	if _, ok := c.Completed(); ok {
		t.Fatal("completed before Complete")
	}
	ev.Complete(9) // clamped to the bytes indicated, as quicx does
	ev.Complete(1) // ignored
	<-c.Done()
	if n, ok := c.Completed(); !ok || n != 5 {
		t.Errorf("completed %d, %v", n, ok)
	}
}

func TestDecision(t *testing.T) {
	info := quicx.NewConnectionInfo{ServerName: "example", NegotiatedALPN: "h3"}
	ev, d := quicxtest.NewConnectionEvent(info, nil)
	if ev.Info.ServerName != "example" {
		t.Fatal(ev)
	}
	if err := ev.Accept(nil); !errors.Is(err, quicx.ErrInvalidParameter) {
		t.Errorf("Accept(nil): %v", err)
	}
	select {
	case <-d.Done():
		t.Fatal("a refused Accept counted as the answer")
	default:
	}
	cfg := new(quicx.Configuration)
	if err := ev.Accept(cfg); err != nil {
		t.Fatal(err)
	}
	if err := ev.Accept(cfg); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("second Accept: %v", err)
	}
	ev.Reject(errors.New("late"))
	if got, ok := d.Accepted(); !ok || got != cfg {
		t.Errorf("Accepted() = %v, %v", got, ok)
	}
	if _, ok := d.Rejected(); ok {
		t.Error("a late Reject overrode the Accept")
	}

	ev, d = quicxtest.NewConnectionEvent(info, nil)
	ev.Reject(nil)
	if reason, ok := d.Rejected(); !ok || reason == nil {
		t.Errorf("Rejected() = %v, %v", reason, ok)
	}
	if err := ev.Accept(cfg); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("Accept after Reject: %v", err)
	}
}

func TestCertificateDecision(t *testing.T) {
	cert, err := quicxtest.NewCertificate(1, "example")
	if err != nil {
		t.Fatal(err)
	}
	ev, d := quicxtest.NewPeerCertificateEvent(cert.Leaf, nil, quicx.ErrBadCertificate)
	if !errors.Is(ev.DeferredStatus, quicx.ErrBadCertificate) || ev.Certificate.Subject.CommonName != "example" {
		t.Fatal(ev)
	}
	ev.Complete(false)
	ev.Complete(true)
	if accept, ok := d.Completed(); !ok || accept {
		t.Errorf("Completed() = %v, %v", accept, ok)
	}
}

func TestNewCertificateIsDeterministic(t *testing.T) {
	a, err := quicxtest.NewCertificate(7, "server", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := quicxtest.NewCertificate(7, "server", "10.0.0.1")
	c, _ := quicxtest.NewCertificate(8, "server", "10.0.0.1")
	if !slices.Equal(a.Certificate[0], b.Certificate[0]) || slices.Equal(a.Certificate[0], c.Certificate[0]) {
		t.Error("certificates are not a function of the seed")
	}
	if err := a.Leaf.VerifyHostname("10.0.0.1"); err != nil {
		t.Error(err)
	}
}

func TestFakeStream(t *testing.T) {
	s := quicxtest.NewFakeStream(4, 8)
	c1 := s.Receive([]byte("ping"), false)
	c2 := s.Receive(nil, true)
	r1 := (<-s.Events()).(*quicx.Receive)
	r2 := (<-s.Events()).(*quicx.Receive)
	if r1.AbsoluteOffset != 0 || r2.AbsoluteOffset != 4 || r2.Flags != quicx.ReceiveFin || len(r2.Buffers) != 0 {
		t.Fatalf("%v %v", r1, r2)
	}
	r1.Complete(4)
	s.ReceiveComplete(0) // completes the latest Receive, as Stream.ReceiveComplete does
	if n, _ := c1.Completed(); n != 4 {
		t.Errorf("first receive completed %d", n)
	}
	if _, ok := c2.Completed(); !ok {
		t.Error("ReceiveComplete did not complete the pending receive")
	}
	if err := s.Send([][]byte{[]byte("po"), []byte("ng")}, quicx.SendFin, "ctx"); err != nil {
		t.Fatal(err)
	}
	if id, err := s.ID(); err != nil || id != 4 {
		t.Errorf("ID() = %d, %v", id, err)
	}
	_ = s.Shutdown(quicx.StreamShutdownAbortReceive, 9)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(nil, quicx.SendNone, nil); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("Send after Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, quicx.ErrInvalidState) {
		t.Errorf("second Close: %v", err)
	}
	want := []string{"ReceiveComplete(0)", `Send("pong", FIN)`, "ID()", "Shutdown(ABORT_RECEIVE, 0x9)", "Close()", `Send("", NONE)`, "Close()"}
	if got := s.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls %q\nwant  %q", got, want)
	}
	if got := s.Sends(); len(got) != 1 || got[0].Context != "ctx" || string(s.Sent()) != "pong" {
		t.Errorf("sends %+v", got)
	}
	s.End(nil)
	if ev, ok := <-s.Events(); !ok || ev.String() != "StreamShutdownComplete{appClose=false}" {
		t.Errorf("final event %v", ev)
	}
	if _, ok := <-s.Events(); ok {
		t.Error("channel not closed after End")
	}
}

func TestDrainAnswersWhatWaits(t *testing.T) {
	nc, decision := quicxtest.NewConnectionEvent(quicx.NewConnectionInfo{}, nil)
	got := quicxtest.Drain(quicxtest.Feed[quicx.ListenerEvent](nc, &quicx.ListenerStopComplete{}))
	if _, rejected := decision.Rejected(); !rejected || len(got) != 2 {
		t.Errorf("Drain: %q, rejected %v", got, rejected)
	}
	pc, verdict := quicxtest.NewPeerCertificateEvent(nil, nil, nil)
	quicxtest.Drain(quicxtest.Feed[quicx.ConnectionEvent](pc))
	if accept, ok := verdict.Completed(); !ok || accept {
		t.Errorf("certificate: %v %v", accept, ok)
	}
	r, c := quicxtest.NewReceive(0, quicx.ReceiveNone, []byte("xyz"))
	quicxtest.Drain(quicxtest.Feed[quicx.StreamEvent](r))
	if n, _ := c.Completed(); n != 3 {
		t.Errorf("receive completed %d", n)
	}
}
