package quicxtest_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

func runScenario(t *testing.T, seed uint64, link quicxtest.Link) string {
	var out string
	synctest.Test(t, func(t *testing.T) {
		cryptotest.SetGlobalRandom(t, seed)
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: seed, Link: link, Settings: quicx.Settings{PeerBidiStreamCount: 4, IdleTimeout: 5 * time.Second}})
		var b strings.Builder
		for i := range 3 {
			s, err := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
			if err != nil {
				<-p.Client.Events.Done()
				t.Fatalf("%v\n%s", err, p.Client.Events.Timeline())
			}
			sw := quicxtest.NewWatcher(s.Events(), quicxtest.CompleteReceives(), quicxtest.Since(p.Origin()))
			msg := bytes.Repeat([]byte{byte(i)}, 50000)
			if err := s.Send([][]byte{msg}, quicx.SendStart|quicx.SendFin, i); err != nil {
				t.Fatal(err)
			}
			ps, err := quicxtest.Await[*quicx.PeerStreamStarted](p.Server.Events)
			if err != nil {
				t.Fatal(err)
			}
			ps.Stream.Shutdown(quicx.StreamShutdownGraceful, 0)
			got, tl, err := quicxtest.ReadAll(ps.Stream.Events())
			_ = got
			_ = tl
			<-sw.Done()
			fmt.Fprintf(&b, "client stream %d:\n%s", i, sw.Timeline())
			fmt.Fprintf(&b, "server stream %d:\n%s\n", i, strings.Join(tl, "\n"))
		}
		p.Client.Conn.Shutdown(quicx.ShutdownNone, 7)
		<-p.Client.Events.Done()
		<-p.Server.Events.Done()
		fmt.Fprintf(&b, "client:\n%s", p.Client.Events.Timeline())
		fmt.Fprintf(&b, "server:\n%s", p.Server.Events.Timeline())
		fmt.Fprintf(&b, "stats: %+v\n", p.Network.Stats(p.ClientHost, p.ServerHost))
		out = b.String()
	})
	return out
}

func TestDetScratch(t *testing.T) {
	link := quicxtest.Link{Latency: 20 * time.Millisecond, Loss: 0.1, Reorder: 0.1, Duplicate: 0.05}
	a := runScenario(t, 3, link)
	for i := range 5 {
		b := runScenario(t, 3, link)
		if a != b {
			al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
			for j := range min(len(al), len(bl)) {
				if al[j] != bl[j] {
					t.Errorf("run %d differs at line %d:\n%s\n%s", i, j, al[j], bl[j])
					break
				}
			}
			continue
		}
	}
	t.Log(a)
}
