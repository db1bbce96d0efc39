package quicxtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

func TestPairConnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Link: quicxtest.Link{Latency: 25 * time.Millisecond}})
		// The handshake, as each side saw it: one round trip for the client,
		// one and a half for the server.
		// (The client's first flight is two packets, and the network delivers
		// packets 1 ns apart: see Network.)
		want := map[string]string{
			"client": "" +
				"   0 +50.000002ms  DatagramStateChanged{send=false max=0}\n" +
				"   1 +50.000002ms  Connected{resumed=false alpn=\"quicxtest\"}\n",
			"server": "" +
				"   0 +75.000002ms  Connected{resumed=false alpn=\"quicxtest\"}\n",
			"listener": "" +
				"   0 +25.000001ms  NewConnection{remote=10.0.0.2:49152 sni=\"server\" alpn=\"quicxtest\"}\n",
		}
		for name, got := range map[string]string{
			"client":   p.Client.Events.Timeline(),
			"server":   p.Server.Events.Timeline(),
			"listener": p.ListenerEvents.Timeline(),
		} {
			if got != want[name] {
				t.Errorf("%s timeline:\n%s\nwant:\n%s", name, got, want[name])
			}
		}
		if p.Addr.String() != "10.0.0.1:4433" {
			t.Errorf("Addr %v", p.Addr)
		}
		if remote, _ := p.Server.Conn.RemoteAddr(); remote.String() != "10.0.0.2:49152" {
			t.Errorf("server sees the client at %v", remote)
		}

		client, server, err := p.Connect()
		if err != nil {
			t.Fatal(err)
		}
		if remote, _ := server.Conn.RemoteAddr(); remote.String() != "10.0.0.2:49153" {
			t.Errorf("second connection from %v", remote)
		}
		if err := client.Conn.Shutdown(quicx.ShutdownNone, 0x11); err != nil {
			t.Fatal(err)
		}
		if _, err := server.Events.ExpectExactly(
			quicxtest.Equal(&quicx.ShutdownInitiatedByPeer{ErrorCode: 0x11}),
			quicxtest.Equal(&quicx.ConnectionShutdownComplete{HandshakeCompleted: true}),
		); err != nil {
			t.Error(err)
		}
		if err := server.Events.ExpectClosed(); err != nil {
			t.Error(err)
		}
		// The first connection stays up; the cleanup closes it.
	})
}

func TestPairEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{
			Link:     quicxtest.Link{Latency: 5 * time.Millisecond, Bandwidth: 10e6},
			Settings: quicx.Settings{PeerBidiStreamCount: 1},
		})
		s, err := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
		if err != nil {
			t.Fatal(err)
		}
		sw := quicxtest.NewWatcher(s.Events(), quicxtest.CompleteReceives())
		msg := strings.Repeat("quicx ", 50000)
		if err := s.Send([][]byte{[]byte(msg)}, quicx.SendStart|quicx.SendFin, nil); err != nil {
			t.Fatal(err)
		}
		started, err := quicxtest.Await[*quicx.PeerStreamStarted](p.Server.Events)
		if err != nil {
			t.Fatal(err)
		}
		n, err := echo(context.Background(), started.Stream, started.Stream.Events())
		if err != nil || n != len(msg) {
			t.Fatalf("echoed %d, %v", n, err)
		}
		if _, err := sw.Expect(quicxtest.Type[*quicx.PeerSendShutdown](), quicxtest.Type[*quicx.StreamShutdownComplete]()); err != nil {
			t.Fatal(err)
		}
		if string(sw.Received()) != msg {
			t.Errorf("echo differs: %d bytes back", len(sw.Received()))
		}
		_ = s.Close()
		<-sw.Done()
	})
}

func TestPairOnOneHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{ServerHost: "box", ClientHost: "box"})
		if p.ServerHost != p.ClientHost {
			t.Fatal("two hosts")
		}
		if remote, _ := p.Server.Conn.RemoteAddr(); remote.String() != "10.0.0.1:49152" {
			t.Errorf("remote %v", remote)
		}
	})
}

func TestPairFailsFastWhenTheClientGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		_, err := quicxtest.OpenPair(quicxtest.PairConfig{
			Link:     quicxtest.Link{Loss: 1},
			Settings: quicx.Settings{HandshakeIdleTimeout: 2 * time.Second},
		})
		if err == nil || !strings.Contains(err.Error(), "ShutdownInitiatedByTransport{status=CONNECTION_IDLE") {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("gave up after %v", d)
		}
	})
}

func TestPairConfigErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, err := quicxtest.OpenPair(quicxtest.PairConfig{Settings: quicx.Settings{InitialRtt: time.Second}})
		if !errors.Is(err, quicx.ErrNotSupported) {
			t.Errorf("err = %v", err)
		}
		_, err = quicxtest.OpenPair(quicxtest.PairConfig{Link: quicxtest.Link{Loss: 2}})
		if err == nil {
			t.Error("an invalid link was accepted")
		}
	})
}
