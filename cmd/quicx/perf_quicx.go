package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"quicx.dev/internal/perfbase"
	"quicx.dev/quicx"
)

// perfSendDepth is how many sends a perf stream keeps queued in quicx, so that
// quicx's writer always has the next buffer when it finishes one.
const perfSendDepth = 4

// quicxSettings translates the shared perf settings into quicx's.
func quicxSettings(s perfbase.Settings, events bool) *quicx.Settings {
	var te quicx.TransportEvents // quicx's default: none
	if events {
		te = quicx.TrackAll
	}
	return &quicx.Settings{
		HandshakeIdleTimeout:    s.Handshake,
		IdleTimeout:             s.IdleTimeout,
		PeerBidiStreamCount:     uint16(s.PeerStreams),
		PeerUnidiStreamCount:    uint16(s.PeerStreams),
		StreamRecvWindowDefault: uint32(s.StreamWindow),
		ConnFlowControlWindow:   uint32(s.ConnWindow),
		TransportEvents:         te,
	}
}

// quicxOptions are the quicx-only knobs of the tool.
type quicxOptions struct {
	profile quicx.ExecutionProfile
	events  bool // Settings.TransportEvents
}

// ---- server ----

// quicxServer is the perf server on quicx: a listener whose connections each
// have a goroutine reading their events, and a goroutine per stream.
type quicxServer struct {
	reg    *quicx.Registration
	conf   *quicx.Configuration
	l      *quicx.Listener
	addr   netip.AddrPort
	resp   []byte   // the shared, read-only response payload
	full   [][]byte // one full response send, shared by every stream
	lnDone chan struct{}
	wg     sync.WaitGroup
}

// listenQuicx starts a quicx perf server on addr.
func listenQuicx(addr netip.AddrPort, cert *tls.Certificate, ioSize int, opt quicxOptions) (*quicxServer, error) {
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "quicx-perf-server", Profile: opt.profile})
	if err != nil {
		return nil, err
	}
	s := &quicxServer{reg: reg, resp: perfbase.Payload(ioSize), lnDone: make(chan struct{})}
	s.full = [][]byte{s.resp}
	if err := s.start(addr, cert, opt); err != nil {
		_ = reg.Shutdown(quicx.ShutdownNone, 0)
		if s.l != nil {
			_ = s.l.Close()
		}
		if s.conf != nil {
			_ = s.conf.Close()
		}
		_ = reg.Close()
		return nil, err
	}
	return s, nil
}

func (s *quicxServer) start(addr netip.AddrPort, cert *tls.Certificate, opt quicxOptions) error {
	settings := quicxSettings(perfbase.ServerSettings(), opt.events)
	conf, err := s.reg.OpenConfiguration([]string{perfbase.ALPN}, settings)
	if err != nil {
		return err
	}
	s.conf = conf
	if err := conf.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert}); err != nil {
		return err
	}
	l, err := s.reg.OpenListener()
	if err != nil {
		return err
	}
	s.l = l
	if err := l.SetSettings(settings); err != nil {
		return err
	}
	if err := l.Start([]string{perfbase.ALPN}, addr); err != nil {
		return err
	}
	if s.addr, err = l.Addr(); err != nil {
		return err
	}
	go s.listen(l.Events())
	return nil
}

// Addr is the address the server listens on.
func (s *quicxServer) Addr() netip.AddrPort { return s.addr }

// Close shuts every connection down, stops the listener and returns once every
// object has delivered its final event and been closed.
func (s *quicxServer) Close() error {
	_ = s.reg.Shutdown(quicx.ShutdownNone, 0)
	err := s.l.Close()
	<-s.lnDone
	s.wg.Wait()
	return errors.Join(err, s.conf.Close(), s.reg.Close())
}

func (s *quicxServer) listen(events <-chan quicx.ListenerEvent) {
	defer close(s.lnDone)
	for ev := range events {
		if e, ok := ev.(*quicx.NewConnection); ok {
			if err := e.Accept(s.conf); err != nil {
				e.Reject(err)
				continue
			}
			s.wg.Go(func() { s.serveConn(e.Connection) })
		}
	}
}

func (s *quicxServer) serveConn(c *quicx.Connection) {
	for ev := range c.Events() {
		switch e := ev.(type) {
		case *quicx.PeerStreamStarted:
			if e.Flags&quicx.StreamOpenUnidirectional != 0 {
				// secnetperf aborts unidirectional streams.
				_ = e.Stream.Shutdown(quicx.StreamShutdownAbortReceive, 0)
				s.wg.Go(func() { perfDrainStream(e.Stream) })
				continue
			}
			s.wg.Go(func() { s.serveStream(e.Stream) })
		case *quicx.ConnectionShutdownComplete:
			_ = c.Close()
		}
	}
}

