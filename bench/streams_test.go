package bench

import (
	"context"
	"crypto/tls"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"quicx.dev/quicx"
)

// rawPair is a connected quic-go client and server whose server echoes every
// stream (reads to FIN, writes it back with FIN).
type rawPair struct {
	ln     *quic.Listener
	client *quic.Conn
	server *quic.Conn
}

func newRawPair(b *testing.B, cert *tls.Certificate, streams int64) *rawPair {
	conf := &quic.Config{MaxIncomingStreams: streams, MaxIncomingUniStreams: -1}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"bench"}}, conf)
	if err != nil {
		b.Fatal(err)
	}
	p := &rawPair{ln: ln}
	accepted := make(chan *quic.Conn, 1)
	go func() {
		c, err := ln.Accept(context.Background())
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
		for {
			s, err := c.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				data, err := io.ReadAll(s)
				if err != nil {
					return
				}
				_, _ = s.Write(data)
				_ = s.Close()
			}()
		}
	}()
	p.client, err = quic.DialAddr(context.Background(), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, conf)
	if err != nil {
		b.Fatal(err)
	}
	p.server = <-accepted
	return p
}

func (p *rawPair) close() {
	_ = p.client.CloseWithError(0, "")
	<-p.server.Context().Done()
	_ = p.ln.Close()
}

// request does one echo exchange on a new stream.
func (p *rawPair) request(b *testing.B, payload []byte) {
	s, err := p.client.OpenStreamSync(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Write(payload); err != nil {
		b.Fatal(err)
	}
	_ = s.Close()
	got, err := io.ReadAll(s)
	if err != nil || len(got) != len(payload) {
		b.Fatalf("echo: %d bytes, %v", len(got), err)
	}
}

// quicxPair is the same over quicx: the server echoes each stream from its
// event loop.
type quicxPair struct {
	reg    *quicx.Registration
	cfgs   []*quicx.Configuration
	l      *quicx.Listener
	client *quicx.Connection
	server *quicx.Connection
	done   sync.WaitGroup
}

func newQuicxPair(b *testing.B, cert *tls.Certificate, streams uint16) *quicxPair {
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	p := &quicxPair{reg: reg}
	settings := &quicx.Settings{PeerBidiStreamCount: streams}
	scfg, _ := reg.OpenConfiguration([]string{"bench"}, settings)
	_ = scfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert})
	ccfg, _ := reg.OpenConfiguration([]string{"bench"}, settings)
	_ = ccfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation})
	p.cfgs = []*quicx.Configuration{scfg, ccfg}
	p.l, _ = reg.OpenListener()
	_ = p.l.SetSettings(settings)
	if err := p.l.Start([]string{"bench"}, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		b.Fatal(err)
	}
	addr, _ := p.l.Addr()
	accepted := make(chan *quicx.Connection, 1)
	p.done.Go(func() {
		for ev := range p.l.Events() {
			if nc, ok := ev.(*quicx.NewConnection); ok {
				_ = nc.Accept(scfg)
				accepted <- nc.Connection
			}
		}
	})
	p.client, _ = reg.OpenConnection()
	if err := p.client.Start(ccfg, quicx.AddressFamilyINET, "127.0.0.1", addr.Port()); err != nil {
		b.Fatal(err)
	}
	p.server = <-accepted
	p.done.Go(func() { echoConn(p.server) })
	p.done.Go(func() {
		for ev := range p.client.Events() {
			if _, ok := ev.(*quicx.ConnectionShutdownComplete); ok {
				_ = p.client.Close()
			}
		}
	})
	return p
}

// echoConn echoes every peer stream: the data comes back with FIN once the
// peer's FIN is consumed.
func echoConn(c *quicx.Connection) {
	for ev := range c.Events() {
		switch e := ev.(type) {
		case *quicx.PeerStreamStarted:
			go func(s *quicx.Stream) {
				var data []byte
				for ev := range s.Events() {
					switch e := ev.(type) {
					case *quicx.Receive:
						for _, b := range e.Buffers {
							data = append(data, b...)
						}
						e.Complete(e.TotalLength())
					case *quicx.PeerSendShutdown:
						_ = s.Send([][]byte{data}, quicx.SendFin, nil)
					case *quicx.StreamShutdownComplete:
						_ = s.Close()
					}
				}
			}(e.Stream)
		case *quicx.ConnectionShutdownComplete:
			_ = c.Close()
		}
	}
}

func (p *quicxPair) close() {
	_ = p.client.Shutdown(quicx.ShutdownNone, 0)
	_ = p.l.Close() // ends the listener's event loop
	p.done.Wait()
	for _, c := range p.cfgs {
		_ = c.Close()
	}
	_ = p.reg.Close()
}

// request does one echo exchange on a new stream, the way a quicx user would:
// start with the request and FIN, read the response until the stream ends.
func (p *quicxPair) request(b *testing.B, payload []byte) {
	s, err := p.client.OpenStream(quicx.StreamOpenNone)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Send([][]byte{payload}, quicx.SendStart|quicx.SendFin, nil); err != nil {
		b.Fatal(err)
	}
	n := 0
	for ev := range s.Events() {
		switch e := ev.(type) {
		case *quicx.Receive:
			n += int(e.TotalLength())
			e.Complete(e.TotalLength())
		case *quicx.StartComplete:
			if e.Status != nil {
				b.Fatal(e.Status)
			}
		case *quicx.StreamShutdownComplete:
			_ = s.Close()
		}
	}
	if n != len(payload) {
		b.Fatalf("echo: %d bytes", n)
	}
}

