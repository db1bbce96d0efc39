package integration_test

import (
	"testing"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// A client that shuts down (or closes) while its handshake is under way tells
// the server at once, as MsQuic does: CONNECTION_CLOSE with APPLICATION_ERROR
// in an Initial packet (RFC 9000 §10.2.3), which the server reports as
// ShutdownInitiatedByTransport(USER_CANCELED, 0xc). The client raises only its
// ConnectionShutdownComplete, once. Link latency 10 ms: the server sees the
// ClientHello at 10 ms and its first flight would reach the client at 20 ms.
func TestSimClientShutdownDuringHandshake(t *testing.T) {
	for _, c := range []struct {
		name  string
		close bool // Connection.Close instead of Shutdown
		hold  bool // the server app answers NewConnection only after the client is gone
	}{
		{"shutdown", false, false},
		{"close", true, false},
		{"shutdown while the server decides", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			simTest(t, func(t *testing.T) {
				p := quicxtest.NewPair(t, quicxtest.PairConfig{
					NoConnect: true,
					Link:      quicxtest.Link{Latency: 10 * time.Millisecond},
				})
				conn, err := p.ClientRegistration.OpenConnection()
				simMust(t, err)
				t.Cleanup(func() { _ = conn.Close() }) // before the pair's cleanup
				w := quicxtest.NewWatcher(conn.Events(), quicxtest.Since(p.Origin()))
				start := time.Now()
				simMust(t, conn.Start(p.ClientConfig, quicx.AddressFamilyUnspec, "server", p.Addr.Port()))

				var nc *quicx.NewConnection
				if c.hold {
					nc, err = quicxtest.Await[*quicx.NewConnection](p.ListenerEvents)
					simMust(t, err)
				} else {
					// The server accepts as the ClientHello arrives (10 ms); the
					// client gives up at 15 ms, before the server's flight arrives.
					go func() {
						if ev, err := quicxtest.Await[*quicx.NewConnection](p.ListenerEvents); err == nil {
							nc = ev
							_ = ev.Accept(p.ServerConfig)
						}
					}()
					time.Sleep(15 * time.Millisecond) // the scenario: the moment the client gives up
				}
				shutAt := time.Since(start)
				if c.close {
					simMust(t, conn.Close())
				} else {
					simMust(t, conn.Shutdown(quicx.ShutdownNone, 0x42))
				}
				_, err = w.ExpectExactly(quicxtest.Equal(&quicx.ConnectionShutdownComplete{AppCloseInProgress: c.close}))
				simMust(t, err)
				simMust(t, w.ExpectClosed())
				if at := w.Observed()[0].At; at != shutAt {
					t.Errorf("client ShutdownComplete at %v, want %v (at once)", at, shutAt)
				}

				var acceptAt time.Duration
				if c.hold {
					// The app decides late, when the close (sent at 10 ms) has
					// long arrived: it waited in the frozen connection's queue.
					time.Sleep(50 * time.Millisecond)
					acceptAt = time.Since(start)
					simMust(t, nc.Accept(p.ServerConfig))
				} else if nc == nil {
					t.Fatal("the server never saw the client")
				}
				sw := quicxtest.NewWatcher(nc.Connection.Events(), quicxtest.Since(p.Origin()))
				sw.SetTimeout(time.Minute)
				t.Cleanup(func() { _ = nc.Connection.Close() })
				_, err = sw.ExpectExactly(
					quicxtest.Equal(&quicx.ShutdownInitiatedByTransport{Status: quicx.ErrUserCanceled, ErrorCode: 0xc}),
					quicxtest.Equal(&quicx.ConnectionShutdownComplete{}),
				)
				simMust(t, err)
				simMust(t, sw.ExpectClosed())
				// The close arrives 10 ms after the client sent it; a held
				// server processes it as soon as the app answers.
				want := shutAt + 10*time.Millisecond
				if c.hold {
					want = acceptAt
				}
				got := sw.Observed()[0].At - start.Sub(p.Origin())
				simBetween(t, "server learns of the close", got, want, want+simSlack)
			})
		})
	}
}