// perfDrainStream reads a stream's events until its final one and closes it.
func perfDrainStream(st *quicx.Stream) {
	for ev := range st.Events() {
		switch e := ev.(type) {
		case *quicx.Receive:
			e.Complete(e.TotalLength())
		case *quicx.StreamShutdownComplete:
			_ = st.Close()
		}
	}
}

// serveStream answers one request, as MsQuic's perf server does: the response
// length comes from the first 8 bytes, the upload is consumed, and after the
// client's FIN the response is sent with up to perfSendDepth sends outstanding.
func (s *quicxServer) serveStream(st *quicx.Stream) {
	var (
		hdr         perfbase.HeaderParser
		remaining   uint64 // response bytes not yet queued
		outstanding int
	)
	send := func() {
		for remaining > 0 && outstanding < perfSendDepth {
			bufs, flags, n := s.full, quicx.SendNone, uint64(len(s.resp))
			if remaining != perfbase.Unbounded && remaining <= n {
				bufs, flags, n = [][]byte{s.resp[:remaining]}, quicx.SendFin, remaining
			}
			if err := st.Send(bufs, flags, nil); err != nil {
				_ = st.Shutdown(quicx.StreamShutdownAbort, 0)
				remaining = 0
				return
			}
			outstanding++
			if remaining != perfbase.Unbounded {
				remaining -= n
			}
		}
	}
	for ev := range st.Events() {
		switch e := ev.(type) {
		case *quicx.Receive:
			for _, b := range e.Buffers {
				if hdr.Done() {
					break
				}
				hdr.Feed(b)
			}
			e.Complete(e.TotalLength())
		case *quicx.PeerSendShutdown:
			switch {
			case !hdr.Done():
				_ = st.Shutdown(quicx.StreamShutdownAbort, 0)
			case hdr.Length() == 0:
				_ = st.Shutdown(quicx.StreamShutdownGraceful, 0)
			default:
				remaining = hdr.Length()
				send()
			}
		case *quicx.SendComplete:
			outstanding--
			if !e.Canceled {
				send()
			}
		case *quicx.PeerSendAborted, *quicx.PeerReceiveAborted:
			remaining = 0
			_ = st.Shutdown(quicx.StreamShutdownAbort, 0)
		case *quicx.StreamShutdownComplete:
			_ = st.Close()
		}
	}
}

// ---- client ----

// quicxClient is the perf client on quicx.
type quicxClient struct {
	cfg     *perfbase.ClientConfig
	reg     *quicx.Registration
	conf    *quicx.Configuration
	remote  netip.AddrPort
	payload []byte
	full    [][]byte // one full upload send, shared
}

func newQuicxClient(cfg *perfbase.ClientConfig, opt quicxOptions) (*quicxClient, error) {
	ip, err := netip.ParseAddr(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("target must be an IP address: %w", err)
	}
	reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{AppName: "quicx-perf-client", Profile: opt.profile})
	if err != nil {
		return nil, err
	}
	conf, err := reg.OpenConfiguration([]string{perfbase.ALPN}, quicxSettings(cfg.Settings, opt.events))
	if err == nil {
		err = conf.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation})
		if err != nil {
			_ = conf.Close()
		}
	}
	if err != nil {
		_ = reg.Close()
		return nil, err
	}
	c := &quicxClient{cfg: cfg, reg: reg, conf: conf, remote: netip.AddrPortFrom(ip.Unmap(), cfg.Port),
		payload: perfbase.Payload(max(cfg.IOSize, 2*perfbase.HeaderLen))}
	c.full = [][]byte{c.payload}
	return c, nil
}

// Close implements perfbase.Client.
func (c *quicxClient) Close() error {
	return errors.Join(c.conf.Close(), c.reg.Close())
}

// open starts a client connection.
func (c *quicxClient) open() (*quicx.Connection, error) {
	conn, err := c.reg.OpenConnection()
	if err != nil {
		return nil, err
	}
	if err := conn.SetRemoteAddr(c.remote); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := conn.Start(c.conf, quicx.AddressFamilyUnspec, c.cfg.ServerName, c.cfg.Port); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// Handshake implements perfbase.Client: connect, and shut down as soon as
// the handshake completes.
func (c *quicxClient) Handshake(ctx context.Context) (bool, error) {
	conn, err := c.open()
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Shutdown(quicx.ShutdownNone, 0) })
	defer stop()
	connected := false
	var fail error
	for ev := range conn.Events() {
		switch e := ev.(type) {
		case *quicx.Connected:
			connected = true
			_ = conn.Shutdown(quicx.ShutdownNone, 0)
		case *quicx.ShutdownInitiatedByTransport:
			fail = e.Status
		case *quicx.ShutdownInitiatedByPeer:
			fail = fmt.Errorf("closed by the server, code %#x", e.ErrorCode)
		case *quicx.ConnectionShutdownComplete:
			_ = conn.Close()
		}
	}
	if !connected && fail == nil {
		fail = errors.New("handshake did not complete")
	}
	return connected, fail
}

