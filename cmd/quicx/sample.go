package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"quicx.dev/quicx"
)

const sampleSynopsis = `MsQuic's quicsample re-created on quicx (ALPN "sample", UDP port 4567).

  quicx sample -server [-cert c.pem -key k.pem]     serve; a certificate is generated if none is given
  quicx sample -client -target HOST [-unsecure] [-ticket HEX]

The server answers each stream with 100 bytes of its own and FIN once the
client's FIN arrived, and sends every client a resumption ticket. The client
sends 100 bytes with FIN, prints the response and the ticket (pass it back
with -ticket to resume), and ends when the connection goes idle.

With neither -server nor -client: an in-process demo on loopback with a
generated certificate, a stream echoed, and every object's event timeline.`

func runSample(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sample", sampleSynopsis, stderr)
	msg := fs.String("message", "hello, quicx", "demo: the message the client sends")
	server := fs.Bool("server", false, "run quicsample's server")
	client := fs.Bool("client", false, "run quicsample's client")
	var o sampleOptions
	fs.UintVar(&o.port, "port", samplePort, "UDP port")
	fs.StringVar(&o.certFile, "cert", "", "server: PEM certificate file (default: a generated certificate)")
	fs.StringVar(&o.keyFile, "key", "", "server: PEM private key file")
	fs.StringVar(&o.target, "target", "", "client: server host name or IP address")
	fs.BoolVar(&o.unsecure, "unsecure", false, "client: do not validate the server's certificate")
	fs.StringVar(&o.ticket, "ticket", "", "client: resumption ticket (hex) from an earlier run")
	fs.DurationVar(&o.idle, "idle-timeout", time.Second, "idle timeout (quicsample uses 1s)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *server && *client:
		fmt.Fprintln(stderr, "-server and -client exclude each other")
		return errUsage
	case o.port == 0 || o.port > 65535 || (o.certFile == "") != (o.keyFile == ""):
		fmt.Fprintln(stderr, "-port must be 1 to 65535; -cert and -key go together")
		return errUsage
	case *server:
		return sampleServer(ctx, o, stdout)
	case *client:
		return sampleClient(ctx, o, stdout)
	}
	return sampleDemo(ctx, *msg, stdout)
}

// timeline records the events of several objects, each under its own name.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	order []string
	rows  map[string][]timelineRow
}

type timelineRow struct {
	at  time.Duration
	ev  fmt.Stringer
	fin bool
}

func newTimeline() *timeline { return &timeline{start: time.Now(), rows: map[string][]timelineRow{}} }

func (t *timeline) add(object string, ev fmt.Stringer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.rows[object]; !ok {
		t.order = append(t.order, object)
	}
	fin := false
	switch ev.(type) {
	case *quicx.ListenerStopComplete, *quicx.ConnectionShutdownComplete, *quicx.StreamShutdownComplete:
		fin = true
	}
	t.rows[object] = append(t.rows[object], timelineRow{at: time.Since(t.start), ev: ev, fin: fin})
}

