package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"quicx.dev/quicx"
)

// quicsample's wire contract.
const (
	sampleALPN       = "sample"
	samplePort       = 4567
	sampleSendLength = 100 // bytes each side sends, as quicsample does
)

// sampleOptions are the flags of the server and client modes.
type sampleOptions struct {
	port     uint
	certFile string
	keyFile  string
	target   string
	unsecure bool
	ticket   string
	idle     time.Duration
}

// sampleSettings are quicsample's settings: one peer stream, resumption
// tickets, a short idle timeout.
func sampleSettings(idle time.Duration) *quicx.Settings {
	return &quicx.Settings{
		IdleTimeout:           idle,
		PeerBidiStreamCount:   1,
		ServerResumptionLevel: quicx.ServerResumeOnly,
	}
}

// sampleServer runs quicsample's server until ctx ends: every peer stream is
// answered with the server's own 100 bytes and FIN once the peer's FIN has
// arrived, and every connection gets a resumption ticket.
func sampleServer(ctx context.Context, o sampleOptions, stdout io.Writer) error {
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "quicsample"})
	if err != nil {
		return err
	}
	defer reg.Close()
	settings := sampleSettings(o.idle)
	cfg, err := reg.OpenConfiguration([]string{sampleALPN}, settings)
	if err != nil {
		return err
	}
	defer cfg.Close()
	cred := &quicx.Credential{Type: quicx.CredentialCertificateFile, CertFile: o.certFile, KeyFile: o.keyFile}
	if o.certFile == "" && o.keyFile == "" {
		cert, err := quicx.SelfSignedCertificate()
		if err != nil {
			return err
		}
		cred = &quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert}
	}
	if err := cfg.LoadCredential(cred); err != nil {
		return err
	}
	l, err := reg.OpenListener()
	if err != nil {
		return err
	}
	if err := l.SetSettings(settings); err != nil {
		return err
	}
	if err := l.Start([]string{sampleALPN}, netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(o.port))); err != nil {
		return err
	}
	addr, _ := l.Addr()
	fmt.Fprintf(stdout, "[list] listening on %s, ALPN %q\n", addr, sampleALPN)

	var wg sync.WaitGroup
	events := l.Events()
	for {
		select {
		case <-ctx.Done():
			_ = l.Close()
			for range events {
			}
			wg.Wait()
			return nil
		case ev, ok := <-events:
			if !ok {
				wg.Wait()
				return nil
			}
			nc, isNew := ev.(*quicx.NewConnection)
			if !isNew {
				continue
			}
			// quic-go issues the connection's one ticket when the handshake
			// completes: quicsample's ConnectionSendResumptionTicket is made before
			// the handshake can go on.
			if err := nc.Connection.SendResumptionTicket(quicx.SendResumptionNone, nil); err != nil {
				fmt.Fprintf(stdout, "[conn] resumption ticket: %v\n", err)
			}
			if err := nc.Accept(cfg); err != nil {
				fmt.Fprintf(stdout, "[list] accept failed: %v\n", err)
				nc.Reject(err)
				continue
			}
			wg.Go(func() { sampleServeConn(nc.Connection, stdout) })
		}
	}
}

func sampleServeConn(c *quicx.Connection, stdout io.Writer) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ev := range c.Events() {
		switch e := ev.(type) {
		case *quicx.Connected:
			fmt.Fprintf(stdout, "[conn] connected (resumed=%v)\n", e.SessionResumed)
		case *quicx.PeerStreamStarted:
			wg.Go(func() { sampleServeStream(e.Stream, stdout) })
		case *quicx.ShutdownInitiatedByTransport:
			fmt.Fprintf(stdout, "[conn] shut down by transport: %s\n", e)
		case *quicx.ShutdownInitiatedByPeer:
			fmt.Fprintf(stdout, "[conn] shut down by peer: code %#x\n", e.ErrorCode)
		case *quicx.ConnectionShutdownComplete:
			fmt.Fprintln(stdout, "[conn] all done")
			_ = c.Close()
		}
	}
}

func sampleServeStream(s *quicx.Stream, stdout io.Writer) {
	for ev := range s.Events() {
		switch e := ev.(type) {
		case *quicx.Receive:
			fmt.Fprintf(stdout, "[strm] data received: %d bytes\n", e.TotalLength())
			e.Complete(e.TotalLength())
		case *quicx.PeerSendShutdown:
			fmt.Fprintln(stdout, "[strm] peer shut down; sending")
			data := make([]byte, sampleSendLength)
			for i := range data {
				data[i] = byte(i)
			}
			if err := s.Send([][]byte{data}, quicx.SendFin, nil); err != nil {
				_ = s.Shutdown(quicx.StreamShutdownAbort, 0)
			}
		case *quicx.PeerSendAborted:
			_ = s.Shutdown(quicx.StreamShutdownAbort, 0)
		case *quicx.StreamShutdownComplete:
			fmt.Fprintln(stdout, "[strm] all done")
			_ = s.Close()
		}
	}
}