// Connect implements perfbase.Client.
func (c *quicxClient) Connect(ctx context.Context) (perfbase.Conn, error) {
	conn, err := c.open()
	if err != nil {
		return nil, err
	}
	qc := &quicxConn{c: c, conn: conn, connected: make(chan error, 1), done: make(chan struct{})}
	go qc.events()
	select {
	case err := <-qc.connected:
		if err != nil {
			<-qc.done
			return nil, err
		}
		return qc, nil
	case <-ctx.Done():
		_ = qc.Close()
		return nil, ctx.Err()
	}
}

// quicxConn is one client connection; a goroutine reads its events.
type quicxConn struct {
	c         *quicxClient
	conn      *quicx.Connection
	connected chan error    // the handshake's outcome
	done      chan struct{} // closed after ConnectionShutdownComplete
}

func (qc *quicxConn) events() {
	defer close(qc.done)
	var fail error
	for ev := range qc.conn.Events() {
		switch e := ev.(type) {
		case *quicx.Connected:
			qc.connected <- nil
		case *quicx.ShutdownInitiatedByTransport:
			fail = e.Status
		case *quicx.ShutdownInitiatedByPeer:
			fail = fmt.Errorf("closed by the server, code %#x", e.ErrorCode)
		case *quicx.ConnectionShutdownComplete:
			if !e.HandshakeCompleted {
				if fail == nil {
					fail = errors.New("handshake did not complete")
				}
				qc.connected <- fail
			}
			_ = qc.conn.Close()
		}
	}
}

// Close implements perfbase.Conn.
func (qc *quicxConn) Close() error {
	err := qc.conn.Shutdown(quicx.ShutdownNone, 0)
	<-qc.done
	return err
}

// perfStreamError turns the events that end a perf stream early into an error.
func perfStreamError(ev quicx.StreamEvent) error {
	switch e := ev.(type) {
	case *quicx.StartComplete:
		if e.Status != nil {
			return fmt.Errorf("stream start: %w", e.Status)
		}
	case *quicx.PeerSendAborted:
		return fmt.Errorf("the server reset the stream, code %#x", e.ErrorCode)
	case *quicx.PeerReceiveAborted:
		return fmt.Errorf("the server stopped reading, code %#x", e.ErrorCode)
	case *quicx.StreamShutdownComplete:
		if e.ConnectionShutdown {
			return fmt.Errorf("the connection ended: %w", perfErrOrAborted(e.ConnectionCloseStatus))
		}
	}
	return nil
}

// failStream keeps err as the stream's failure unless one came first, and
// aborts the stream on it. A nil err changes nothing.
func failStream(st *quicx.Stream, fail *error, err error) {
	if err == nil || *fail != nil {
		return
	}
	*fail = err
	_ = st.Shutdown(quicx.StreamShutdownAbort, 0)
}

func perfErrOrAborted(err error) error {
	if err == nil {
		return quicx.ErrAborted
	}
	return err
}

// Upload implements perfbase.Conn: keep perfSendDepth sends of the shared payload
// queued; at the end (n bytes, or the deadline) send FIN and wait for the
// server's FIN.
func (qc *quicxConn) Upload(ctx context.Context, n uint64, until time.Time, p *perfbase.Progress) (uint64, error) {
	st, err := qc.conn.OpenStream(quicx.StreamOpenNone)
	if err != nil {
		return 0, err
	}
	var (
		payload     = qc.c.payload
		sent        uint64
		outstanding int
		finQueued   bool
		fail        error
	)
	hdr := make([]byte, perfbase.HeaderLen) // response length 0
	send := func() {
		for !finQueued && outstanding < perfSendDepth {
			size := uint64(len(payload))
			if n > 0 {
				size = min(size, n-sent)
			}
			var bufs [][]byte
			flags := quicx.SendNone
			switch {
			case sent == 0:
				bufs, flags = [][]byte{hdr, payload[perfbase.HeaderLen:max(size, perfbase.HeaderLen)]}, quicx.SendStart
			case n == 0 && !time.Now().Before(until):
				size = 0 // the deadline passed: FIN alone
			case size == uint64(len(payload)):
				bufs = qc.c.full
			default:
				bufs = [][]byte{payload[:size]}
			}
			if (n > 0 && sent+size >= n) || (n == 0 && size == 0) {
				flags |= quicx.SendFin
				finQueued = true
			}
			if err := qc.sendOrAbort(st, bufs, flags); err != nil {
				fail = err
				return
			}
			sent += size
			outstanding++
			p.Bytes.Add(size)
		}
	}
	send()
	done := ctx.Done()
	for {
		select {
		case ev, ok := <-st.Events():
			if !ok {
				return sent, fail
			}
			switch e := ev.(type) {
			case *quicx.SendComplete:
				outstanding--
				if !e.Canceled && fail == nil {
					send()
				}
			case *quicx.Receive:
				e.Complete(e.TotalLength())
			case *quicx.StreamShutdownComplete:
				_ = st.Close()
			}
			failStream(st, &fail, perfStreamError(ev))
		case <-done:
			done = nil
			failStream(st, &fail, ctx.Err())
		}
	}
}

