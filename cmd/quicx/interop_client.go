package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"quicx.dev/quicx"
)

const (
	// hqConcurrency bounds the requests (and open files) a client has in
	// flight. It is above the stream limits servers usually grant (quicx's
	// interop server 128, quic-go 100): the starts beyond the server's limit
	// wait inside quicx until the server grants more streams.
	hqConcurrency = 256
	// hqErrClient is the connection error code of a client giving up.
	hqErrClient = 0x20
	// finishTimeout bounds the wait, after the last file, for a session
	// ticket or for the migration to complete.
	finishTimeout = 10 * time.Second
	// progressInterval is how often a long download reports its progress.
	progressInterval = 2 * time.Second
)

// progress counts what a connection's downloads have received so far.
type progress struct {
	bytes atomic.Int64
	files atomic.Int64
}

// hqFile is one requested URL.
type hqFile struct {
	target string // the request target: the URL's escaped path
	name   string // where the file goes, under the downloads directory
}

// hqClient is the interop client: one registration and configuration, as
// many connections as the test case needs.
type hqClient struct {
	log  *interopLog
	reg  *quicx.Registration
	cfg  *quicx.Configuration
	host string
	port uint16
}

// interopClient runs the client side of o.testcase.
func interopClient(ctx context.Context, o interopOptions, log *interopLog) (err error) {
	host, port, files, err := parseRequests(o.requests, o.downloads)
	if err != nil {
		return err
	}
	if len(files) > 0 {
		if err := os.MkdirAll(o.downloads, 0o755); err != nil {
			return fmt.Errorf("downloads: %w", err)
		}
	}
	keylog, err := openKeyLog(o.keylog)
	if err != nil {
		return err
	}
	if keylog != nil {
		defer keylog.Close()
	}
	reg, err := openInteropRegistration(o, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeRegistration(reg)) }()
	settings := interopSettings("client", o.testcase)
	alpn := alpnHQ
	if o.testcase == "siduck" {
		alpn = alpnSiduck
	}
	cfg, err := reg.OpenConfiguration([]string{alpn}, &settings)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	defer cfg.Close()
	// The runner's certificates are signed by a CA the client does not know.
	if err := cfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}); err != nil {
		return fmt.Errorf("client credential: %w", err)
	}
	if keylog != nil {
		if err := cfg.SetKeyLogWriter(keylog); err != nil {
			return fmt.Errorf("key log: %w", err)
		}
	}
	c := &hqClient{log: log, reg: reg, cfg: cfg, host: host, port: port}
	log.printf("client: test case %s, %d files from %s", o.testcase, len(files), hostPort(host, port))

	switch o.testcase {
	case "siduck":
		_, err := c.connect(ctx, nil, connOptions{siduck: true})
		return err
	case "resumption", "zerortt":
		if len(files) < 2 {
			return fmt.Errorf("%s needs at least two requests", o.testcase)
		}
		first, err := c.connect(ctx, files[:1], connOptions{wantTicket: true})
		if err != nil {
			return err
		}
		second, err := c.connect(ctx, files[1:], connOptions{ticket: first.ticket, early: o.testcase == "zerortt"})
		if err != nil {
			return err
		}
		if !second.resumed {
			return errors.New("the second connection did not resume the session")
		}
		return nil
	case "multiconnect":
		for _, f := range files {
			if _, err := c.connect(ctx, []hqFile{f}, connOptions{}); err != nil {
				return err
			}
		}
		return nil
	}
	res, err := c.connect(ctx, files, connOptions{migrate: o.testcase == "connectionmigration"})
	if err != nil {
		return err
	}
	if o.testcase == "v2" && res.version != quicV2 {
		return fmt.Errorf("the connection used QUIC version %#x, not v2", res.version)
	}
	return nil
}

// hostPort renders a server address for messages.
func hostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// parseRequests checks that every URL names the same server and maps each to
// its file under downloads.
func parseRequests(requests []string, downloads string) (host string, port uint16, files []hqFile, err error) {
	if len(requests) == 0 {
		return "", 0, nil, errors.New("no requests (-requests or REQUESTS)")
	}
	for i, r := range requests {
		u, err := url.Parse(r)
		if err != nil {
			return "", 0, nil, fmt.Errorf("request %q: %w", r, err)
		}
		if u.Hostname() == "" {
			return "", 0, nil, fmt.Errorf("request %q: no host", r)
		}
		p := uint16(443)
		if s := u.Port(); s != "" {
			n, err := strconv.ParseUint(s, 10, 16)
			if err != nil || n == 0 {
				return "", 0, nil, fmt.Errorf("request %q: bad port", r)
			}
			p = uint16(n)
		}
		if i == 0 {
			host, port = u.Hostname(), p
		} else if u.Hostname() != host || p != port {
			return "", 0, nil, fmt.Errorf("request %q: all requests must go to %s", r, hostPort(host, port))
		}
		clean := path.Clean("/" + u.Path)
		if clean == "/" {
			continue // a bare server URL (siduck) names no file
		}
		files = append(files, hqFile{target: u.EscapedPath(), name: filepath.Join(downloads, filepath.FromSlash(clean))})
	}
	return host, port, files, nil
}

