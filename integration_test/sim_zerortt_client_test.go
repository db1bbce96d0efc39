package integration_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// 0-RTT on the in-memory network, accepted and rejected, with exact events and
// bytes. The client resumes with a ticket that allows early data and sends
// in 0-RTT on two streams: a bidi stream started before Connection.Start
// (opened by the opener as soon as 0-RTT is possible) and a uni stream started
// in the 0-RTT phase (opened at once, under the adapter's guard against
// quic-go #4303). When the server rejects 0-RTT, quicx replays the data on
// streams reopened with the same IDs: the client app sees the same events
// either way. The quicx server (TrackZeroRTT) marks what came in 0-RTT, and the
// bytes on the wire show the replay.
func TestSimZeroRTT(t *testing.T) {
	payload := bytes.Repeat([]byte("0-RTT data "), 2000) // 22000 bytes: fits the first flight
	for _, tc := range []struct {
		name   string
		reject bool
	}{{"accepted", false}, {"rejected", true}} {
		t.Run(tc.name, func(t *testing.T) {
			simTest(t, func(t *testing.T) {
				n, err := quicxtest.NewNetwork(quicxtest.NetworkConfig{Link: quicxtest.Link{Latency: 10 * time.Millisecond}})
				simMust(t, err)
				t.Cleanup(func() { _ = n.Close() })
				// TrackZeroRTT: the quicx server marks what it received in 0-RTT.
				settings := quicx.Settings{ServerResumptionLevel: quicx.ServerResumeAndZeroRTT, PeerBidiStreamCount: 4, PeerUnidiStreamCount: 4, TransportEvents: quicx.TrackZeroRTT}
				a := quicxtest.NewPair(t, quicxtest.PairConfig{Network: n, Settings: settings, NoConnect: true})
				key := [32]byte{7}
				simMust(t, a.ServerConfig.SetTicketKeys([][32]byte{key}))
				first, _, err := a.Connect()
				simMust(t, err)
				tev, err := quicxtest.Await[*quicx.ResumptionTicketReceived](first.Events)
				simMust(t, err)
				target := a
				if tc.reject {
					// A second server shares the ticket keys but does not allow
					// 0-RTT: it resumes the session and drops the early data.
					only := settings
					only.ServerResumptionLevel = quicx.ServerResumeOnly
					target = quicxtest.NewPair(t, quicxtest.PairConfig{Network: n, Settings: only, Port: 4434, NoConnect: true})
					simMust(t, target.ServerConfig.SetTicketKeys([][32]byte{key}))
				}

				conn, err := a.ClientRegistration.OpenConnection()
				simMust(t, err)
				simMust(t, conn.SetResumptionTicket(tev.ResumptionTicket))
				origin := time.Now()
				cw := quicxtest.NewWatcher(conn.Events(), quicxtest.Since(origin))
				bidi, err := conn.OpenStream(quicx.StreamOpenNone)
				simMust(t, err)
				bw := quicxtest.NewWatcher(bidi.Events(), quicxtest.Since(origin), quicxtest.CompleteReceives())
				simMust(t, bidi.Send([][]byte{payload}, quicx.SendStart|quicx.SendFin|quicx.SendAllow0RTT, "bidi"))
				wire := n.Stats(a.ClientHost, a.ServerHost).Bytes
				simMust(t, conn.Start(a.ClientConfig, quicx.AddressFamilyUnspec, "server", target.Addr.Port()))
				synctest.Wait() // the dial is in its 0-RTT phase: nothing arrives before 10 ms

				uni, err := conn.OpenStream(quicx.StreamOpenUnidirectional)
				simMust(t, err)
				uw := quicxtest.NewWatcher(uni.Events(), quicxtest.Since(origin))
				simMust(t, uni.Send([][]byte{[]byte("uni")}, quicx.SendStart|quicx.SendFin|quicx.SendAllow0RTT, "uni"))

				nc, err := quicxtest.Await[*quicx.NewConnection](target.ListenerEvents)
				simMust(t, err)
				simMust(t, nc.Accept(target.ServerConfig))
				sw := quicxtest.NewWatcher(nc.Connection.Events(), quicxtest.Since(origin))
				peer := map[uint64]*quicx.Stream{}
				for range 2 {
					ps, err := quicxtest.Await[*quicx.PeerStreamStarted](sw)
					simMust(t, err)
					id, err := ps.Stream.ID()
					simMust(t, err)
					peer[id] = ps.Stream
					want := quicx.StreamOpenNone
					if id&2 != 0 {
						want |= quicx.StreamOpenUnidirectional
					}
					if !tc.reject {
						want |= quicx.StreamOpen0RTT // its opening frame came in 0-RTT
					}
					if ps.Flags != want {
						t.Errorf("server stream %d: flags %v, want %v", id, ps.Flags, want)
					}
				}
				if peer[0] == nil || peer[2] == nil {
					t.Fatalf("server streams %v, want IDs 0 and 2", peer)
				}
				simMust(t, peer[0].Send([][]byte{[]byte("reply")}, quicx.SendFin, "reply"))
				got, timeline, err := quicxtest.ReadAll(peer[0].Events())
				simMust(t, err)
				if !bytes.Equal(got, payload) {
					t.Errorf("server got %d bytes on stream 0, want the %d sent", len(got), len(payload))
				}
				if n := len(timeline); n < 3 || timeline[n-2] != "PeerSendShutdown" || timeline[n-1] != "StreamShutdownComplete{appClose=false}" {
					t.Errorf("server stream 0: %q", timeline)
				}
				for _, ev := range timeline {
					// Every byte came in 0-RTT, or (rejected) none.
					if strings.HasPrefix(ev, "Receive{") && strings.Contains(ev, "0_RTT") == tc.reject {
						t.Errorf("server stream 0: %s (rejected: %v)", ev, tc.reject)
					}
				}
				got, timeline, err = quicxtest.ReadAll(peer[2].Events())
				simMust(t, err)
				wantRecv := "Receive{off=0 len=3 flags=0_RTT|FIN}"
				if tc.reject {
					wantRecv = "Receive{off=0 len=3 flags=FIN}"
				}
				if string(got) != "uni" || !slices.Equal(timeline, []string{wantRecv, "PeerSendShutdown", "StreamShutdownComplete{appClose=false}"}) {
					t.Errorf("server stream 2: %q %q", got, timeline)
				}

				// The client's streams: the same events whatever the server did.
				if _, err := uw.ExpectExactly(
					quicxtest.Equal(&quicx.StartComplete{ID: 2, PeerAccepted: true}),
					quicxtest.Equal(&quicx.SendComplete{Context: "uni"}),
					quicxtest.Equal(&quicx.SendShutdownComplete{Graceful: true}),
					quicxtest.Equal(&quicx.StreamShutdownComplete{}),
				); err != nil {
					t.Fatal(err)
				}
				if _, err := bw.Expect(
					quicxtest.Equal(&quicx.StartComplete{ID: 0, PeerAccepted: false}),
					quicxtest.Equal(&quicx.SendComplete{Context: "bidi"}),
				); err != nil {
					t.Fatal(err)
				}
				<-bw.Done()
				// The send shutdown and the reply race (quic-go's loop and the
				// reader), and the FIN comes with the data or in an empty Receive
				// of its own (docs/events.md): the receive events in order, the
				// send shutdown anywhere before the final event.
				var recv []string
				sendDone := 0
				evs := bw.Events()[2:]
				for _, ev := range evs[:len(evs)-1] {
					if _, ok := ev.(*quicx.SendShutdownComplete); ok && ev.String() == "SendShutdownComplete{graceful=true}" {
						sendDone++
						continue
					}
					recv = append(recv, ev.String())
				}
				finWithData := []string{"Receive{off=0 len=5 flags=FIN}", "PeerSendShutdown"}
				finAlone := []string{"Receive{off=0 len=5 flags=NONE}", "Receive{off=5 len=0 flags=FIN}", "PeerSendShutdown"}
				if sendDone != 1 || evs[len(evs)-1].String() != "StreamShutdownComplete{appClose=false}" || !slices.Equal(recv, finWithData) && !slices.Equal(recv, finAlone) {
					t.Errorf("client bidi stream:\n%s", bw.Timeline())
				}
				if string(bw.Received()) != "reply" {
					t.Errorf("client got %q", bw.Received())
				}
				if _, err := cw.ExpectExactly(
					quicxtest.Equal(&quicx.DatagramStateChanged{}),
					quicxtest.Equal(&quicx.Connected{SessionResumed: true, NegotiatedALPN: "quicxtest"}),
				); err != nil {
					t.Fatal(err)
				}

				// The wire: a rejected 0-RTT carried the payload twice.
				sent := n.Stats(a.ClientHost, a.ServerHost).Bytes - wire
				if twice := uint64(2 * len(payload)); tc.reject != (sent > twice) {
					t.Errorf("the client sent %d bytes for a %d-byte payload (rejected: %v)", sent, len(payload), tc.reject)
				}

				simMust(t, bidi.Close())
				simMust(t, uni.Close())
				simMust(t, peer[0].Close())
				simMust(t, peer[2].Close())
				simMust(t, conn.Shutdown(quicx.ShutdownNone, 0))
				<-cw.Done()
				<-sw.Done()
				simMust(t, conn.Close())
				simMust(t, nc.Connection.Close())
			})
		})
	}
}