// sendOrAbort sends, aborting the stream if quicx refuses the send.
func (qc *quicxConn) sendOrAbort(st *quicx.Stream, bufs [][]byte, flags quicx.SendFlags) error {
	if err := st.Send(bufs, flags, nil); err != nil {
		_ = st.Shutdown(quicx.StreamShutdownAbort, 0)
		if flags&quicx.SendStart != 0 {
			_ = st.Close() // never started: no events will come
		}
		return err
	}
	return nil
}

// Download implements perfbase.Conn: ask for n bytes and count them; with a
// deadline, abort the receive direction (STOP_SENDING) when it passes.
func (qc *quicxConn) Download(ctx context.Context, n uint64, until time.Time, p *perfbase.Progress) (uint64, error) {
	st, err := qc.conn.OpenStream(quicx.StreamOpenNone)
	if err != nil {
		return 0, err
	}
	hdr := make([]byte, perfbase.HeaderLen)
	perfbase.EncodeHeader(hdr, n)
	if err := qc.sendOrAbort(st, [][]byte{hdr}, quicx.SendStart|quicx.SendFin); err != nil {
		return 0, err
	}
	var timeout <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		timeout = t.C
	}
	var (
		got     uint64
		stopped bool // the receive direction was aborted at the deadline
		fin     bool
		fail    error
	)
	done := ctx.Done()
	for {
		select {
		case ev, ok := <-st.Events():
			if !ok {
				if fail == nil && !stopped && !fin {
					fail = errors.New("the stream ended without the response's FIN")
				}
				if fail == nil && fin && n != perfbase.Unbounded && got != n {
					fail = fmt.Errorf("response of %d bytes, asked for %d", got, n)
				}
				return got, fail
			}
			switch e := ev.(type) {
			case *quicx.Receive:
				if !stopped {
					size := e.TotalLength()
					got += size
					p.Bytes.Add(size)
					fin = fin || e.Flags&quicx.ReceiveFin != 0
				}
				e.Complete(e.TotalLength())
			case *quicx.StreamShutdownComplete:
				_ = st.Close()
			}
			if !stopped {
				failStream(st, &fail, perfStreamError(ev))
			}
		case <-timeout:
			timeout = nil
			if !fin {
				stopped = true
				_ = st.Shutdown(quicx.StreamShutdownAbortReceive, 0)
			}
		case <-done:
			done = nil
			failStream(st, &fail, ctx.Err())
		}
	}
}

// Request implements perfbase.Conn: one send with START and FIN, then the
// response's Receive events; the latency runs to the Receive carrying FIN.
func (qc *quicxConn) Request(ctx context.Context, req []byte, respLen uint64) (time.Duration, error) {
	start := time.Now()
	st, err := qc.conn.OpenStream(quicx.StreamOpenNone)
	if err != nil {
		return 0, err
	}
	if err := qc.sendOrAbort(st, [][]byte{req}, quicx.SendStart|quicx.SendFin); err != nil {
		return 0, err
	}
	var (
		got  uint64
		lat  time.Duration
		fail error
	)
	done := ctx.Done()
	for {
		select {
		case ev, ok := <-st.Events():
			if !ok {
				if fail == nil && lat == 0 {
					fail = errors.New("the stream ended without the response's FIN")
				}
				if fail == nil && got != respLen {
					fail = fmt.Errorf("response of %d bytes, asked for %d", got, respLen)
				}
				return lat, fail
			}
			switch e := ev.(type) {
			case *quicx.Receive:
				got += e.TotalLength()
				if e.Flags&quicx.ReceiveFin != 0 {
					lat = time.Since(start)
				}
				e.Complete(e.TotalLength())
			case *quicx.StreamShutdownComplete:
				_ = st.Close()
			}
			failStream(st, &fail, perfStreamError(ev))
		case <-done:
			done = nil
			failStream(st, &fail, ctx.Err())
		}
	}
}
