// Package bench measures quicx against raw quic-go doing the same work in the
// same run. Run with:
//
//	go test ./bench -run '^$' -bench . -benchtime 3x
package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"

	"quicx.dev/quicx"
)

// transferSize is what each transfer moves over one stream.
const transferSize = 256 << 20

// chunk is the size of each send: big, reused buffers, as a throughput-minded
// user of either library would write.
const chunk = 1 << 20

// BenchmarkStream256MiB moves 256 MiB over one stream through raw quic-go and
// through quicx, alternately within each iteration, and reports the
// throughput of each and their ratios. quic-go-traced has a no-op qlog
// recorder installed: what quic-go spends building qlog events, which quicx
// pays when a connection subscribes to recorder events (quicx-tracked).
func BenchmarkStream256MiB(b *testing.B) {
	cert, err := quicx.SelfSignedCertificate()
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		run  func(b *testing.B, cert *tls.Certificate) time.Duration
	}{
		{"quic-go", func(b *testing.B, c *tls.Certificate) time.Duration { return rawTransfer(b, c, nil) }},
		{"quic-go-traced", func(b *testing.B, c *tls.Certificate) time.Duration { return rawTransfer(b, c, noopTracer) }},
		{"quicx", func(b *testing.B, c *tls.Certificate) time.Duration { return quicxTransfer(b, c, 0) }},
		{"quicx-tracked", func(b *testing.B, c *tls.Certificate) time.Duration { return quicxTransfer(b, c, quicx.TrackAll) }},
	}
	total := make([]time.Duration, len(variants))
	b.SetBytes(transferSize)
	b.ResetTimer()
	for range b.N {
		for i, v := range variants {
			runtime.GC()
			total[i] += v.run(b, cert)
		}
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(transferSize) * float64(b.N) * 8 / d.Seconds() / 1e6 }
	base := mbps(total[0])
	for i, v := range variants {
		b.ReportMetric(mbps(total[i]), v.name+"-Mbit/s")
		if i > 0 {
			b.ReportMetric(mbps(total[i])/base, v.name+"/quic-go")
		}
	}
	// quicx subscribed to every recorder event against quic-go paying the same
	// qlog cost.
	b.ReportMetric(mbps(total[3])/mbps(total[1]), "quicx-tracked/quic-go-traced")
}

// noopTracer installs a qlog recorder that ignores every event: what quic-go
// itself spends building events, which quicx's recorder also pays.
func noopTracer(context.Context, bool, quic.ConnectionID) qlogwriter.Trace { return noopRecorder{} }

type noopRecorder struct{}

func (noopRecorder) AddProducer() qlogwriter.Recorder { return noopRecorder{} }
func (noopRecorder) RecordEvent(qlogwriter.Event)     {}
func (noopRecorder) Close() error                     { return nil }

// rawTransfer is the idiomatic quic-go way: Write big chunks, read with
// io.CopyBuffer. tracer, if not nil, is installed on both ends.
func rawTransfer(b *testing.B, cert *tls.Certificate, tracer func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace) time.Duration {
	conf := &quic.Config{Tracer: tracer}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"bench"}}, conf)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept(context.Background())
		if err != nil {
			done <- err
			return
		}
		s, err := c.AcceptStream(context.Background())
		if err != nil {
			done <- err
			return
		}
		n, err := io.CopyBuffer(io.Discard, s, make([]byte, 64<<10))
		if err == nil && n != transferSize {
			err = fmt.Errorf("received %d bytes", n)
		}
		done <- err
		<-c.Context().Done()
	}()
	start := time.Now()
	c, err := quic.DialAddr(context.Background(), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, conf)
	if err != nil {
		b.Fatal(err)
	}
	s, err := c.OpenStreamSync(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunk)
	for sent := 0; sent < transferSize; sent += chunk {
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = s.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	_ = c.CloseWithError(0, "")
	return d
}

