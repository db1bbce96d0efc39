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

func newQuicxPair(b *testing.B, cert *tls.Certificate, streams uint16, events quicx.TransportEvents) *quicxPair {
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	p := &quicxPair{reg: reg}
	settings := &quicx.Settings{PeerBidiStreamCount: streams, TransportEvents: events}
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
	qx := newQuicxPair(b, cert, 100, 0)
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
	reportRates(b, "streams/s", rawTime, qxTime)
}

// BenchmarkRequestResponse100 runs 64 B requests with 64 B responses on 100
// parallel streams (a new stream per request), raw quic-go and quicx in the
// same run, and reports requests per second.
func BenchmarkRequestResponse100(b *testing.B) {
	cert, _ := quicx.SelfSignedCertificate()
	raw := newRawPair(b, cert, 200)
	defer raw.close()
	qx := newQuicxPair(b, cert, 200, 0)
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
	reportRates(b, "req/s", rawTime, qxTime)
}

// reportRates reports b.N operations over each library's total time, as a
// rate per second in unit, and quicx's rate over quic-go's.
func reportRates(b *testing.B, unit string, rawTime, qxTime time.Duration) {
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "quic-go-"+unit)
	b.ReportMetric(float64(b.N)/qxTime.Seconds(), "quicx-"+unit)
	b.ReportMetric(rawTime.Seconds()/qxTime.Seconds(), "quicx/quic-go")
}

// BenchmarkIdleCost reports what an idle stream and an idle connection cost
// in goroutines and heap bytes, on both ends together, in quic-go, in quicx
// and in quicx with TrackReceive (no reader goroutine while a stream waits).
// Each iteration opens 200 streams that carry one byte and then idle; the
// server side of each has the app's own goroutine (quic-go: io.ReadAll;
// quicx: a loop over the stream's events), which counts in every variant.
func BenchmarkIdleCost(b *testing.B) {
	cert, _ := quicx.SelfSignedCertificate()
	const n = 200
	type cost struct{ connG, connB, streamG, streamB float64 }
	var raw, qx, qxr cost
	add := func(c *cost, before, conn, streams sample) {
		c.connG += float64(conn.g - before.g)
		c.connB += float64(conn.heap - before.heap)
		c.streamG += float64(streams.g-conn.g) / n
		c.streamB += float64(streams.heap-conn.heap) / n
	}
	for range b.N {
		s0 := settle(0)
		rp := newRawPair(b, cert, n+10)
		s1 := settle(0)
		var held []*quic.Stream
		for range n {
			s, err := rp.client.OpenStreamSync(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			_, _ = s.Write([]byte{1})
			held = append(held, s)
		}
		add(&raw, s0, s1, settle(s1.g+n)) // the server accepts asynchronously
		for _, s := range held {
			s.CancelWrite(0)
			s.CancelRead(0)
		}
		rp.close()

		for _, v := range []struct {
			c      *cost
			events quicx.TransportEvents
		}{{&qx, 0}, {&qxr, quicx.TrackReceive}} {
			s0 := settle(0)
			p := newQuicxPair(b, cert, n+10, v.events)
			s1 := settle(0)
			var qheld []*quicx.Stream
			for range n {
				s, _ := p.client.OpenStream(quicx.StreamOpenNone)
				_ = s.Send([][]byte{{1}}, quicx.SendStart, nil)
				qheld = append(qheld, s)
			}
			for _, s := range qheld {
				waitSendComplete(s)
			}
			add(v.c, s0, s1, settle(s1.g+n))
			for _, s := range qheld {
				_ = s.Close()
				for range s.Events() {
				}
			}
			p.close()
		}
	}
	k := float64(b.N)
	for _, v := range []struct {
		name string
		c    cost
	}{{"quic-go", raw}, {"quicx", qx}, {"quicx-receive", qxr}} {
		b.ReportMetric(v.c.streamG/k, v.name+"-goroutines/stream")
		b.ReportMetric(v.c.streamB/k, v.name+"-B/stream")
		b.ReportMetric(v.c.connG/k, v.name+"-goroutines/conn")
		b.ReportMetric(v.c.connB/k, v.name+"-B/conn")
	}
}

// waitSendComplete reads s's events up to its first SendComplete.
func waitSendComplete(s *quicx.Stream) {
	for ev := range s.Events() {
		if _, ok := ev.(*quicx.SendComplete); ok {
			return
		}
	}
}

// sample is the goroutine count and heap in use after a full GC.
type sample struct {
	g    int
	heap uint64
}

// settle waits (up to 5 s) until at least min goroutines run and their number
// has not changed for 20 ms, then samples: work started asynchronously (the
// peer accepting streams, readers starting) has then landed.
func settle(min int) sample {
	measure := func() sample {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return sample{runtime.NumGoroutine(), m.HeapInuse}
	}
	deadline := time.Now().Add(5 * time.Second)
	last, stable := measure(), 0
	for time.Now().Before(deadline) && stable < 4 {
		time.Sleep(5 * time.Millisecond)
		s := measure()
		if s.g == last.g && s.g >= min {
			stable++
		} else {
			stable = 0
		}
		last = s
	}
	return last
}
