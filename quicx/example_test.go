package quicx_test

import (
	"fmt"
	"net/netip"

	"quicx.dev/quicx"
)

// A server and a client on loopback: the client sends a request with FIN on a
// bidirectional stream and the server answers it, everything driven from event
// loops.
func Example() {
	reg, _ := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "example"})
	defer reg.Close()

	// MsQuic's default lets the peer open no stream: allow one.
	settings := &quicx.Settings{PeerBidiStreamCount: 1}
	cert, _ := quicx.SelfSignedCertificate()
	serverCfg, _ := reg.OpenConfiguration([]string{"example"}, settings)
	defer serverCfg.Close()
	_ = serverCfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert})
	clientCfg, _ := reg.OpenConfiguration([]string{"example"}, settings)
	defer clientCfg.Close()
	_ = clientCfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation})

	l, _ := reg.OpenListener()
	_ = l.SetSettings(settings)
	_ = l.Start([]string{"example"}, netip.MustParseAddrPort("127.0.0.1:0"))
	addr, _ := l.Addr()
	served := make(chan struct{})
	go func() {
		for ev := range l.Events() {
			if nc, ok := ev.(*quicx.NewConnection); ok {
				_ = nc.Accept(serverCfg)
				go serve(nc.Connection, served)
			}
		}
	}()

	conn, _ := reg.OpenConnection()
	_ = conn.Start(clientCfg, quicx.AddressFamilyINET, "localhost", addr.Port())
	for ev := range conn.Events() {
		switch ev.(type) {
		case *quicx.Connected:
			s, _ := conn.OpenStream(quicx.StreamOpenNone)
			_ = s.Send([][]byte{[]byte("ping")}, quicx.SendStart|quicx.SendFin, nil)
			go func() {
				for ev := range s.Events() {
					switch e := ev.(type) {
					case *quicx.Receive:
						for _, b := range e.Buffers {
							fmt.Printf("client got %q\n", b)
						}
						e.Complete(e.TotalLength())
					case *quicx.StreamShutdownComplete:
						_ = s.Close()
						_ = conn.Shutdown(quicx.ShutdownNone, 0)
					}
				}
			}()
		case *quicx.ConnectionShutdownComplete:
			fmt.Println("client connection done")
			_ = conn.Close()
		}
	}
	<-served
	fmt.Println("server connection done")
	_ = l.Close()
	// Output:
	// server got "ping"
	// client got "pong"
	// client connection done
	// server connection done
}

// serve answers each request stream of conn with "pong".
func serve(conn *quicx.Connection, done chan<- struct{}) {
	defer close(done)
	for ev := range conn.Events() {
		switch e := ev.(type) {
		case *quicx.PeerStreamStarted:
			s := e.Stream
			go func() {
				for ev := range s.Events() {
					switch e := ev.(type) {
					case *quicx.Receive:
						for _, b := range e.Buffers {
							fmt.Printf("server got %q\n", b)
						}
						e.Complete(e.TotalLength())
					case *quicx.PeerSendShutdown:
						_ = s.Send([][]byte{[]byte("pong")}, quicx.SendFin, nil)
					case *quicx.StreamShutdownComplete:
						_ = s.Close()
					}
				}
			}()
		case *quicx.ConnectionShutdownComplete:
			_ = conn.Close()
		}
	}
}

// Errors are values: each wraps a Status, usable with errors.Is and
// errors.As.
func ExampleStatus() {
	reg, _ := quicx.OpenRegistration(quicx.RegistrationConfig{})
	defer reg.Close()
	_, err := reg.OpenConfiguration(nil, nil)
	fmt.Println(quicx.StatusOf(err) == quicx.ErrInvalidParameter)
	fmt.Println(err)
	// Output:
	// true
	// quicx: OpenConfiguration: QUIC_STATUS_INVALID_PARAMETER: no ALPN
}

// A handler unit-tested without any network: feed it events, observe its
// answers.
func ExampleNewReceiveEvent() {
	events := make(chan quicx.StreamEvent, 2)
	completed := make(chan uint64, 1)
	events <- quicx.NewReceiveEvent(0, [][]byte{[]byte("hello")}, quicx.ReceiveFin, func(n uint64) { completed <- n })
	events <- &quicx.StreamShutdownComplete{}
	close(events)

	// The handler under test: counts bytes and completes every receive.
	total := uint64(0)
	for ev := range events {
		if r, ok := ev.(*quicx.Receive); ok {
			total += r.TotalLength()
			r.Complete(r.TotalLength())
		}
	}
	fmt.Println(total, <-completed)
	// Output: 5 5
}
