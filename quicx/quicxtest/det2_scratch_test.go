package quicxtest_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

func runScenario2(t *testing.T, seed uint64, link quicxtest.Link, withStream bool) string {
	var out string
	synctest.Test(t, func(t *testing.T) {
		cryptotest.SetGlobalRandom(t, seed)
		var dbg []string
		var dmu sync.Mutex
		quicxtest.DebugLog = func(s string) { dmu.Lock(); dbg = append(dbg, s); dmu.Unlock() }
		defer func() { slices.Sort(dbg); out += strings.Join(dbg, "\n") }()
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: seed, Link: link, Settings: quicx.Settings{PeerBidiStreamCount: 4, IdleTimeout: 5 * time.Second}})
		var b strings.Builder
		if withStream {
			s, _ := p.Client.Conn.OpenStream(quicx.StreamOpenNone)
			sw := quicxtest.NewWatcher(s.Events(), quicxtest.CompleteReceives(), quicxtest.Since(p.Origin()))
			s.Send([][]byte{[]byte("request")}, quicx.SendStart|quicx.SendFin, nil)
			ps, err := quicxtest.Await[*quicx.PeerStreamStarted](p.Server.Events)
			if err != nil {
				t.Fatal(err)
			}
			ssw := quicxtest.NewWatcher(ps.Stream.Events(), quicxtest.CompleteReceives(), quicxtest.Since(p.Origin()))
			if _, err := ssw.Expect(quicxtest.Type[*quicx.PeerSendShutdown]()); err != nil {
				t.Fatal(err)
			}
			ps.Stream.Send([][]byte{[]byte("response")}, quicx.SendFin, nil)
			<-sw.Done()
			<-ssw.Done()
			fmt.Fprintf(&b, "client stream:\n%sserver stream:\n%s", sw.Timeline(), ssw.Timeline())
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

func TestDetScratch2(t *testing.T) {
	link := quicxtest.Link{Latency: 20 * time.Millisecond, Loss: 0.2, Reorder: 0.2, Duplicate: 0.1}
	for _, ws := range []bool{false} {
		for seed := uint64(2); seed < 3; seed++ {
			a := runScenario2(t, seed, link, ws)
			for i := range 10 {
				b := runScenario2(t, seed, link, ws)
				if a != b {
					al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
					for j := range min(len(al), len(bl)) {
						if al[j] != bl[j] {
							os.WriteFile("/tmp/det_a.txt", []byte(a), 0o644)
							os.WriteFile("/tmp/det_b.txt", []byte(b), 0o644)
							t.Errorf("stream %v seed %d run %d differs at line %d:\n%s\n%s", ws, seed, i, j, al[j], bl[j])
							break
						}
					}
					continue
				}
			}
			if seed == 1 {
				t.Log(a)
			}
		}
	}
}
