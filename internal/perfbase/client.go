package perfbase

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// QUICGoClient is the raw quic-go client: the idiomatic quic-go way of doing
// secnetperf's work, with big Writes of a shared read-only buffer and Reads
// into one reused buffer per stream.
type QUICGoClient struct {
	cfg     *ClientConfig
	tls     *tls.Config
	quic    *quic.Config
	payload []byte
	bufs    sync.Pool // response buffers of Request, shared by its many streams
	ioBufs  sync.Pool // IOSize receive buffers of Upload and Download
}

// NewQUICGoClient prepares a quic-go client for cfg. Like secnetperf's client
// it does not validate the server's certificate.
func NewQUICGoClient(cfg *ClientConfig) *QUICGoClient {
	return &QUICGoClient{
		cfg: cfg,
		tls: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			ServerName:         cfg.ServerName,
			NextProtos:         []string{ALPN},
			InsecureSkipVerify: true, // QUIC_CREDENTIAL_FLAG_NO_CERTIFICATE_VALIDATION
		},
		quic:    cfg.Settings.QUICConfig(),
		payload: Payload(max(cfg.IOSize, HeaderLen)),
		bufs:    sync.Pool{New: func() any { b := make([]byte, 4096); return &b }},
		ioBufs:  sync.Pool{New: func() any { b := make([]byte, max(cfg.IOSize, HeaderLen)); return &b }},
	}
}

// Connect implements Client. Every connection has its own UDP socket, as a
// quicx client connection has.
func (c *QUICGoClient) Connect(ctx context.Context) (Conn, error) {
	qc, err := quic.DialAddr(ctx, c.cfg.Addr(), c.tls, c.quic)
	if err != nil {
		return nil, err
	}
	return &quicGoConn{c: c, qc: qc}, nil
}

// Handshake implements Client.
func (c *QUICGoClient) Handshake(ctx context.Context) (bool, error) {
	qc, err := quic.DialAddr(ctx, c.cfg.Addr(), c.tls, c.quic)
	if err != nil {
		return false, err
	}
	return true, qc.CloseWithError(0, "")
}

// Close implements Client.
func (c *QUICGoClient) Close() error { return nil }

type quicGoConn struct {
	c  *QUICGoClient
	qc *quic.Conn
}

func (cn *quicGoConn) Close() error { return cn.qc.CloseWithError(0, "") }

// Upload implements Conn.
func (cn *quicGoConn) Upload(ctx context.Context, n uint64, until time.Time, p *Progress) (uint64, error) {
	str, err := cn.qc.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { str.CancelWrite(0); str.CancelRead(0) })
	defer stop()
	var hdr [HeaderLen]byte // response length 0
	if _, err := str.Write(hdr[:]); err != nil {
		return 0, err
	}
	sent := uint64(HeaderLen)
	chunk := cn.c.payload
	for n == 0 || sent < n {
		b := chunk
		if n > 0 && n-sent < uint64(len(b)) {
			b = b[:n-sent]
		}
		if _, err := str.Write(b); err != nil {
			return sent, err
		}
		sent += uint64(len(b))
		p.Bytes.Add(uint64(len(b)))
		if n == 0 && !time.Now().Before(until) {
			break
		}
	}
	if err := str.Close(); err != nil {
		return sent, err
	}
	// The server answers the FIN with its own (response length 0).
	bp := cn.c.ioBufs.Get().(*[]byte)
	defer cn.c.ioBufs.Put(bp)
	if err := drain(str, *bp); err != nil {
		return sent, err
	}
	return sent, nil
}

// Download implements Conn.
func (cn *quicGoConn) Download(ctx context.Context, n uint64, until time.Time, p *Progress) (uint64, error) {
	str, err := cn.qc.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { str.CancelWrite(0); str.CancelRead(0) })
	defer stop()
	var hdr [HeaderLen]byte
	EncodeHeader(hdr[:], n)
	if _, err := str.Write(hdr[:]); err != nil {
		return 0, err
	}
	if err := str.Close(); err != nil {
		return 0, err
	}
	if !until.IsZero() {
		_ = str.SetReadDeadline(until)
	}
	bp := cn.c.ioBufs.Get().(*[]byte)
	defer cn.c.ioBufs.Put(bp)
	var got uint64
	for {
		m, err := str.Read(*bp)
		got += uint64(m)
		p.Bytes.Add(uint64(m))
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			if n != Unbounded && got != n {
				return got, fmt.Errorf("response of %d bytes, asked for %d", got, n)
			}
			return got, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Measured enough of an endless response: STOP_SENDING.
			str.CancelRead(0)
			return got, nil
		}
		return got, err
	}
}

// Request implements Conn.
func (cn *quicGoConn) Request(ctx context.Context, req []byte, respLen uint64) (time.Duration, error) {
	start := time.Now()
	str, err := cn.qc.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { str.CancelWrite(0); str.CancelRead(0) })
	defer stop()
	if _, err := str.Write(req); err != nil {
		return 0, err
	}
	if err := str.Close(); err != nil {
		return 0, err
	}
	bp := cn.c.bufs.Get().(*[]byte)
	defer cn.c.bufs.Put(bp)
	var got uint64
	for {
		m, err := str.Read(*bp)
		got += uint64(m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	lat := time.Since(start)
	if got != respLen {
		return lat, fmt.Errorf("response of %d bytes, asked for %d", got, respLen)
	}
	return lat, nil
}