// connOptions says what one connection does besides fetching its files.
type connOptions struct {
	ticket     []byte // resume this session
	wantTicket bool   // wait for the server's session ticket before closing
	migrate    bool   // move to a new local port once connected
	early      bool   // request the files before the connection starts, in 0-RTT
	siduck     bool   // quack instead of fetching
}

// connResult is what a finished connection reports.
type connResult struct {
	resumed bool
	version uint32
	ticket  []byte
}

// connect runs one connection: it fetches files once connected (or quacks),
// then closes the connection with error code 0 and waits for its final event.
func (c *hqClient) connect(ctx context.Context, files []hqFile, co connOptions) (connResult, error) {
	var res connResult
	conn, err := c.reg.OpenConnection()
	if err != nil {
		return res, fmt.Errorf("opening a connection: %w", err)
	}
	if co.ticket != nil {
		if err := conn.SetResumptionTicket(co.ticket); err != nil {
			_ = conn.Close()
			return res, fmt.Errorf("resumption ticket: %w", err)
		}
	}
	var (
		connErr      error // the first reason the connection failed
		shuttingDown bool
		started      bool // the downloads are running
		finished     bool // every file is fetched, or the quack answered
		migrated     = !co.migrate
		downloads    sync.WaitGroup
		downloaded   = make(chan error, 1)
		deadline     <-chan time.Time
		quackTicker  *time.Ticker
		quackTick    <-chan time.Time
		prog         progress
		progTicker   = time.NewTicker(progressInterval)
	)
	defer progTicker.Stop()
	shutdown := func(code uint64, err error) {
		if connErr == nil {
			connErr = err
		}
		if !shuttingDown {
			shuttingDown = true
			_ = conn.Shutdown(quicx.ShutdownNone, code)
		}
	}
	maybeFinish := func() {
		if finished && !shuttingDown && migrated && (!co.wantTicket || res.ticket != nil) {
			shutdown(0, nil)
		}
	}
	quack := func() {
		if err := conn.SendDatagram([][]byte{[]byte("quack")}, quicx.SendNone, nil); err != nil {
			shutdown(hqErrClient, fmt.Errorf("sending quack: %w", err))
		}
	}
	begin := time.Now()
	issued := make(chan struct{}) // closed once the first requests are sent
	fetch := func(flags quicx.SendFlags) {
		started = true
		downloads.Go(func() { downloaded <- c.fetchAll(ctx, conn, files, flags, &prog, issued) })
	}
	if co.early {
		// Streams started before the connection go out in 0-RTT with the
		// resumed session (MsQuic: queue 0-RTT data before ConnectionStart).
		fetch(quicx.SendAllow0RTT)
		<-issued
	}
	if err := conn.Start(c.cfg, quicx.AddressFamilyUnspec, c.host, c.port); err != nil {
		_ = conn.Close()
		if started {
			<-downloaded
		}
		return res, fmt.Errorf("starting the connection: %w", err)
	}
	events, ctxDone := conn.Events(), ctx.Done()
	for events != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			switch e := ev.(type) {
			case *quicx.Connected:
				res.resumed = e.SessionResumed
				res.version, _ = conn.QUICVersion()
				local, _ := conn.LocalAddr()
				remote, _ := conn.RemoteAddr()
				c.log.printf("client: connected %s -> %s, ALPN %s, QUIC version %#x, %s, resumed=%v", local, remote, e.NegotiatedALPN, res.version, cipherSuite(conn), e.SessionResumed)
				if co.siduck {
					quack()
					quackTicker = time.NewTicker(time.Second) // datagrams may be lost
					quackTick = quackTicker.C
					continue
				}
				if !started {
					fetch(quicx.SendNone)
				}
				if co.migrate {
					err := conn.SetLocalAddr(netip.AddrPortFrom(local.Addr(), 0))
					if err != nil {
						shutdown(hqErrClient, fmt.Errorf("migrating: %w", err))
					}
				}
			case *quicx.ResumptionTicketReceived:
				res.ticket = e.ResumptionTicket
				maybeFinish()
			case *quicx.LocalAddressChanged:
				migrated = true
				c.log.printf("client: migrated to %s", e.Address)
				maybeFinish()
			case *quicx.DatagramReceived:
				if co.siduck && string(e.Buffer) == "quack-ack" && !finished {
					c.log.printf("client: quack-ack received")
					finished = true
					maybeFinish()
				}
			case *quicx.ShutdownInitiatedByTransport:
				if !shuttingDown && connErr == nil {
					connErr = fmt.Errorf("connection closed by the transport: %w", e.Status)
				}
			case *quicx.ShutdownInitiatedByPeer:
				if !shuttingDown && connErr == nil {
					connErr = fmt.Errorf("the server closed the connection with error %#x", e.ErrorCode)
				}
			case *quicx.ConnectionShutdownComplete:
				downloads.Wait() // every stream has ended by now
				_ = conn.Close()
			}
		case err := <-downloaded:
			finished = true
			if err != nil {
				shutdown(hqErrClient, err)
				continue
			}
			c.log.printf("client: %d files in %v", len(files), time.Since(begin).Round(time.Millisecond))
			maybeFinish()
			if !shuttingDown {
				deadline = time.After(finishTimeout)
			}
		case <-progTicker.C:
			if started && !finished {
				c.log.printf("client: %d of %d files, %.1f MiB so far", prog.files.Load(), len(files), float64(prog.bytes.Load())/(1<<20))
			}
		case <-quackTick:
			if !finished && !shuttingDown {
				quack()
			}
		case <-deadline:
			switch {
			case !migrated:
				shutdown(hqErrClient, errors.New("the migration did not complete"))
			default:
				shutdown(hqErrClient, errors.New("no session ticket from the server"))
			}
		case <-ctxDone:
			ctxDone = nil
			shutdown(hqErrClient, ctx.Err())
		}
	}
	if quackTicker != nil {
		quackTicker.Stop()
	}
	if started && !finished {
		if err := <-downloaded; connErr == nil {
			connErr = err
		}
	}
	if connErr == nil && !finished {
		connErr = errors.New("the connection ended before the test was done")
	}
	return res, connErr
}

