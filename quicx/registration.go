package quicx

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"quicx.dev/adapter"
)

// Network is where a registration's UDP sockets and name lookups come from.
// The zero RegistrationConfig uses the machine's own network; quicxtest
// provides an in-memory one built on quic-go's simnet.
type Network interface {
	// ListenPacket opens a UDP socket bound to addr. An unspecified address binds
	// every local address; port 0 lets the network pick one.
	ListenPacket(addr netip.AddrPort) (net.PacketConn, error)
	// LookupNetIP resolves host; network is "ip", "ip4" or "ip6".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DefaultEventBuffer is the capacity of event channels when
// RegistrationConfig.EventBuffer is zero.
const DefaultEventBuffer = 16

// RegistrationConfig is QUIC_REGISTRATION_CONFIG plus quicx's own options.
type RegistrationConfig struct {
	AppName string           // at most 255 bytes
	Profile ExecutionProfile // see ExecutionProfile for what each profile means here

	// Network supplies sockets and name resolution; nil means the OS network.
	Network Network
	// Logger receives quicx's diagnostics; nil discards them.
	Logger *slog.Logger
	// EventBuffer is the capacity of every event channel the registration
	// creates: zero means DefaultEventBuffer, a negative value unbuffered
	// channels. Events are never dropped whatever the capacity: a full channel
	// only delays the object whose consumer is slow.
	EventBuffer int

	// QlogDir, if set, receives one qlog file per connection
	// (<original destination CID>_<client|server>.sqlog), written by quic-go.
	// Like any recorder subscription it makes quic-go build qlog events.
	QlogDir string

	// StatelessRetry, if set, decides for each new client address whether the
	// server first makes the client prove it with a Retry packet; always true
	// retries every connection. MsQuic decides this globally from memory use
	// (QUIC_SETTINGS RetryMemoryLimit / QUIC_PARAM_GLOBAL_STATELESS_RETRY_CONFIG).
	StatelessRetry func(client netip.AddrPort) bool

	// StatelessResetKey is QUIC_PARAM_GLOBAL_STATELESS_RESET_KEY: with it, quic-go
	// answers packets of unknown connections with stateless resets. Without it
	// none are sent.
	StatelessResetKey *[32]byte
}

// Registration is MsQuic's registration: the root every other object belongs
// to. It has no events. All methods are safe for concurrent use.
type Registration struct {
	appName  string
	profile  ExecutionProfile
	network  adapter.Network
	log      *slog.Logger
	evBuffer int
	qlogDir  string
	bindOpts adapter.BindOptions

	slots [3]sync.Pool // receive buffers by size class: small, 64 KiB, 256 KiB
	boxes sync.Pool    // empty *[]byte boxes, so returning a buffer allocates nothing

	mu        sync.Mutex
	shutdown  bool
	shutFlags ConnectionShutdownFlags
	shutCode  uint64
	closing   bool
	children  map[registrationChild]struct{}
	empty     chan struct{} // closed when children becomes empty while closing
	bindings  map[netip.AddrPort]*serverBinding
}

// registrationChild is a configuration, listener or connection.
type registrationChild interface {
	shutdownByRegistration(flags ConnectionShutdownFlags, code uint64)
}

// OpenRegistration is RegistrationOpen.
func OpenRegistration(cfg RegistrationConfig) (*Registration, error) {
	const op = "OpenRegistration"
	if len(cfg.AppName) > 255 {
		return nil, newErr(op, ErrInvalidParameter, "AppName longer than 255 bytes")
	}
	switch cfg.Profile {
	case ProfileLowLatency, ProfileMaxThroughput:
	case ProfileScavenger, ProfileRealTime:
		return nil, newErr(op, ErrNotSupported, "profile %s needs thread priorities Go does not offer", cfg.Profile)
	default:
		return nil, newErr(op, ErrInvalidParameter, "unknown execution profile %d", cfg.Profile)
	}
	r := &Registration{
		appName:  cfg.AppName,
		profile:  cfg.Profile,
		log:      cfg.Logger,
		evBuffer: cfg.EventBuffer,
		qlogDir:  cfg.QlogDir,
		bindOpts: adapter.BindOptions{VerifySourceAddress: cfg.StatelessRetry, StatelessResetKey: cfg.StatelessResetKey},
		children: map[registrationChild]struct{}{},
		bindings: map[netip.AddrPort]*serverBinding{},
	}
	if r.evBuffer == 0 {
		r.evBuffer = DefaultEventBuffer
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Network != nil {
		r.network = cfg.Network
	} else {
		r.network = adapter.OSNetwork{}
	}
	r.log = r.log.With("registration", cfg.AppName)
	return r, nil
}

// AppName is the name the registration was opened with.
func (r *Registration) AppName() string { return r.appName }

// Profile is the registration's execution profile.
func (r *Registration) Profile() ExecutionProfile { return r.profile }

// receiveBufferSize is the size of the buffers streams read into.
func (r *Registration) receiveBufferSize() int {
	if r.profile == ProfileMaxThroughput {
		return 256 << 10
	}
	return 64 << 10
}

// Receive buffer size classes. A stream starts with a small buffer and moves
// to the profile's size once a read fills one: request/response streams stay
// small, bulk streams grow at once.
const smallReceiveBuffer = 8 << 10

func slotClass(size int) int {
	switch size {
	case smallReceiveBuffer:
		return 0
	case 64 << 10:
		return 1
	}
	return 2
}

// getSlot returns a receive buffer of size from the registration's pool.
func (r *Registration) getSlot(size int) []byte {
	if bp, ok := r.slots[slotClass(size)].Get().(*[]byte); ok {
		b := *bp
		*bp = nil
		r.boxes.Put(bp)
		if len(b) == size {
			return b
		}
	}
	return make([]byte, size)
}

// putSlot returns a receive buffer nobody references any more. The pool holds
// *[]byte boxes; they are recycled so that returning a buffer does not
// allocate one.
func (r *Registration) putSlot(b []byte) {
	if b == nil {
		return
	}
	bp, _ := r.boxes.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = b
	r.slots[slotClass(len(b))].Put(bp)
}

// sendBudget is how many bytes a buffered-mode stream copies ahead of the
// transport before it holds the app's buffers instead.
func (r *Registration) sendBudget() int {
	if r.profile == ProfileMaxThroughput {
		return 1 << 20
	}
	return DefaultIdealSendBufferSize
}

// transport adds the registration's qlog directory to a connection's
// transport settings.
func (r *Registration) transport(ts adapter.TransportSettings) adapter.TransportSettings {
	ts.QlogDir = r.qlogDir
	return ts
}

// eventBuffer is the capacity for new event channels.
func (r *Registration) eventBuffer() int { return max(r.evBuffer, 0) }

// addChild registers a child; it fails once Close has begun.
func (r *Registration) addChild(c registrationChild, op string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return newErr(op, ErrInvalidState, "registration is closing")
	}
	r.children[c] = struct{}{}
	return nil
}

// removeChild forgets a closed child.
func (r *Registration) removeChild(c registrationChild) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.children, c)
	if len(r.children) == 0 && r.empty != nil {
		close(r.empty)
		r.empty = nil
	}
}

