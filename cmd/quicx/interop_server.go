package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"quicx.dev/quicx"
)

const (
	// interopStreamLimit is how many bidirectional streams a client may have
	// open at once; the runner's multiplexing case wants at most 1000.
	interopStreamLimit = 128
	// hqChunk is the size of each send of a file; hqInflight sends are queued
	// at most, so a large file is never read into memory whole.
	hqChunk    = 64 << 10
	hqInflight = 4
	// hqMaxRequest bounds a request line.
	hqMaxRequest = 8 << 10

	// Stream error codes of this server.
	hqErrRequest  = 0x10 // the request is malformed or too long
	hqErrNotFound = 0x11 // no such file
	hqErrInternal = 0x12 // reading the file failed
)

// interopSettings are the QUIC settings of a role for a test case. The server
// accepts siduck datagrams on every connection because both ALPNs share its
// port and transport parameters are fixed before the ALPN is known.
func interopSettings(role, testcase string) quicx.Settings {
	server := role == "server"
	s := quicx.Settings{DatagramReceiveEnabled: server || testcase == "siduck"}
	if server {
		s.PeerBidiStreamCount = interopStreamLimit
	}
	switch testcase {
	case "resumption":
		if server {
			s.ServerResumptionLevel = quicx.ServerResumeOnly
		}
	case "zerortt":
		if server {
			s.ServerResumptionLevel = quicx.ServerResumeAndZeroRTT
			s.TransportEvents = quicx.TrackZeroRTT // to log the streams opened in 0-RTT
		}
	case "v2":
		if server {
			s.Versions = []uint32{quicV2}
		} else {
			s.Versions = []uint32{1, quicV2}
		}
	case "connectionmigration", "rebind-port", "rebind-addr":
		if server {
			s.TransportEvents = quicx.TrackPeerAddress // to log the client's moves
		}
	}
	return s
}

// interopServer serves /www over hq-interop and siduck until ctx ends.
func interopServer(ctx context.Context, o interopOptions, stdout io.Writer, log *interopLog) (err error) {
	www, err := filepath.Abs(o.www)
	if err != nil {
		return fmt.Errorf("www: %w", err)
	}
	st, err := os.Stat(www)
	if err != nil {
		return fmt.Errorf("www: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("www: %s is not a directory", www)
	}
	keylog, err := openKeyLog(o.keylog)
	if err != nil {
		return err
	}
	if keylog != nil {
		defer keylog.Close()
	}
	reg, err := openInteropRegistration(o, o.testcase == "retry")
	if err != nil {
		return err
	}
	defer func() {
		_ = reg.Shutdown(quicx.ShutdownNone, 0)
		err = errors.Join(err, closeRegistration(reg))
	}()

	settings := interopSettings("server", o.testcase)
	alpns := []string{alpnHQ, alpnSiduck}
	cfg, err := reg.OpenConfiguration(alpns, &settings)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	defer cfg.Close()
	cred := &quicx.Credential{
		Type:     quicx.CredentialCertificateFile,
		CertFile: filepath.Join(o.certs, "cert.pem"),
		KeyFile:  filepath.Join(o.certs, "priv.key"),
	}
	if err := cfg.LoadCredential(cred); err != nil {
		return fmt.Errorf("loading the certificate: %w", err)
	}
	if keylog != nil {
		if err := cfg.SetKeyLogWriter(keylog); err != nil {
			return fmt.Errorf("key log: %w", err)
		}
	}

	addr := netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(o.port))
	if o.listen != "" {
		ip, err := netip.ParseAddr(o.listen)
		if err != nil {
			return fmt.Errorf("-listen: %w", err)
		}
		addr = netip.AddrPortFrom(ip, uint16(o.port))
	}
	ln, err := reg.OpenListener()
	if err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	defer ln.Close()
	if err := ln.SetSettings(&settings); err != nil {
		return fmt.Errorf("listener settings: %w", err)
	}
	if err := ln.Start(alpns, addr); err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	bound, err := ln.Addr()
	if err != nil {
		return fmt.Errorf("listener address: %w", err)
	}
	fmt.Fprintf(stdout, "quicx interop: %s server listening on %s\n", o.testcase, bound)
	log.printf("server: test case %s, serving %s on %s", o.testcase, www, bound)

	srv := &hqServer{www: www, log: log}
	var conns sync.WaitGroup
	lnDone := make(chan struct{})
	events := ln.Events()
	go func() {
		defer close(lnDone)
		for ev := range events {
			nc, ok := ev.(*quicx.NewConnection)
			if !ok {
				continue
			}
			if err := nc.Accept(cfg); err != nil {
				log.printf("server: refusing %s: %v", nc.Info.RemoteAddress, err)
				nc.Reject(err)
				continue
			}
			info := nc.Info
			conns.Go(func() { srv.serveConn(nc.Connection, info) })
		}
	}()

	<-ctx.Done()
	log.printf("server: stopping")
	_ = ln.Close()
	<-lnDone
	_ = reg.Shutdown(quicx.ShutdownNone, 0)
	conns.Wait()
	return nil
}

// hqServer answers hq-interop requests from a directory and siduck quacks.
type hqServer struct {
	www string
	log *interopLog
}

