package integration_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// simSlack absorbs the nanoseconds the network adds between packets due at
// the same instant.
const simSlack = time.Microsecond

// An idle connection times out on each side IdleTimeout after the last packet
// that side received, with CONNECTION_IDLE.
func TestSimIdleTimeout(t *testing.T) {
	simTest(t, func(t *testing.T) {
		const idle = 5 * time.Second
		p := quicxtest.NewPair(t, quicxtest.PairConfig{
			Link:     quicxtest.Link{Latency: 10 * time.Millisecond},
			Settings: quicx.Settings{IdleTimeout: idle},
		})
		end := []quicxtest.Matcher{
			quicxtest.Equal(&quicx.ShutdownInitiatedByTransport{Status: quicx.ErrConnectionIdle, ErrorCode: 1}),
			quicxtest.Equal(&quicx.ConnectionShutdownComplete{HandshakeCompleted: true}),
		}
		for _, side := range []struct {
			name     string
			w        *quicxtest.Watcher[quicx.ConnectionEvent]
			lastRecv time.Duration
		}{
			// The client last hears the server's HANDSHAKE_DONE, sent when the
			// server's handshake completes (30 ms) and arriving 10 ms later.
			{"client", p.Client.Events, 40 * time.Millisecond},
			// The server last hears the client's ACK of it, held for quic-go's
			// 25 ms max_ack_delay: 40 + 25 + 10 ms.
			{"server", p.Server.Events, 75 * time.Millisecond},
		} {
			side.w.SetTimeout(time.Minute)
			if _, err := side.w.ExpectExactly(end...); err != nil {
				t.Fatalf("%s: %v", side.name, err)
			}
			simMust(t, side.w.ExpectClosed())
			got := side.w.Observed()
			at := got[len(got)-2].At
			simBetween(t, side.name+" idle timeout", at, side.lastRecv+idle, side.lastRecv+idle+simSlack)
		}
	})
}

// Keep-alive PINGs keep a connection up well past its idle timeout.
func TestSimKeepAlive(t *testing.T) {
	simTest(t, func(t *testing.T) {
		p := quicxtest.NewPair(t, quicxtest.PairConfig{
			Link:           quicxtest.Link{Latency: 10 * time.Millisecond, Loss: 0.1},
			Seed:           3,
			Settings:       quicx.Settings{IdleTimeout: 2 * time.Second},
			ClientSettings: &quicx.Settings{IdleTimeout: 2 * time.Second, KeepAliveInterval: 500 * time.Millisecond},
		})
		time.Sleep(time.Minute) // the scenario: a quiet minute
		for _, w := range []*quicxtest.Watcher[quicx.ConnectionEvent]{p.Client.Events, p.Server.Events} {
			for _, ev := range w.Events() {
				switch ev.(type) {
				case *quicx.ShutdownInitiatedByTransport, *quicx.ShutdownInitiatedByPeer, *quicx.ConnectionShutdownComplete:
					t.Errorf("the connection did not stay up:\n%s", w.Timeline())
				}
			}
		}
		if st := p.Network.Stats(p.ClientHost, p.ServerHost); st.Sent < 100 || st.Lost == 0 {
			t.Errorf("expected a minute of lossy keep-alives: %+v", st)
		}
		simMust(t, p.Client.Conn.Shutdown(quicx.ShutdownNone, 0))
		_, err := p.Server.Events.Expect(quicxtest.Equal(&quicx.ShutdownInitiatedByPeer{}))
		simMust(t, err)
	})
}