// A stream beyond the peer's remembered stream limit, started in the 0-RTT
// phase, waits for the handshake and then for the peer's credit, as MsQuic's
// does: StartComplete with PeerAccepted false, PeerAccepted once the server
// has finished the first stream and given its credit back.
func TestSimZeroRTTBeyondStreamCredit(t *testing.T) {
	simTest(t, func(t *testing.T) {
		settings := quicx.Settings{ServerResumptionLevel: quicx.ServerResumeAndZeroRTT, PeerUnidiStreamCount: 1}
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Link: quicxtest.Link{Latency: 10 * time.Millisecond}, Settings: settings})
		tev, err := quicxtest.Await[*quicx.ResumptionTicketReceived](p.Client.Events)
		simMust(t, err)

		conn, err := p.ClientRegistration.OpenConnection()
		simMust(t, err)
		simMust(t, conn.SetResumptionTicket(tev.ResumptionTicket))
		origin := time.Now()
		cw := quicxtest.NewWatcher(conn.Events(), quicxtest.Since(origin))
		simMust(t, conn.Start(p.ClientConfig, quicx.AddressFamilyUnspec, "server", p.Addr.Port()))
		synctest.Wait() // in the 0-RTT phase

		first, err := conn.OpenStream(quicx.StreamOpenUnidirectional)
		simMust(t, err)
		fw := quicxtest.NewWatcher(first.Events(), quicxtest.Since(origin))
		simMust(t, first.Send([][]byte{[]byte("first")}, quicx.SendStart|quicx.SendFin|quicx.SendAllow0RTT, 1))
		second, err := conn.OpenStream(quicx.StreamOpenUnidirectional)
		simMust(t, err)
		sw := quicxtest.NewWatcher(second.Events(), quicxtest.Since(origin))
		simMust(t, second.Start(quicx.StreamStartIndicatePeerAccept))
		simMust(t, second.Send([][]byte{[]byte("second")}, quicx.SendFin|quicx.SendAllow0RTT, 2))

		nc, err := quicxtest.Await[*quicx.NewConnection](p.ListenerEvents)
		simMust(t, err)
		simMust(t, nc.Accept(p.ServerConfig))
		srv := quicxtest.NewWatcher(nc.Connection.Events(), quicxtest.Since(origin))
		for i, want := range []string{"first", "second"} {
			ps := simAwaitStream(t, srv)
			got, _, err := quicxtest.ReadAll(ps.Events())
			simMust(t, err)
			if id, _ := ps.ID(); string(got) != want || id != uint64(2+4*i) {
				t.Errorf("server stream %d: %q, want %q", id, got, want)
			}
			simMust(t, ps.Close())
		}

		if _, err := fw.ExpectExactly(
			quicxtest.Equal(&quicx.StartComplete{ID: 2, PeerAccepted: true}),
			quicxtest.Equal(&quicx.SendComplete{Context: 1}),
			quicxtest.Equal(&quicx.SendShutdownComplete{Graceful: true}),
			quicxtest.Equal(&quicx.StreamShutdownComplete{}),
		); err != nil {
			t.Fatal(err)
		}
		if _, err := sw.ExpectExactly(
			quicxtest.Equal(&quicx.StartComplete{ID: 6, PeerAccepted: false}),
			quicxtest.Equal(&quicx.SendComplete{Context: 2}),
			quicxtest.Equal(&quicx.PeerAccepted{}),
			quicxtest.Equal(&quicx.SendShutdownComplete{Graceful: true}),
			quicxtest.Equal(&quicx.StreamShutdownComplete{}),
		); err != nil {
			t.Fatal(err)
		}
		// The handshake completes at 20 ms; the server finishes the first
		// stream at 30 ms and its MAX_STREAMS arrives at 40 ms.
		simBetween(t, "PeerAccepted", sw.Observed()[2].At, 40*time.Millisecond, 41*time.Millisecond)
		simMust(t, first.Close())
		simMust(t, second.Close())
		simMust(t, conn.Shutdown(quicx.ShutdownNone, 0))
		<-cw.Done()
		<-srv.Done()
		simMust(t, conn.Close())
		simMust(t, nc.Connection.Close())
	})
}
