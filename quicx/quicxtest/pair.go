package quicxtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// PairConfig configures OpenPair and NewPair. The zero value is a pair on a
// fresh perfect network with MsQuic's default settings (under which neither
// side may open a stream: set Settings.PeerBidiStreamCount and
// PeerUnidiStreamCount for that).
type PairConfig struct {
	// Network to put the hosts on. nil creates a network from Seed and Link,
	// closed with the pair.
	Network *Network
	// Seed and Link configure the network the pair creates; Seed also derives
	// the generated certificate.
	Seed uint64
	Link Link
	// ServerHost and ClientHost name the hosts (created if needed); defaults
	// "server" and "client". The same name puts both ends on one host, talking
	// over its loopback link.
	ServerHost, ClientHost string
	// Port the listener binds on the server host (all its addresses); default 4433.
	Port uint16
	// ALPN of the configurations and the listener; default "quicxtest".
	ALPN string
	// Settings of both configurations and of the listener.
	Settings quicx.Settings
	// ServerSettings and ClientSettings replace Settings for one side (the
	// server's apply to the listener too).
	ServerSettings, ClientSettings *quicx.Settings
	// Certificate of the server; nil generates one with NewCertificate(Seed, …)
	// for the server's name, its address and "localhost".
	Certificate *tls.Certificate
	// ClientCredential replaces the default client credential,
	// CredentialClient|CredentialNoCertificateValidation.
	ClientCredential *quicx.Credential
	// EventBuffer and Logger go to both registrations' RegistrationConfig.
	EventBuffer int
	Logger      *slog.Logger
	// NoConnect leaves the pair unconnected: call Connect.
	NoConnect bool
}

// Endpoint is one side of a connection and the Watcher consuming its events.
// The timelines of a pair's watchers are all measured from the pair's creation.
type Endpoint struct {
	Conn   *quicx.Connection
	Events *Watcher[quicx.ConnectionEvent]
}

// Pair is a server and a client, each with its own host and registration, on
// an in-memory network: configurations with a generated certificate, a started
// listener, and (unless PairConfig.NoConnect) one connection, connected on
// both sides. Close (or the test's cleanup, with NewPair) closes and drains
// everything it made, and the streams the peers started. The streams a test
// opens itself are its own: drain them (ReadAll, Drain, or a Watcher that
// reads to the end), or their event goroutines outlive the test, which goleak
// and testing/synctest report.
type Pair struct {
	Network            *Network
	ServerHost         *Host
	ClientHost         *Host
	ServerRegistration *quicx.Registration
	ClientRegistration *quicx.Registration
	ServerConfig       *quicx.Configuration // the server credential; pass it to NewConnection.Accept
	ClientConfig       *quicx.Configuration // the client credential; pass it to Connection.Start
	Listener           *quicx.Listener
	// ListenerEvents consumes the listener's events. Connect takes the
	// NewConnection it causes from it; answer any other yourself.
	ListenerEvents *Watcher[quicx.ListenerEvent]
	// Addr is where clients reach the listener: the server host's address
	// and the port.
	Addr        netip.AddrPort
	Certificate *tls.Certificate
	// Client and Server are the first connection, as Connect returned it.
	Client, Server Endpoint

	start   time.Time // the origin of every watcher's timeline
	ownNet  bool
	mu      sync.Mutex
	conns   []Endpoint
	closed  bool
	connect sync.Mutex // one Connect at a time: they share the listener's events
}