// A client whose server never answers gives up after HandshakeIdleTimeout,
// whether nothing listens there or the path drops everything.
func TestSimHandshakeTimeoutWhenServerUnreachable(t *testing.T) {
	for _, c := range []struct {
		name    string
		link    quicxtest.Link
		timeout time.Duration // 0: MsQuic's default
		stats   func(quicxtest.LinkStats) bool
	}{
		{"nothing listening", quicxtest.Link{Latency: 10 * time.Millisecond}, 3 * time.Second,
			func(s quicxtest.LinkStats) bool { return s.Unreachable == s.Sent && s.Sent > 1 }},
		{"black hole", quicxtest.Link{Latency: 10 * time.Millisecond, Loss: 1}, 0,
			func(s quicxtest.LinkStats) bool { return s.Lost == s.Sent && s.Sent > 1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			simTest(t, func(t *testing.T) {
				n, err := quicxtest.NewNetwork(quicxtest.NetworkConfig{Link: c.link})
				simMust(t, err)
				t.Cleanup(func() { simMust(t, n.Close()) })
				n.Host("server")
				client := n.Host("client")
				reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{Network: client})
				simMust(t, err)
				defer reg.Close()
				cfg, err := reg.OpenConfiguration([]string{"x"}, &quicx.Settings{HandshakeIdleTimeout: c.timeout})
				simMust(t, err)
				defer cfg.Close()
				simMust(t, cfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}))
				conn, err := reg.OpenConnection()
				simMust(t, err)
				defer conn.Close() // before reg.Close, which waits for it
				w := quicxtest.NewWatcher(conn.Events())
				w.SetTimeout(time.Minute)
				start := time.Now()
				simMust(t, conn.Start(cfg, quicx.AddressFamilyUnspec, "server", 443))
				evs, err := w.ExpectExactly(quicxtest.Type[*quicx.ShutdownInitiatedByTransport](),
					quicxtest.Equal(&quicx.ConnectionShutdownComplete{}))
				simMust(t, err)
				simMust(t, w.ExpectClosed())
				want := c.timeout
				if want == 0 {
					want = quicx.DefaultHandshakeIdleTimeout
				}
				if d := time.Since(start); d != want {
					t.Errorf("gave up after %v, want %v", d, want)
				}
				if st := evs[0].(*quicx.ShutdownInitiatedByTransport); !errors.Is(st.Status, quicx.ErrConnectionIdle) {
					t.Errorf("%v", st)
				}
				if st := n.Stats(client, n.Host("server")); !c.stats(st) {
					t.Errorf("link stats %+v", st)
				}
			})
		})
	}
}

// A NewConnection nobody answers is rejected when the listener's handshake
// idle timeout passes; closing the listener rejects it at once. Either way the
// client's handshake fails.
func TestSimUnansweredNewConnection(t *testing.T) {
	for _, c := range []struct {
		name  string
		close bool          // close the listener once NewConnection is raised
		fail  time.Duration // when the client learns of the rejection
	}{
		{"deadline", false, 3*time.Second + 20*time.Millisecond},
		{"listener closed", true, 20 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			simTest(t, func(t *testing.T) {
				p := quicxtest.NewPair(t, quicxtest.PairConfig{
					NoConnect: true,
					Link:      quicxtest.Link{Latency: 10 * time.Millisecond},
					Settings:  quicx.Settings{HandshakeIdleTimeout: 3 * time.Second},
				})
				conn, err := p.ClientRegistration.OpenConnection()
				simMust(t, err)
				t.Cleanup(func() { _ = conn.Close() }) // before the pair's cleanup
				w := quicxtest.NewWatcher(conn.Events(), quicxtest.Since(p.Origin()))
				w.SetTimeout(time.Minute)
				simMust(t, conn.Start(p.ClientConfig, quicx.AddressFamilyUnspec, "server", p.Addr.Port()))
				_, err = p.ListenerEvents.ExpectExactly(quicxtest.Type[*quicx.NewConnection]())
				simMust(t, err)
				if c.close {
					simMust(t, p.Listener.Close())
					_, err := p.ListenerEvents.ExpectExactly(quicxtest.Equal(&quicx.ListenerStopComplete{AppCloseInProgress: true}))
					simMust(t, err)
				}
				_, err = w.ExpectExactly(
					quicxtest.Check(func(e *quicx.ShutdownInitiatedByTransport) error {
						return simRejection(e)
					}),
					quicxtest.Equal(&quicx.ConnectionShutdownComplete{}),
				)
				simMust(t, err)
				at := w.Observed()[0].At
				simBetween(t, "client failure", at, c.fail, c.fail+simSlack)
				if st := p.Listener.Stats(); st.TotalRejectedConnections != 1 || st.TotalAcceptedConnections != 0 {
					t.Errorf("listener stats %+v", st)
				}
			})
		})
	}
}

// simRejection checks how a client learns that the server rejected it: with
// crypto/tls's internal_error alert, since quic-go cannot send
// CONNECTION_REFUSED from inside the TLS callback where quicx waits for the
// decision. A listener that closes refuses its pending connections the same
// way, and waits for those closes to go out before quic-go's listener closes
// (which would send CONNECTION_REFUSED instead).
func simRejection(e *quicx.ShutdownInitiatedByTransport) error {
	if e.ErrorCode == 0x150 && e.Status == quicx.TLSAlertStatus(80) {
		return nil
	}
	return fmt.Errorf("status %v, code %#x", e.Status, e.ErrorCode)
}
