package perfbase

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/quic-go/quic-go"
)

// QUICConfig is the quic-go configuration both sides of the baseline use,
// matching what quicx gives quic-go for the same Settings: a fixed connection
// window, the initial stream window (auto-tuned up to quic-go's 6 MB default
// maximum) and the peer stream limits (none when PeerStreams is 0).
func (s Settings) QUICConfig() *quic.Config {
	streams := s.PeerStreams
	if streams <= 0 {
		streams = -1 // quic-go: a negative count allows no stream
	}
	return &quic.Config{
		HandshakeIdleTimeout:           s.Handshake,
		MaxIdleTimeout:                 s.IdleTimeout,
		InitialStreamReceiveWindow:     s.StreamWindow,
		InitialConnectionReceiveWindow: s.ConnWindow,
		MaxConnectionReceiveWindow:     s.ConnWindow,
		MaxIncomingStreams:             streams,
		MaxIncomingUniStreams:          streams,
	}
}

// Server is the raw quic-go perf server.
type Server struct {
	pc     *net.UDPConn
	tr     *quic.Transport
	ln     *quic.Listener
	addr   netip.AddrPort
	resp   []byte // the shared, read-only response payload
	ioSize int
	bufs   sync.Pool // receive buffers of ioSize bytes

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[*quic.Conn]struct{}
}

// Listen starts a quic-go perf server on addr with cert. ioSize is the size of
// each response write and of each receive buffer.
func Listen(addr netip.AddrPort, cert tls.Certificate, s Settings, ioSize int) (*Server, error) {
	if ioSize <= 0 {
		ioSize = DefaultIO
	}
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("perfbase: listening on %s: %w", addr, err)
	}
	tr := &quic.Transport{Conn: pc}
	tlsConf := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{ALPN},
		SessionTicketsDisabled: true, // quicx's default (ServerNoResume) too
	}
	ln, err := tr.Listen(tlsConf, s.QUICConfig())
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("perfbase: listening on %s: %w", addr, err)
	}
	local := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	srv := &Server{pc: pc, tr: tr, ln: ln, addr: netip.AddrPortFrom(local.Addr().Unmap(), local.Port()),
		resp: Payload(ioSize), ioSize: ioSize, conns: map[*quic.Conn]struct{}{}}
	srv.bufs.New = func() any { b := make([]byte, ioSize); return &b }
	srv.ctx, srv.cancel = context.WithCancel(context.Background())
	srv.wg.Go(srv.acceptLoop)
	return srv, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Close stops the server: it closes every connection and returns once all of
// the server's goroutines have ended.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.CloseWithError(0, "server closing")
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(err, s.tr.Close(), s.pc.Close())
}

func (s *Server) acceptLoop() {
	for {
		c, err := s.ln.Accept(s.ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.serveConn(c) })
	}
}

func (s *Server) serveConn(c *quic.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	ctx := c.Context()
	// secnetperf aborts unidirectional streams.
	s.wg.Go(func() {
		for {
			rs, err := c.AcceptUniStream(ctx)
			if err != nil {
				return
			}
			rs.CancelRead(0)
		}
	})
	for {
		str, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		s.wg.Go(func() { s.serveStream(str) })
	}
}

// serveStream answers one request: read the response length and the upload
// until FIN, then write the response and FIN.
func (s *Server) serveStream(str *quic.Stream) {
	abort := func() {
		str.CancelRead(0)
		str.CancelWrite(0)
	}
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(str, hdr[:]); err != nil {
		abort()
		return
	}
	length := binary.BigEndian.Uint64(hdr[:])
	bp := s.bufs.Get().(*[]byte)
	err := drain(str, *bp)
	s.bufs.Put(bp)
	if err != nil {
		abort()
		return
	}
	for length > 0 {
		n := uint64(len(s.resp))
		if length < n {
			n = length
		}
		if _, err := str.Write(s.resp[:n]); err != nil {
			// The client stopped reading (an unbounded response ends so);
			// quic-go has reset the send direction already.
			str.CancelRead(0)
			return
		}
		if length != Unbounded {
			length -= n
		}
	}
	_ = str.Close()
}

// drain reads a stream to its FIN with buf.
func drain(r io.Reader, buf []byte) error {
	for {
		_, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
