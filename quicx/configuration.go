package quicx

import (
	"crypto/rand"
	"crypto/tls"
	"io"
	"slices"
	"sync"
)

// Configuration is MsQuic's configuration: an ALPN list, settings and a TLS
// credential. It has no events. It becomes immutable once a credential is
// loaded. All methods are safe for concurrent use.
type Configuration struct {
	reg   *Registration
	alpns []string

	mu       sync.Mutex
	settings Settings
	res      resolved
	cred     *loadedCredential
	closed   bool
}

// OpenConfiguration is ConfigurationOpen: alpns must hold 1 to 255 bytes each,
// at least one and 65535 bytes in all; settings may be nil for MsQuic's
// defaults.
func (r *Registration) OpenConfiguration(alpns []string, settings *Settings) (*Configuration, error) {
	const op = "OpenConfiguration"
	if err := validateALPNs(op, alpns); err != nil {
		return nil, err
	}
	c := &Configuration{reg: r, alpns: slices.Clone(alpns)}
	if settings != nil {
		c.settings = *settings
	}
	res, err := c.settings.resolve(op)
	if err != nil {
		return nil, err
	}
	c.res = res
	if err := r.addChild(c, op); err != nil {
		return nil, err
	}
	return c, nil
}

func validateALPNs(op string, alpns []string) error {
	if len(alpns) == 0 {
		return newErr(op, ErrInvalidParameter, "no ALPN")
	}
	total := 0
	for _, a := range alpns {
		if len(a) == 0 || len(a) > 255 {
			return newErr(op, ErrInvalidParameter, "ALPN %q must be 1 to 255 bytes", a)
		}
		total += len(a)
	}
	if total > 65535 {
		return newErr(op, ErrInvalidParameter, "ALPN list longer than 65535 bytes")
	}
	return nil
}

// ALPNs returns the configuration's ALPN list.
func (c *Configuration) ALPNs() []string { return slices.Clone(c.alpns) }

// Settings returns the configuration's settings as given.
func (c *Configuration) Settings() Settings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settings
}

// SetSettings is QUIC_PARAM_CONFIGURATION_SETTINGS: it replaces the settings
// before a credential is loaded (ErrInvalidState after).
func (c *Configuration) SetSettings(s *Settings) error {
	const op = "Configuration.SetSettings"
	if s == nil {
		return newErr(op, ErrInvalidParameter, "nil settings")
	}
	res, err := s.resolve(op)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return newErr(op, ErrInvalidState, "configuration closed")
	}
	if c.cred != nil {
		return newErr(op, ErrInvalidState, "credential already loaded: the configuration is immutable")
	}
	c.settings, c.res = *s, res
	return nil
}

// LoadCredential is ConfigurationLoadCredential. It can succeed once; the
// configuration is immutable afterwards.
func (c *Configuration) LoadCredential(cred *Credential) error {
	const op = "Configuration.LoadCredential"
	lc, err := cred.load(op)
	if err != nil {
		return err
	}
	lc.tls.NextProtos = slices.Clone(c.alpns)
	if !lc.client {
		lc.tls.SessionTicketsDisabled = c.res.resumption == ServerNoResume
		// One key for every connection of this configuration: each connection
		// gets its own copy of the TLS configuration, and keys generated lazily
		// would differ per copy, so no ticket would ever be accepted.
		var key [32]byte
		if _, err := rand.Read(key[:]); err != nil {
			return wrapErr(op, ErrInternalError, err, "ticket key")
		}
		lc.tls.SetSessionTicketKeys([][32]byte{key})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return newErr(op, ErrInvalidState, "configuration closed")
	}
	if c.cred != nil {
		return newErr(op, ErrInvalidState, "credential already loaded")
	}
	c.cred = lc
	return nil
}

// SetTicketKeys is QUIC_PARAM_CONFIGURATION_TICKET_KEYS: the keys that encrypt
// and decrypt session tickets (1 to 16, the first encrypts), so that several
// servers can resume each other's sessions. Server configurations only, after
// LoadCredential. By default each configuration has a random key.
func (c *Configuration) SetTicketKeys(keys [][32]byte) error {
	const op = "Configuration.SetTicketKeys"
	if len(keys) == 0 || len(keys) > 16 {
		return newErr(op, ErrInvalidParameter, "1 to 16 keys")
	}
	return c.editTLS(op, true, func(t *tls.Config) { t.SetSessionTicketKeys(keys) })
}

// SetKeyLogWriter is QUIC_PARAM_CONN_TLS_SECRETS for every connection using the
// configuration: TLS secrets are written to w in the NSS key log format
// (SSLKEYLOGFILE), which Wireshark reads. After LoadCredential; nil stops it.
func (c *Configuration) SetKeyLogWriter(w io.Writer) error {
	return c.editTLS("Configuration.SetKeyLogWriter", false, func(t *tls.Config) { t.KeyLogWriter = w })
}

// editTLS applies edit to the loaded credential's TLS configuration, for
// connections started from now on; serverOnly refuses client configurations.
func (c *Configuration) editTLS(op string, serverOnly bool, edit func(*tls.Config)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return newErr(op, ErrInvalidState, "configuration closed")
	case c.cred == nil:
		return newErr(op, ErrInvalidState, "load a credential first")
	case serverOnly && c.cred.client:
		return newErr(op, ErrInvalidParameter, "server configurations only")
	}
	c.cred = c.cred.with(edit)
	return nil
}

// Close is ConfigurationClose. Connections that use the configuration keep
// their copy of it. Closing twice is a no-op.
func (c *Configuration) Close() error {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if !was {
		c.reg.removeChild(c)
	}
	return nil
}

func (c *Configuration) shutdownByRegistration(ConnectionShutdownFlags, uint64) {}

// snapshot is what a connection takes from a configuration when it uses it.
type configSnapshot struct {
	alpns    []string
	res      resolved
	cred     *loadedCredential
	settings Settings
}

// use returns the configuration's state for a connection; role checks that the
// credential is of the right kind.
func (c *Configuration) use(op string, client bool) (configSnapshot, error) {
	if c == nil {
		return configSnapshot{}, newErr(op, ErrInvalidParameter, "nil configuration")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return configSnapshot{}, newErr(op, ErrInvalidParameter, "configuration closed")
	}
	if c.cred == nil {
		return configSnapshot{}, newErr(op, ErrInvalidParameter, "configuration has no credential loaded")
	}
	if c.cred.client != client {
		role := "server"
		if c.cred.client {
			role = "client"
		}
		return configSnapshot{}, newErr(op, ErrInvalidParameter, "configuration holds a %s credential", role)
	}
	return configSnapshot{alpns: c.alpns, res: c.res, cred: c.cred, settings: c.settings}, nil
}

// tlsConfig returns a fresh copy of the credential's TLS template.
func (s configSnapshot) tlsConfig() *tls.Config { return s.cred.tls.Clone() }