// sampleClient runs quicsample's client: connect, send 100 bytes with FIN on
// one stream, print the response and the resumption ticket, and end when the
// connection goes idle.
func sampleClient(ctx context.Context, o sampleOptions, stdout io.Writer) error {
	if o.target == "" {
		return errors.New("-client needs -target")
	}
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "quicsample"})
	if err != nil {
		return err
	}
	defer reg.Close()
	cfg, err := reg.OpenConfiguration([]string{sampleALPN}, sampleSettings(o.idle))
	if err != nil {
		return err
	}
	defer cfg.Close()
	flags := quicx.CredentialClient
	if o.unsecure {
		flags |= quicx.CredentialNoCertificateValidation
	}
	if err := cfg.LoadCredential(&quicx.Credential{Flags: flags}); err != nil {
		return err
	}
	c, err := reg.OpenConnection()
	if err != nil {
		return err
	}
	if o.ticket != "" {
		blob, err := hex.DecodeString(o.ticket)
		if err != nil {
			return fmt.Errorf("-ticket: %w", err)
		}
		if err := c.SetResumptionTicket(blob); err != nil {
			_ = c.Close()
			return err
		}
	}
	if err := c.Start(cfg, quicx.AddressFamilyUnspec, o.target, uint16(o.port)); err != nil {
		_ = c.Close()
		return err
	}
	var (
		wg       sync.WaitGroup
		received = make(chan int, 1)
		failure  error
	)
	events := c.Events()
	for events != nil {
		select {
		case <-ctx.Done():
			_ = c.Shutdown(quicx.ShutdownNone, 0)
			ctx = context.Background() // keep draining until the final event
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			switch e := ev.(type) {
			case *quicx.Connected:
				fmt.Fprintf(stdout, "[conn] connected (resumed=%v)\n", e.SessionResumed)
				s, err := c.OpenStream(quicx.StreamOpenNone)
				if err != nil {
					failure = err
					_ = c.Shutdown(quicx.ShutdownNone, 1)
					continue
				}
				data := make([]byte, sampleSendLength)
				if err := s.Send([][]byte{data}, quicx.SendStart|quicx.SendFin, nil); err != nil {
					failure = err
					_ = s.Close()
					_ = c.Shutdown(quicx.ShutdownNone, 1)
					continue
				}
				fmt.Fprintf(stdout, "[strm] sending %d bytes\n", sampleSendLength)
				wg.Go(func() { received <- sampleReadStream(s, stdout) })
			case *quicx.ResumptionTicketReceived:
				fmt.Fprintf(stdout, "[conn] resumption ticket received (%d bytes):\n%s\n", len(e.ResumptionTicket), hex.EncodeToString(e.ResumptionTicket))
			case *quicx.ShutdownInitiatedByTransport:
				if !errors.Is(e.Status, quicx.ErrConnectionIdle) {
					failure = fmt.Errorf("connection failed: %w", e.Status)
				}
				fmt.Fprintf(stdout, "[conn] shut down by transport: %s\n", e)
			case *quicx.ShutdownInitiatedByPeer:
				fmt.Fprintf(stdout, "[conn] shut down by peer: code %#x\n", e.ErrorCode)
			case *quicx.ConnectionShutdownComplete:
				fmt.Fprintln(stdout, "[conn] all done")
				_ = c.Close()
			}
		}
	}
	wg.Wait()
	if failure != nil {
		return failure
	}
	select {
	case n := <-received:
		if n != sampleSendLength {
			return fmt.Errorf("received %d bytes, want %d", n, sampleSendLength)
		}
	default:
		return errors.New("no response received")
	}
	return nil
}

// sampleReadStream prints the response and returns its length.
func sampleReadStream(s *quicx.Stream, stdout io.Writer) int {
	n := 0
	for ev := range s.Events() {
		switch e := ev.(type) {
		case *quicx.Receive:
			n += int(e.TotalLength())
			fmt.Fprintf(stdout, "[strm] data received: %d bytes\n", e.TotalLength())
			e.Complete(e.TotalLength())
		case *quicx.PeerSendShutdown:
			fmt.Fprintln(stdout, "[strm] peer shut down")
		case *quicx.StreamShutdownComplete:
			fmt.Fprintln(stdout, "[strm] all done")
			_ = s.Close()
		}
	}
	return n
}