// shutdownState reports whether Shutdown was called, and with what.
func (r *Registration) shutdownState() (bool, ConnectionShutdownFlags, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shutdown, r.shutFlags, r.shutCode
}

// Shutdown is RegistrationShutdown: it shuts down every connection with flags
// and code (clients not yet started are left alone: starting them later ends
// them at once), stops every listener, and refuses new connections. It is
// idempotent and does not wait.
func (r *Registration) Shutdown(flags ConnectionShutdownFlags, code uint64) error {
	if code > maxVarint {
		return newErr("Registration.Shutdown", ErrInvalidParameter, "error code above 2^62-1")
	}
	if flags > ShutdownSilent {
		return newErr("Registration.Shutdown", ErrInvalidParameter, "unknown flags %s", flags)
	}
	r.mu.Lock()
	if !r.shutdown {
		r.shutdown, r.shutFlags, r.shutCode = true, flags, code
	}
	kids := make([]registrationChild, 0, len(r.children))
	for c := range r.children {
		kids = append(kids, c)
	}
	r.mu.Unlock()
	for _, c := range kids {
		c.shutdownByRegistration(flags, code)
	}
	return nil
}

// Close is RegistrationClose: it waits until every configuration, listener and
// connection of the registration has been closed. Like MsQuic's, it must not be
// called from a goroutine that those children's events depend on.
func (r *Registration) Close() error { return r.CloseContext(context.Background()) }

// CloseContext is Close bounded by ctx; it returns ctx's error if children
// are still open when ctx ends (the registration stays closing).
func (r *Registration) CloseContext(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	if len(r.children) == 0 {
		r.mu.Unlock()
		return nil
	}
	if r.empty == nil {
		r.empty = make(chan struct{})
	}
	empty := r.empty
	r.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return wrapErr("Registration.CloseContext", ErrAborted, ctx.Err(), "children still open")
	}
}

// maxVarint is the largest QUIC error code (2^62-1).
const maxVarint = 1<<62 - 1