// quicxTransfer does the same through quicx's event channels: the client keeps
// two sends outstanding, the server completes each receive as it comes.
func quicxTransfer(b *testing.B, cert *tls.Certificate, events quicx.TransportEvents) time.Duration {
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "bench", Profile: quicx.ProfileMaxThroughput})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	settings := &quicx.Settings{PeerBidiStreamCount: 1, TransportEvents: events}
	scfg, err := reg.OpenConfiguration([]string{"bench"}, settings)
	if err != nil {
		b.Fatal(err)
	}
	defer scfg.Close()
	if err := scfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert}); err != nil {
		b.Fatal(err)
	}
	ccfg, err := reg.OpenConfiguration([]string{"bench"}, settings)
	if err != nil {
		b.Fatal(err)
	}
	defer ccfg.Close()
	if err := ccfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}); err != nil {
		b.Fatal(err)
	}
	l, err := reg.OpenListener()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := l.SetSettings(settings); err != nil {
		b.Fatal(err)
	}
	if err := l.Start([]string{"bench"}, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		b.Fatal(err)
	}
	addr, _ := l.Addr()

	received := make(chan error, 1)
	go func() {
		for ev := range l.Events() {
			if nc, ok := ev.(*quicx.NewConnection); ok {
				if err := nc.Accept(scfg); err != nil {
					received <- err
					continue
				}
				go serveDiscard(nc.Connection, received)
			}
		}
	}()

	start := time.Now()
	c, err := reg.OpenConnection()
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(ccfg, quicx.AddressFamilyINET, "127.0.0.1", addr.Port()); err != nil {
		b.Fatal(err)
	}
	s, err := c.OpenStream(quicx.StreamOpenNone)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunk)
	sent := 0
	send := func() {
		flags := quicx.SendNone
		if sent == 0 {
			flags |= quicx.SendStart
		}
		if sent+chunk >= transferSize {
			flags |= quicx.SendFin
		}
		if err := s.Send([][]byte{buf}, flags, nil); err != nil {
			b.Fatal(err)
		}
		sent += chunk
	}
	send()
	send()
	var d time.Duration
	for ev := range s.Events() {
		switch e := ev.(type) {
		case *quicx.SendComplete:
			if e.Canceled {
				b.Fatal("send canceled")
			}
			if sent < transferSize {
				send()
			}
		case *quicx.Receive:
			e.Complete(e.TotalLength())
		case *quicx.SendShutdownComplete:
			if err := <-received; err != nil {
				b.Fatal(err)
			}
			d = time.Since(start)
			_ = s.Shutdown(quicx.StreamShutdownAbortReceive, 0)
		case *quicx.StreamShutdownComplete:
			_ = s.Close()
		}
	}
	_ = c.Shutdown(quicx.ShutdownNone, 0)
	for range c.Events() {
	}
	_ = c.Close()
	return d
}

// serveDiscard consumes every stream of conn and reports the byte count of
// the first one once its FIN is consumed.
func serveDiscard(conn *quicx.Connection, received chan<- error) {
	for ev := range conn.Events() {
		switch e := ev.(type) {
		case *quicx.PeerStreamStarted:
			go func(s *quicx.Stream) {
				var n uint64
				for ev := range s.Events() {
					switch e := ev.(type) {
					case *quicx.Receive:
						n += e.TotalLength()
						e.Complete(e.TotalLength())
					case *quicx.PeerSendShutdown:
						if n != transferSize {
							received <- fmt.Errorf("received %d bytes", n)
						} else {
							received <- nil
						}
						_ = s.Shutdown(quicx.StreamShutdownGraceful, 0)
					case *quicx.PeerSendAborted:
						received <- errors.New("peer aborted")
					case *quicx.StreamShutdownComplete:
						_ = s.Close()
					}
				}
			}(e.Stream)
		case *quicx.ConnectionShutdownComplete:
			_ = conn.Close()
		}
	}
}