// print writes every object's timeline and reports objects that did not end
// with exactly one final event, last.
func (t *timeline) print(w io.Writer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var bad []string
	for _, obj := range t.order {
		fmt.Fprintf(w, "%s\n", obj)
		rows := t.rows[obj]
		finals := 0
		for _, r := range rows {
			fmt.Fprintf(w, "  %9.3fms  %s\n", float64(r.at.Microseconds())/1000, r.ev)
			if r.fin {
				finals++
			}
		}
		if finals != 1 || !rows[len(rows)-1].fin {
			bad = append(bad, obj)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("objects without exactly one final event, last: %v", bad)
	}
	return nil
}

// sampleDemo runs the in-process client/server demo.
func sampleDemo(ctx context.Context, message string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "quicx-sample"})
	if err != nil {
		return err
	}
	defer reg.Close()

	settings := &quicx.Settings{PeerBidiStreamCount: 1, IdleTimeout: 10 * time.Second}
	cert, err := quicx.SelfSignedCertificate()
	if err != nil {
		return err
	}
	serverCfg, err := reg.OpenConfiguration([]string{"sample"}, settings)
	if err != nil {
		return err
	}
	defer serverCfg.Close()
	if err := serverCfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert}); err != nil {
		return err
	}
	clientCfg, err := reg.OpenConfiguration([]string{"sample"}, settings)
	if err != nil {
		return err
	}
	defer clientCfg.Close()
	if err := clientCfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}); err != nil {
		return err
	}

	tl := newTimeline()
	listener, err := reg.OpenListener()
	if err != nil {
		return err
	}
	if err := listener.SetSettings(settings); err != nil {
		return err
	}
	if err := listener.Start([]string{"sample"}, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		return err
	}
	addr, err := listener.Addr()
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	serverDone := make(chan struct{})
	listenerDone := make(chan struct{})
	go func() {
		defer close(listenerDone)
		for ev := range listener.Events() {
			tl.add("listener", ev)
			if nc, ok := ev.(*quicx.NewConnection); ok {
				if err := nc.Accept(serverCfg); err != nil {
					nc.Reject(err)
					continue
				}
				wg.Go(func() { sampleServerConn(nc.Connection, tl, serverDone) })
			}
		}
	}()

	conn, err := reg.OpenConnection()
	if err != nil {
		return err
	}
	if err := conn.Start(clientCfg, quicx.AddressFamilyINET, "localhost", addr.Port()); err != nil {
		return err
	}
	var echoed []byte
	for ev := range conn.Events() {
		tl.add("client connection", ev)
		switch ev.(type) {
		case *quicx.Connected:
			// The stream is opened from inside the event loop: quicx never waits
			// for this goroutine.
			if err := sampleClientStream(conn, message, tl, &echoed, &wg); err != nil {
				_ = conn.Shutdown(quicx.ShutdownNone, 1)
			}
		case *quicx.ConnectionShutdownComplete:
			_ = conn.Close()
		}
	}
	select {
	case <-serverDone:
	case <-ctx.Done():
		return errors.New("the server connection did not finish")
	}
	if err := listener.Close(); err != nil {
		return err
	}
	<-listenerDone
	wg.Wait()

	fmt.Fprintf(stdout, "quicx sample: in-process demo on %s, ALPN %q\n", addr, "sample")
	fmt.Fprintf(stdout, "client sent %q, got back %q\n\n", message, echoed)
	if err := tl.print(stdout); err != nil {
		return err
	}
	if !bytes.Equal(echoed, []byte(message)) {
		return fmt.Errorf("echo mismatch: sent %q, got %q", message, echoed)
	}
	return nil
}

// sampleClientStream opens the client's stream, sends message with FIN and
// collects the echo; when the stream is done it shuts the connection down.
func sampleClientStream(conn *quicx.Connection, message string, tl *timeline, echoed *[]byte, wg *sync.WaitGroup) error {
	s, err := conn.OpenStream(quicx.StreamOpenNone)
	if err != nil {
		return err
	}
	if err := s.Send([][]byte{[]byte(message)}, quicx.SendStart|quicx.SendFin, "request"); err != nil {
		_ = s.Close()
		return err
	}
	wg.Go(func() {
		for ev := range s.Events() {
			tl.add("client stream", ev)
			switch e := ev.(type) {
			case *quicx.Receive:
				for _, b := range e.Buffers {
					*echoed = append(*echoed, b...)
				}
				e.Complete(e.TotalLength())
			case *quicx.StreamShutdownComplete:
				_ = s.Close()
				_ = conn.Shutdown(quicx.ShutdownNone, 0)
			}
		}
	})
	return nil
}

// sampleServerConn serves one connection: every peer stream is echoed back.
func sampleServerConn(conn *quicx.Connection, tl *timeline, done chan<- struct{}) {
	defer close(done)
	var wg sync.WaitGroup
	for ev := range conn.Events() {
		tl.add("server connection", ev)
		switch e := ev.(type) {
		case *quicx.PeerStreamStarted:
			wg.Go(func() { sampleEcho(e.Stream, tl) })
		case *quicx.ConnectionShutdownComplete:
			_ = conn.Close()
		}
	}
	wg.Wait()
}

// sampleEcho sends a peer stream's data back, with FIN after the peer's FIN.
func sampleEcho(s *quicx.Stream, tl *timeline) {
	for ev := range s.Events() {
		tl.add("server stream", ev)
		switch e := ev.(type) {
		case *quicx.Receive:
			var data []byte
			for _, b := range e.Buffers {
				data = append(data, b...)
			}
			flags := quicx.SendNone
			if e.Flags&quicx.ReceiveFin != 0 {
				flags = quicx.SendFin
			}
			e.Complete(e.TotalLength())
			if len(data) > 0 || flags != quicx.SendNone {
				_ = s.Send([][]byte{data}, flags, "echo")
			}
		case *quicx.StreamShutdownComplete:
			_ = s.Close()
		}
	}
}
