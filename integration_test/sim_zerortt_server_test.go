package integration_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// These tests check the server side of 0-RTT: a quicx listener with
// ServerResumeAndZeroRTT and TrackZeroRTT marks what the client sent in 0-RTT
// packets (StreamOpen0RTT, Receive0RTT), as MsQuic does. The client is raw
// quic-go, dialing with DialEarly on the in-memory network, so that each test
// controls exactly what goes in 0-RTT (TestSimZeroRTT has a quicx client). In the synctest bubble, with link
// latency, the client opens its stream and writes before anything from the
// server can arrive: the race of quic-go/quic-go#4303 (a stream opened while
// the server's transport parameters arrive) cannot happen.

// zeroRTTServerSettings is a server that accepts 0-RTT and marks it.
var zeroRTTServerSettings = quicx.Settings{
	ServerResumptionLevel: quicx.ServerResumeAndZeroRTT,
	PeerBidiStreamCount:   4,
	TransportEvents:       quicx.TrackZeroRTT,
}

// ticketCache is a ClientSessionCache that says when a ticket arrived.
type ticketCache struct {
	tls.ClientSessionCache
	got chan struct{}
}

func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	if cs != nil {
		select {
		case c.got <- struct{}{}:
		default:
		}
	}
}

// rawClient is a quic-go client on the pair's client host.
type rawClient struct {
	tr    *quic.Transport
	pc    net.PacketConn
	tls   *tls.Config
	cache *ticketCache
	addr  net.Addr
}

func newRawClient(t *testing.T, p *quicxtest.Pair, serverPort uint16) *rawClient {
	pc, err := p.ClientHost.ListenPacket(netip.AddrPort{})
	simMust(t, err)
	c := &rawClient{pc: pc, tr: &quic.Transport{Conn: pc},
		cache: &ticketCache{ClientSessionCache: tls.NewLRUClientSessionCache(4), got: make(chan struct{}, 1)},
		addr:  net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ServerHost.Addr(), serverPort))}
	c.tls = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"quicxtest"}, ServerName: "server", ClientSessionCache: c.cache}
	t.Cleanup(func() {
		_ = c.tr.Close()
		_ = c.pc.Close()
	})
	return c
}

// acceptServer accepts the next connection of the listener whose events w
// watches, with cfg, and returns the server's watcher once it is Connected.
func acceptServer(t *testing.T, w *quicxtest.Watcher[quicx.ListenerEvent], cfg *quicx.Configuration) (*quicx.Connection, *quicxtest.Watcher[quicx.ConnectionEvent]) {
	t.Helper()
	nc, err := quicxtest.Await[*quicx.NewConnection](w)
	simMust(t, err)
	sw := quicxtest.NewWatcher(nc.Connection.Events())
	simMust(t, nc.Accept(cfg))
	_, err = quicxtest.Await[*quicx.Connected](sw)
	simMust(t, err)
	return nc.Connection, sw
}

// getTicket makes a first, full connection and waits for its session ticket.
func (c *rawClient) getTicket(t *testing.T, lw *quicxtest.Watcher[quicx.ListenerEvent], cfg *quicx.Configuration) {
	t.Helper()
	type dialed struct {
		conn *quic.Conn
		err  error
	}
	ch := make(chan dialed, 1)
	go func() {
		// Dial returns once the handshake completes, after the server's app
		// accepts the connection.
		conn, err := c.tr.Dial(context.Background(), c.addr, c.tls, &quic.Config{})
		ch <- dialed{conn, err}
	}()
	sc, sw := acceptServer(t, lw, cfg)
	d := <-ch
	simMust(t, d.err)
	conn := d.conn
	select {
	case <-c.cache.got:
	case <-time.After(5 * time.Second):
		t.Fatal("no session ticket")
	}
	closeRawClient(t, conn, sc, sw)
}

// sendStream opens a stream on conn and writes data and the FIN.
func sendStream(conn *quic.Conn, data string) error {
	s, err := conn.OpenStream()
	if err != nil {
		return err
	}
	if _, err := s.Write([]byte(data)); err != nil {
		return err
	}
	return s.Close()
}

