package quicx_test

import (
	"fmt"
	"net/netip"

	"quicx.dev/quicx"
)

// Client 0-RTT: a first connection keeps the server's resumption ticket; the
// second sets it and queues its request before it starts, so the request goes
// out in 0-RTT (MsQuic: queue 0-RTT data before ConnectionStart). A server
// subscribed to TrackZeroRTT sees the stream and its data marked.
func Example_zeroRTT() {
	reg, _ := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "example-0rtt"})
	defer reg.Close()

	serverSettings := &quicx.Settings{
		PeerUnidiStreamCount:  1,
		ServerResumptionLevel: quicx.ServerResumeAndZeroRTT,
		TransportEvents:       quicx.TrackZeroRTT,
	}
	cert, _ := quicx.SelfSignedCertificate()
	serverCfg, _ := reg.OpenConfiguration([]string{"example"}, serverSettings)
	defer serverCfg.Close()
	_ = serverCfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert})
	clientCfg, _ := reg.OpenConfiguration([]string{"example"}, &quicx.Settings{})
	defer clientCfg.Close()
	_ = clientCfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation})

	l, _ := reg.OpenListener()
	_ = l.SetSettings(serverSettings)
	_ = l.Start([]string{"example"}, netip.MustParseAddrPort("127.0.0.1:0"))
	addr, _ := l.Addr()
	got := make(chan string, 1) // what the server saw of the request
	go func() {
		for ev := range l.Events() {
			if nc, ok := ev.(*quicx.NewConnection); ok {
				_ = nc.Accept(serverCfg)
				go serveEarly(nc.Connection, got)
			}
		}
	}()

	// The first connection only fetches a ticket.
	var ticket []byte
	first, _ := reg.OpenConnection()
	_ = first.Start(clientCfg, quicx.AddressFamilyINET, "localhost", addr.Port())
	for ev := range first.Events() {
		switch e := ev.(type) {
		case *quicx.ResumptionTicketReceived:
			ticket = e.ResumptionTicket
			_ = first.Shutdown(quicx.ShutdownNone, 0)
		case *quicx.ConnectionShutdownComplete:
			_ = first.Close()
		}
	}

	// The second resumes, with its request queued before it starts.
	conn, _ := reg.OpenConnection()
	_ = conn.SetResumptionTicket(ticket)
	s, _ := conn.OpenStream(quicx.StreamOpenUnidirectional)
	_ = s.Send([][]byte{[]byte("early request")}, quicx.SendStart|quicx.SendFin|quicx.SendAllow0RTT, nil)
	go func() {
		for ev := range s.Events() {
			if _, ok := ev.(*quicx.StreamShutdownComplete); ok {
				_ = s.Close()
			}
		}
	}()
	_ = conn.Start(clientCfg, quicx.AddressFamilyINET, "localhost", addr.Port())
	for ev := range conn.Events() {
		switch e := ev.(type) {
		case *quicx.Connected:
			fmt.Println("client: resumed:", e.SessionResumed)
			fmt.Println(<-got)
			_ = conn.Shutdown(quicx.ShutdownNone, 0)
		case *quicx.ConnectionShutdownComplete:
			_ = conn.Close()
		}
	}
	_ = l.Close()
	// Output:
	// client: resumed: true
	// server: stream opened in 0-RTT: true, got "early request", received in 0-RTT: true
}

// serveEarly reads the peer's streams of conn and reports on got whether each
// was opened in 0-RTT, its data, and whether that data came in 0-RTT.
func serveEarly(conn *quicx.Connection, got chan<- string) {
	for ev := range conn.Events() {
		switch e := ev.(type) {
		case *quicx.PeerStreamStarted:
			s, opened := e.Stream, e.Flags&quicx.StreamOpen0RTT != 0
			go func() {
				var data []byte
				early := false
				for ev := range s.Events() {
					switch e := ev.(type) {
					case *quicx.Receive:
						for _, b := range e.Buffers {
							data = append(data, b...)
						}
						early = early || e.Flags&quicx.Receive0RTT != 0
						e.Complete(e.TotalLength())
					case *quicx.PeerSendShutdown:
						got <- fmt.Sprintf("server: stream opened in 0-RTT: %v, got %q, received in 0-RTT: %v", opened, data, early)
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