// OpenPair builds a pair; the caller must Close it. See NewPair for tests.
// Inside a testing/synctest bubble, open (and close) it inside the bubble.
func OpenPair(cfg PairConfig) (_ *Pair, err error) {
	p := &Pair{start: time.Now()}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	if cfg.Network == nil {
		n, err := NewNetwork(NetworkConfig{Seed: cfg.Seed, Link: cfg.Link})
		if err != nil {
			return nil, err
		}
		p.Network, p.ownNet = n, true
	} else {
		p.Network = cfg.Network
	}
	serverName, clientName := cmpOr(cfg.ServerHost, "server"), cmpOr(cfg.ClientHost, "client")
	p.ServerHost, p.ClientHost = p.Network.Host(serverName), p.Network.Host(clientName)
	if p.ServerHost == nil || p.ClientHost == nil {
		return nil, ErrNetworkClosed
	}
	port := cfg.Port
	if port == 0 {
		port = 4433
	}
	alpn := cmpOr(cfg.ALPN, "quicxtest")
	serverSettings, clientSettings := cfg.Settings, cfg.Settings
	if cfg.ServerSettings != nil {
		serverSettings = *cfg.ServerSettings
	}
	if cfg.ClientSettings != nil {
		clientSettings = *cfg.ClientSettings
	}

	p.Certificate = cfg.Certificate
	if p.Certificate == nil {
		if p.Certificate, err = NewCertificate(cfg.Seed, serverName, p.ServerHost.Addr().String(), "localhost"); err != nil {
			return nil, err
		}
	}
	if p.ServerRegistration, err = quicx.OpenRegistration(quicx.RegistrationConfig{
		AppName: "quicxtest-" + serverName, Network: p.ServerHost, EventBuffer: cfg.EventBuffer, Logger: cfg.Logger,
	}); err != nil {
		return nil, err
	}
	if p.ClientRegistration, err = quicx.OpenRegistration(quicx.RegistrationConfig{
		AppName: "quicxtest-" + clientName, Network: p.ClientHost, EventBuffer: cfg.EventBuffer, Logger: cfg.Logger,
	}); err != nil {
		return nil, err
	}
	if p.ServerConfig, err = p.ServerRegistration.OpenConfiguration([]string{alpn}, &serverSettings); err != nil {
		return nil, err
	}
	if err = p.ServerConfig.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: p.Certificate}); err != nil {
		return nil, err
	}
	if p.ClientConfig, err = p.ClientRegistration.OpenConfiguration([]string{alpn}, &clientSettings); err != nil {
		return nil, err
	}
	cred := cfg.ClientCredential
	if cred == nil {
		cred = &quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}
	}
	if err = p.ClientConfig.LoadCredential(cred); err != nil {
		return nil, err
	}
	if p.Listener, err = p.ServerRegistration.OpenListener(); err != nil {
		return nil, err
	}
	if err = p.Listener.SetSettings(&serverSettings); err != nil {
		return nil, err
	}
	p.ListenerEvents = NewWatcher(p.Listener.Events(), Since(p.start))
	if err = p.Listener.Start([]string{alpn}, netip.AddrPortFrom(netip.Addr{}, port)); err != nil {
		return nil, err
	}
	p.Addr = netip.AddrPortFrom(p.ServerHost.Addr(), port)
	if !cfg.NoConnect {
		if p.Client, p.Server, err = p.Connect(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// NewPair is OpenPair for a test: it fails the test if the pair cannot be
// built or connected, and closes the pair at the test's cleanup (reporting
// anything that did not shut down cleanly). Inside a testing/synctest bubble,
// call it with the bubble's t.
func NewPair(t testing.TB, cfg PairConfig) *Pair {
	t.Helper()
	p, err := OpenPair(cfg)
	if err != nil {
		t.Fatalf("quicxtest.NewPair: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("quicxtest: closing the pair: %v", err)
		}
	})
	return p
}

// Connect starts a new client connection to the listener, accepts it with
// ServerConfig, and returns once both sides have raised Connected. Each
// Endpoint's Watcher has consumed the events up to and including Connected;
// its timeline shows them. The connections are closed with the pair.
func (p *Pair) Connect() (client, server Endpoint, err error) {
	p.connect.Lock()
	defer p.connect.Unlock()
	c, err := p.ClientRegistration.OpenConnection()
	if err != nil {
		return client, server, err
	}
	client = Endpoint{Conn: c, Events: NewWatcher(c.Events(), Since(p.start))}
	p.track(client)
	if err := c.Start(p.ClientConfig, quicx.AddressFamilyUnspec, p.ServerHost.Name(), p.Addr.Port()); err != nil {
		return client, server, err
	}
	// The handshake ends either way: in a NewConnection, or in a client failure.
	nc, err := p.awaitNewConnection(client)
	if err != nil {
		return client, server, err
	}
	server = Endpoint{Conn: nc.Connection, Events: NewWatcher(nc.Connection.Events(), Since(p.start))}
	if err := nc.Accept(p.ServerConfig); err != nil {
		nc.Reject(err)
		return client, server, err
	}
	p.track(server)
	if _, err := client.Events.Expect(Type[*quicx.Connected]()); err != nil {
		return client, server, fmt.Errorf("quicxtest: client: %w", err)
	}
	if _, err := server.Events.Expect(Type[*quicx.Connected]()); err != nil {
		return client, server, fmt.Errorf("quicxtest: server: %w", err)
	}
	return client, server, nil
}

// awaitNewConnection waits for the listener's NewConnection, or for the client
// to fail first.
func (p *Pair) awaitNewConnection(client Endpoint) (*quicx.NewConnection, error) {
	deadline := time.NewTimer(DefaultTimeout)
	defer deadline.Stop()
	for {
		ev, ok, wake := p.ListenerEvents.poll(Type[*quicx.NewConnection]())
		if ok {
			return ev.(*quicx.NewConnection), nil
		}
		select {
		case <-wake:
		case <-client.Events.Done():
			return nil, fmt.Errorf("quicxtest: the client ended before the server saw it:\n%s", client.Events.Timeline())
		case <-deadline.C:
			return nil, fmt.Errorf("quicxtest: no NewConnection within %v\nlistener:\n%sclient:\n%s", DefaultTimeout, p.ListenerEvents.Timeline(), client.Events.Timeline())
		}
	}
}

// Origin is the time the pair was opened: the timelines of its watchers
// count from it. Pass Since(p.Origin()) to NewWatcher to line others up.
func (p *Pair) Origin() time.Time { return p.start }

func (p *Pair) track(e Endpoint) {
	p.mu.Lock()
	p.conns = append(p.conns, e)
	p.mu.Unlock()
}

// Close closes every connection Connect made (aborting those not shut down)
// and waits for their final events, closes and drains the streams their
// peers started, then closes the listener, the configurations and the
// registrations, and the network if the pair created it. It reports what did
// not end within DefaultTimeout. Further calls do nothing.
func (p *Pair) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.conns
	p.mu.Unlock()

	var errs []error
	timeout := time.NewTimer(DefaultTimeout)
	defer timeout.Stop()
	for _, e := range conns {
		_ = e.Conn.Close()
	}
	var wg sync.WaitGroup
	for _, e := range conns {
		select {
		case <-e.Events.Done():
		case <-timeout.C:
			errs = append(errs, fmt.Errorf("connection did not end:\n%s", e.Events.Timeline()))
			continue
		}
		for _, ev := range e.Events.Events() {
			if ps, ok := ev.(*quicx.PeerStreamStarted); ok && ps.Stream != nil {
				_ = ps.Stream.Close()
				wg.Go(func() { Drain(ps.Stream.Events()) })
			}
		}
	}
	wg.Wait()
	if p.Listener != nil {
		_ = p.Listener.Close()
		if p.ListenerEvents != nil {
			select {
			case <-p.ListenerEvents.Done():
			case <-timeout.C:
				errs = append(errs, fmt.Errorf("listener did not stop:\n%s", p.ListenerEvents.Timeline()))
			}
		}
	}
	for _, c := range []*quicx.Configuration{p.ServerConfig, p.ClientConfig} {
		if c != nil {
			_ = c.Close()
		}
	}
	for _, r := range []*quicx.Registration{p.ClientRegistration, p.ServerRegistration} {
		if r == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		if err := r.CloseContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("registration %s: %w", r.AppName(), err))
		}
		cancel()
	}
	if p.ownNet && p.Network != nil {
		errs = append(errs, p.Network.Close())
	}
	return errors.Join(errs...)
}