// expectPeerStream checks the next PeerStreamStarted's flags and the stream's
// events: all its data in one Receive with flags want (which include FIN),
// then the end. The data is all there before the stream's events are first
// asked for (synctest.Wait), as it went in one packet. The FIN did too if the
// client's quic-go packed it with the data, and then comes in the same
// Receive; if it sent the FIN in a later packet (its Write and Close race with
// its send loop), the FIN comes alone in a second Receive, never flagged
// 0_RTT (MsQuic flags only data).
func expectPeerStream(t *testing.T, sw *quicxtest.Watcher[quicx.ConnectionEvent], open quicx.StreamOpenFlags, data string, want quicx.ReceiveFlags) {
	t.Helper()
	ps, err := quicxtest.Await[*quicx.PeerStreamStarted](sw)
	simMust(t, err)
	if ps.Flags != open {
		t.Errorf("stream %q: PeerStreamStarted flags %v, want %v", data, ps.Flags, open)
	}
	synctest.Wait()
	w := quicxtest.NewWatcher(ps.Stream.Events(), quicxtest.CompleteReceives())
	evs, err := w.ExpectExactly(quicxtest.Type[*quicx.Receive]())
	if err != nil {
		t.Fatal(err)
	}
	if r := evs[0].(*quicx.Receive); r.Flags&quicx.ReceiveFin != 0 {
		if err := checkReceive(r, 0, data, want); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := checkReceive(r, 0, data, want&^quicx.ReceiveFin); err != nil {
			t.Fatal(err)
		}
		if _, err := w.ExpectExactly(receiveIs(uint64(len(data)), "", quicx.ReceiveFin)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.ExpectExactly(quicxtest.Type[*quicx.PeerSendShutdown]()); err != nil {
		t.Fatal(err)
	}
	st, err := ps.Stream.Stats()
	simMust(t, err)
	if st.ZeroRTTRecvSize != 0 {
		t.Errorf("ZeroRTTRecvSize %d: MsQuic's QUIC_PARAM_STREAM_0RTT_LENGTH counts bytes sent in 0-RTT", st.ZeroRTTRecvSize)
	}
	simMust(t, ps.Stream.Shutdown(quicx.StreamShutdownGraceful, 0))
	if _, err := quicxtest.Await[*quicx.StreamShutdownComplete](w); err != nil {
		t.Fatal(err)
	}
	simMust(t, ps.Stream.Close())
	<-w.Done()
}

// A stream the client opened and wrote in 0-RTT is indicated with
// StreamOpen0RTT and its data with Receive0RTT; a stream opened after the
// handshake carries neither flag.
func TestSimZeroRTTServerMarksEarlyData(t *testing.T) {
	simTest(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 40, Link: quicxtest.Link{Latency: 10 * time.Millisecond},
			NoConnect: true, ServerSettings: &zeroRTTServerSettings})
		c := newRawClient(t, p, p.Addr.Port())
		c.getTicket(t, p.ListenerEvents, p.ServerConfig)

		ctx := context.Background()
		conn, err := c.tr.DialEarly(ctx, c.addr, c.tls, &quic.Config{})
		simMust(t, err)
		simMust(t, sendStream(conn, "zero-rtt-data"))
		sc, sw := acceptServer(t, p.ListenerEvents, p.ServerConfig)
		<-conn.HandshakeComplete()
		if !conn.ConnectionState().Used0RTT {
			t.Fatal("the client did not use 0-RTT")
		}
		expectPeerStream(t, sw, quicx.StreamOpen0RTT, "zero-rtt-data", quicx.Receive0RTT|quicx.ReceiveFin)

		simMust(t, sendStream(conn, "one-rtt-data"))
		expectPeerStream(t, sw, quicx.StreamOpenNone, "one-rtt-data", quicx.ReceiveFin)

		closeRawClient(t, conn, sc, sw)
	})
}

// Without TrackZeroRTT a server accepts 0-RTT but marks nothing (the flags
// need the subscription); with 0-RTT off (ServerResumeOnly on the listener:
// the ticket still resumes, 0-RTT is rejected) the client's early stream is
// void and its data comes again, after the handshake, unmarked.
func TestSimZeroRTTServerUnmarked(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings quicx.Settings
		accepted bool
	}{
		{"untracked", quicx.Settings{ServerResumptionLevel: quicx.ServerResumeAndZeroRTT, PeerBidiStreamCount: 4}, true},
		{"rejected", quicx.Settings{ServerResumptionLevel: quicx.ServerResumeOnly, PeerBidiStreamCount: 4, TransportEvents: quicx.TrackZeroRTT}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			simTest(t, func(t *testing.T) {
				// The ticket comes from a 0-RTT listener; the second
				// connection goes to a listener and configuration with
				// tc.settings that share the first's ticket key.
				p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 41, Link: quicxtest.Link{Latency: 10 * time.Millisecond},
					NoConnect: true, ServerSettings: &zeroRTTServerSettings})
				keys := [][32]byte{{41}}
				simMust(t, p.ServerConfig.SetTicketKeys(keys))
				cfg2, err := p.ServerRegistration.OpenConfiguration([]string{"quicxtest"}, &tc.settings)
				simMust(t, err)
				defer cfg2.Close()
				simMust(t, cfg2.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: p.Certificate}))
				simMust(t, cfg2.SetTicketKeys(keys))
				l2, err := p.ServerRegistration.OpenListener()
				simMust(t, err)
				simMust(t, l2.SetSettings(&tc.settings))
				lw2 := quicxtest.NewWatcher(l2.Events())
				simMust(t, l2.Start([]string{"quicxtest"}, netip.AddrPortFrom(netip.Addr{}, 4434)))
				defer func() {
					simMust(t, l2.Close())
					<-lw2.Done()
				}()

				c := newRawClient(t, p, p.Addr.Port())
				c.getTicket(t, p.ListenerEvents, p.ServerConfig)
				c.addr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ServerHost.Addr(), 4434))

				ctx := context.Background()
				conn, err := c.tr.DialEarly(ctx, c.addr, c.tls, &quic.Config{})
				simMust(t, err)
				simMust(t, sendStream(conn, "early-data"))
				sc, sw := acceptServer(t, lw2, cfg2)
				<-conn.HandshakeComplete()
				if used := conn.ConnectionState().Used0RTT; used != tc.accepted {
					t.Fatalf("Used0RTT %v, want %v", used, tc.accepted)
				}
				if !tc.accepted {
					// quic-go voids the early stream: send it again.
					if _, err := conn.OpenStream(); !errors.Is(err, quic.Err0RTTRejected) {
						t.Fatalf("after rejection: %v", err)
					}
					conn, err = conn.NextConnection(ctx)
					simMust(t, err)
					simMust(t, sendStream(conn, "early-data"))
				}
				expectPeerStream(t, sw, quicx.StreamOpenNone, "early-data", quicx.ReceiveFin)

				closeRawClient(t, conn, sc, sw)
			})
		})
	}
}

