package quicxtest_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

func TestSmoke(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 1, Link: quicxtest.Link{Latency: 10 * time.Millisecond, Loss: 0.05, Bandwidth: 100e6}, Settings: quicx.Settings{PeerBidiStreamCount: 1}})
		t.Logf("connected after %v", time.Since(start))
		data := make([]byte, 10<<20)
		r := rand.NewChaCha8([32]byte{})
		r.Read(data)
		s, err := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send([][]byte{data}, quicx.SendStart|quicx.SendFin, nil); err != nil {
			t.Fatal(err)
		}
		go quicxtest.Drain(s.Events())
		ps, err := quicxtest.Await[*quicx.PeerStreamStarted](p.Server.Events)
		if err != nil {
			t.Fatal(err)
		}
		got, tl, err := quicxtest.ReadAll(ps.Stream.Events())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("received %d bytes after %v, %d events, last %v", len(got), time.Since(start), len(tl), tl[len(tl)-3:])
		if !bytes.Equal(got, data) {
			t.Fatal("data differs")
		}
		t.Logf("stats %+v", p.Network.Stats(p.ClientHost, p.ServerHost))
	})
}