// fetchAll requests every file on its own stream, at most hqConcurrency at a
// time, and returns the first failure. A failure closes the connection, which
// ends the other streams.
//
// issued is closed once the requests that need not wait for earlier streams
// (all of them, or the first hqConcurrency) are sent.
func (c *hqClient) fetchAll(ctx context.Context, conn *quicx.Connection, files []hqFile, flags quicx.SendFlags, prog *progress, issued chan struct{}) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			_ = conn.Shutdown(quicx.ShutdownNone, hqErrClient)
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	sem := make(chan struct{}, hqConcurrency)
	var once sync.Once
	signal := func() { once.Do(func() { close(issued) }) }
	for i, f := range files {
		if i == hqConcurrency {
			signal() // the rest waits for earlier streams to finish
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			fail(ctx.Err())
		}
		if failed() {
			break
		}
		if err := c.request(conn, f, flags, prog, &wg, func(err error) {
			if err != nil {
				fail(err)
			}
			<-sem
		}); err != nil {
			<-sem
			fail(err)
			break
		}
	}
	signal()
	wg.Wait()
	return first
}

// request opens a stream, sends the request with FIN and receives the file
// on a new goroutine, which calls done when the stream has ended.
func (c *hqClient) request(conn *quicx.Connection, f hqFile, flags quicx.SendFlags, prog *progress, wg *sync.WaitGroup, done func(error)) error {
	if err := os.MkdirAll(filepath.Dir(f.name), 0o755); err != nil {
		return fmt.Errorf("downloads: %w", err)
	}
	out, err := os.Create(f.name)
	if err != nil {
		return fmt.Errorf("downloads: %w", err)
	}
	s, err := conn.OpenStream(quicx.StreamOpenNone)
	if err != nil {
		_ = out.Close()
		return fmt.Errorf("opening a stream for %s: %w", f.target, err)
	}
	if err := s.Send([][]byte{[]byte("GET " + f.target + "\r\n")}, quicx.SendStart|quicx.SendFin|flags, nil); err != nil {
		_ = out.Close()
		_ = s.Close()
		return fmt.Errorf("requesting %s: %w", f.target, err)
	}
	wg.Go(func() { done(c.receive(s, out, f, prog)) })
	return nil
}

// receive writes a stream's data to out until the server's FIN.
func (c *hqClient) receive(s *quicx.Stream, out *os.File, f hqFile, prog *progress) error {
	var (
		n    int64
		fin  bool
		werr error
	)
	for ev := range s.Events() {
		switch e := ev.(type) {
		case *quicx.StartComplete:
			if e.Status != nil && werr == nil {
				werr = fmt.Errorf("starting the stream: %w", e.Status)
			}
		case *quicx.Receive:
			for _, b := range e.Buffers {
				if werr != nil {
					break
				}
				if _, err := out.Write(b); err != nil {
					werr = err
					_ = s.Shutdown(quicx.StreamShutdownAbort, hqErrClient)
				}
				n += int64(len(b))
				prog.bytes.Add(int64(len(b)))
			}
			e.Complete(e.TotalLength())
		case *quicx.PeerSendShutdown:
			fin = true
		case *quicx.PeerSendAborted:
			if werr == nil {
				werr = fmt.Errorf("the server reset the stream with error %#x", e.ErrorCode)
			}
		case *quicx.StreamShutdownComplete:
			_ = s.Close()
		}
	}
	if err := out.Close(); err != nil && werr == nil {
		werr = err
	}
	if werr == nil && !fin {
		werr = errors.New("the stream ended before the file was complete")
	}
	if werr != nil {
		return fmt.Errorf("%s: %w", f.target, werr)
	}
	prog.files.Add(1)
	if n >= 1<<20 {
		c.log.printf("client: %s: %d bytes", f.target, n)
	}
	return nil
}