// serveConn runs one connection's event loop until its final event.
func (h *hqServer) serveConn(conn *quicx.Connection, info quicx.NewConnectionInfo) {
	var streams sync.WaitGroup
	served, early := 0, 0
	for ev := range conn.Events() {
		switch e := ev.(type) {
		case *quicx.Connected:
			v, _ := conn.QUICVersion()
			h.log.printf("server: %s connected, ALPN %s, QUIC version %#x, %s, resumed=%v", info.RemoteAddress, e.NegotiatedALPN, v, cipherSuite(conn), e.SessionResumed)
		case *quicx.PeerStreamStarted:
			if info.NegotiatedALPN != alpnHQ {
				_ = e.Stream.Shutdown(quicx.StreamShutdownAbort, hqErrRequest)
				_ = e.Stream.Close()
				continue
			}
			served++
			if e.Flags&quicx.StreamOpen0RTT != 0 {
				early++
			}
			streams.Go(func() { h.serveStream(e.Stream) })
		case *quicx.DatagramReceived:
			if info.NegotiatedALPN == alpnSiduck && string(e.Buffer) == "quack" {
				if err := conn.SendDatagram([][]byte{[]byte("quack-ack")}, quicx.SendNone, nil); err != nil {
					h.log.printf("server: quack-ack to %s: %v", info.RemoteAddress, err)
				}
			}
		case *quicx.PeerAddressChanged:
			h.log.printf("server: client %s moved to %s", info.RemoteAddress, e.Address)
		case *quicx.ShutdownInitiatedByTransport:
			h.log.printf("server: %s closed by the transport: %v", info.RemoteAddress, e.Status)
		case *quicx.ShutdownInitiatedByPeer:
			if e.ErrorCode != 0 {
				h.log.printf("server: %s closed by the client with error %#x", info.RemoteAddress, e.ErrorCode)
			}
		case *quicx.ConnectionShutdownComplete:
			streams.Wait()
			h.log.printf("server: %s done, %d requests, %d on streams opened in 0-RTT", info.RemoteAddress, served, early)
			_ = conn.Close()
		}
	}
}

// hqResponse is the file being sent on one stream.
type hqResponse struct {
	f         *os.File
	remaining int64
	inflight  int
	free      [][]byte
	done      bool // the FIN is queued
}

// serveStream reads a request up to the client's FIN and sends the file back,
// a chunk at a time as earlier chunks complete.
func (h *hqServer) serveStream(s *quicx.Stream) {
	var req []byte
	var resp *hqResponse
	fail := func(code uint64, format string, args ...any) {
		h.log.printf("server: stream: "+format, args...)
		_ = s.Shutdown(quicx.StreamShutdownAbort, code)
	}
	fill := func() {
		for resp != nil && !resp.done && resp.inflight < hqInflight {
			var buf []byte
			if n := len(resp.free); n > 0 {
				buf, resp.free = resp.free[n-1], resp.free[:n-1]
			} else {
				buf = make([]byte, hqChunk)
			}
			n := int(min(resp.remaining, int64(len(buf))))
			if _, err := io.ReadFull(resp.f, buf[:n]); err != nil {
				fail(hqErrInternal, "reading %s: %v", resp.f.Name(), err)
				resp.done = true
				return
			}
			resp.remaining -= int64(n)
			flags := quicx.SendNone
			if resp.remaining == 0 {
				flags, resp.done = quicx.SendFin, true
			}
			if err := s.Send([][]byte{buf[:n]}, flags, buf); err != nil {
				fail(hqErrInternal, "send: %v", err)
				resp.done = true
				return
			}
			resp.inflight++
		}
	}
	for ev := range s.Events() {
		switch e := ev.(type) {
		case *quicx.Receive:
			for _, b := range e.Buffers {
				req = append(req, b...)
			}
			e.Complete(e.TotalLength())
			if len(req) > hqMaxRequest {
				fail(hqErrRequest, "request longer than %d bytes", hqMaxRequest)
			}
		case *quicx.PeerSendShutdown:
			f, size, err := h.open(req)
			if err != nil {
				fail(hqErrNotFound, "%v", err)
				continue
			}
			resp = &hqResponse{f: f, remaining: size}
			fill()
		case *quicx.SendComplete:
			if buf, ok := e.Context.([]byte); ok && resp != nil {
				resp.inflight--
				resp.free = append(resp.free, buf)
			}
			if !e.Canceled {
				fill()
			}
		case *quicx.PeerSendAborted:
			h.log.printf("server: stream: the client reset its request (%#x)", e.ErrorCode)
		case *quicx.PeerReceiveAborted:
			h.log.printf("server: stream: the client stopped reading (%#x)", e.ErrorCode)
		case *quicx.StreamShutdownComplete:
			_ = s.Close()
		}
	}
	if resp != nil {
		_ = resp.f.Close()
	}
}

// open parses an hq-interop request ("GET /path") and opens the file it
// names under the www directory.
func (h *hqServer) open(req []byte) (*os.File, int64, error) {
	line := strings.TrimRight(string(req), "\r\n ")
	target, ok := strings.CutPrefix(line, "GET ")
	if !ok || !strings.HasPrefix(target, "/") {
		return nil, 0, fmt.Errorf("malformed request %q", line)
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, 0, fmt.Errorf("request %q: %w", line, err)
	}
	name := filepath.Join(h.www, filepath.FromSlash(path.Clean("/"+u.Path)))
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, fmt.Errorf("request %q: %w", line, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("request %q: %w", line, err)
	}
	return f, st.Size(), nil
}