// receiveIs matches a Receive with the given offset, bytes and flags.
func receiveIs(off uint64, data string, flags quicx.ReceiveFlags) quicxtest.Matcher {
	return quicxtest.Check(func(r *quicx.Receive) error { return checkReceive(r, off, data, flags) })
}

func checkReceive(r *quicx.Receive, off uint64, data string, flags quicx.ReceiveFlags) error {
	var got []byte
	for _, b := range r.Buffers {
		got = append(got, b...)
	}
	if r.AbsoluteOffset != off || string(got) != data || r.Flags != flags {
		return fmt.Errorf("Receive{offset %d, %q, %v}, want {%d, %q, %v}", r.AbsoluteOffset, got, r.Flags, off, data, flags)
	}
	return nil
}

// A stream opened in 0-RTT that goes on after the handshake: MsQuic flags a
// Receive whose offset lies below the end of the stream's 0-RTT data
// (stream_recv.c: AbsoluteOffset < RecvMax0RttLength), so the 0-RTT bytes
// come flagged and the later ones, and the FIN-only Receive, do not.
func TestSimZeroRTTServerMixedStream(t *testing.T) {
	simTest(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{Seed: 42, Link: quicxtest.Link{Latency: 10 * time.Millisecond},
			NoConnect: true, ServerSettings: &zeroRTTServerSettings})
		c := newRawClient(t, p, p.Addr.Port())
		c.getTicket(t, p.ListenerEvents, p.ServerConfig)

		conn, err := c.tr.DialEarly(context.Background(), c.addr, c.tls, &quic.Config{})
		simMust(t, err)
		cs, err := conn.OpenStream()
		simMust(t, err)
		_, err = cs.Write([]byte("early"))
		simMust(t, err)
		sc, sw := acceptServer(t, p.ListenerEvents, p.ServerConfig)
		<-conn.HandshakeComplete()
		if !conn.ConnectionState().Used0RTT {
			t.Fatal("the client did not use 0-RTT")
		}
		ps, err := quicxtest.Await[*quicx.PeerStreamStarted](sw)
		simMust(t, err)
		if ps.Flags != quicx.StreamOpen0RTT {
			t.Errorf("PeerStreamStarted flags %v, want 0_RTT", ps.Flags)
		}
		synctest.Wait()
		w := quicxtest.NewWatcher(ps.Stream.Events(), quicxtest.CompleteReceives())
		if _, err := w.ExpectExactly(receiveIs(0, "early", quicx.Receive0RTT)); err != nil {
			t.Fatal(err)
		}
		_, err = cs.Write([]byte("late"))
		simMust(t, err)
		if _, err := w.ExpectExactly(receiveIs(5, "late", quicx.ReceiveNone)); err != nil {
			t.Fatal(err)
		}
		simMust(t, cs.Close())
		if _, err := w.ExpectExactly(receiveIs(9, "", quicx.ReceiveFin), quicxtest.Type[*quicx.PeerSendShutdown]()); err != nil {
			t.Fatal(err)
		}
		simMust(t, ps.Stream.Shutdown(quicx.StreamShutdownGraceful, 0))
		if _, err := quicxtest.Await[*quicx.StreamShutdownComplete](w); err != nil {
			t.Fatal(err)
		}
		simMust(t, ps.Stream.Close())
		<-w.Done()

		closeRawClient(t, conn, sc, sw)
	})
}

// closeRawClient closes the raw quic-go client connection and waits until the
// quicx server connection sc has ended, then closes it.
func closeRawClient(t *testing.T, conn *quic.Conn, sc *quicx.Connection, sw *quicxtest.Watcher[quicx.ConnectionEvent]) {
	t.Helper()
	simMust(t, conn.CloseWithError(0, ""))
	if _, err := quicxtest.Await[*quicx.ConnectionShutdownComplete](sw); err != nil {
		t.Fatal(err)
	}
	simMust(t, sc.Close())
}