// BenchmarkStreamOpenClose measures streams opened, used for one 1-byte echo
// and closed, one after another, per second: raw quic-go and quicx in the same
// run.
func BenchmarkStreamOpenClose(b *testing.B) {
	cert, _ := quicx.SelfSignedCertificate()
	raw := newRawPair(b, cert, 100)
	defer raw.close()
	qx := newQuicxPair(b, cert, 100)
	defer qx.close()
	payload := []byte{1}
	var rawTime, qxTime time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		raw.request(b, payload)
		t1 := time.Now()
		qx.request(b, payload)
		rawTime += t1.Sub(t0)
		qxTime += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "quic-go-streams/s")
	b.ReportMetric(float64(b.N)/qxTime.Seconds(), "quicx-streams/s")
	b.ReportMetric(rawTime.Seconds()/qxTime.Seconds(), "quicx/quic-go")
}

// BenchmarkRequestResponse100 runs 64 B requests with 64 B responses on 100
// parallel streams (a new stream per request), raw quic-go and quicx in the
// same run, and reports requests per second.
func BenchmarkRequestResponse100(b *testing.B) {
	cert, _ := quicx.SelfSignedCertificate()
	raw := newRawPair(b, cert, 200)
	defer raw.close()
	qx := newQuicxPair(b, cert, 200)
	defer qx.close()
	payload := make([]byte, 64)
	const parallel = 100
	run := func(do func()) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for w := range parallel {
			wg.Go(func() {
				for i := w; i < b.N; i += parallel {
					do()
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	b.ResetTimer()
	rawTime := run(func() { raw.request(b, payload) })
	qxTime := run(func() { qx.request(b, payload) })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "quic-go-req/s")
	b.ReportMetric(float64(b.N)/qxTime.Seconds(), "quicx-req/s")
	b.ReportMetric(rawTime.Seconds()/qxTime.Seconds(), "quicx/quic-go")
}

// BenchmarkIdleCost reports what an idle stream and an idle connection cost
// in goroutines and heap bytes, on both ends together, in quic-go and in
// quicx. Each iteration opens 200 streams that carry one byte and then idle.
func BenchmarkIdleCost(b *testing.B) {
	cert, _ := quicx.SelfSignedCertificate()
	const n = 200
	measure := func() (int, uint64) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return runtime.NumGoroutine(), m.HeapInuse
	}
	var rawG, rawB, qxG, qxB, rawCG, rawCB, qxCG, qxCB float64
	for range b.N {
		// Connections.
		g0, h0 := measure()
		raw := newRawPair(b, cert, n+10)
		g1, h1 := measure()
		// Streams: opened, one byte each way seen, left open.
		var held []*quic.Stream
		for range n {
			s, err := raw.client.OpenStreamSync(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			_, _ = s.Write([]byte{1})
			held = append(held, s)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) { // the server accepts asynchronously
			if g, _ := measure(); g-g1 >= n {
				break
			}
			time.Sleep(time.Millisecond)
		}
		g2, h2 := measure()
		rawCG += float64(g1 - g0)
		rawCB += float64(h1 - h0)
		rawG += float64(g2-g1) / n
		rawB += float64(h2-h1) / n
		for _, s := range held {
			s.CancelWrite(0)
			s.CancelRead(0)
		}
		raw.close()

		g0, h0 = measure()
		qx := newQuicxPair(b, cert, n+10)
		g1, h1 = measure()
		var qheld []*quicx.Stream
		started := 0
		for range n {
			s, _ := qx.client.OpenStream(quicx.StreamOpenNone)
			_ = s.Send([][]byte{{1}}, quicx.SendStart, nil)
			qheld = append(qheld, s)
		}
		for _, s := range qheld {
			for ev := range s.Events() {
				if _, ok := ev.(*quicx.SendComplete); ok {
					started++
					break
				}
			}
		}
		deadline = time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if g, _ := measure(); g-g1 >= n {
				break
			}
			time.Sleep(time.Millisecond)
		}
		g2, h2 = measure()
		qxCG += float64(g1 - g0)
		qxCB += float64(h1 - h0)
		qxG += float64(g2-g1) / n
		qxB += float64(h2-h1) / n
		for _, s := range qheld {
			_ = s.Close()
			for range s.Events() {
			}
		}
		qx.close()
	}
	k := float64(b.N)
	b.ReportMetric(rawG/k, "quic-go-goroutines/stream")
	b.ReportMetric(qxG/k, "quicx-goroutines/stream")
	b.ReportMetric(rawB/k, "quic-go-B/stream")
	b.ReportMetric(qxB/k, "quicx-B/stream")
	b.ReportMetric(rawCG/k, "quic-go-goroutines/conn")
	b.ReportMetric(qxCG/k, "quicx-goroutines/conn")
	b.ReportMetric(rawCB/k, "quic-go-B/conn")
	b.ReportMetric(qxCB/k, "quicx-B/conn")
}
