package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"quicx.dev/quicx"
)

// eventTimeout bounds every wait for an event in the loopback tests.
const eventTimeout = 10 * time.Second

// fixture is a registration with a listening server and a client
// configuration, on loopback UDP.
type fixture struct {
	t         *testing.T
	reg       *quicx.Registration
	settings  quicx.Settings
	serverCfg *quicx.Configuration
	clientCfg *quicx.Configuration
	listener  *quicx.Listener
	addr      netip.AddrPort
	accepted  chan *quicx.Connection

	mu       sync.Mutex
	lnEvents []quicx.ListenerEvent // every listener event, for assertions
}

type fixtureOption func(*fixtureOptions)

type fixtureOptions struct {
	reg          quicx.RegistrationConfig
	beforeAccept func(*quicx.NewConnection)
}

// withBeforeAccept runs f on each NewConnection before it is accepted.
func withBeforeAccept(f func(*quicx.NewConnection)) fixtureOption {
	return func(o *fixtureOptions) { o.beforeAccept = f }
}

func withRegistration(c quicx.RegistrationConfig) fixtureOption {
	return func(o *fixtureOptions) { o.reg = c }
}

// exact is the settings base for MsQuic-exact event sequences: subscribed to
// every recorder-derived event.
var exact = quicx.Settings{TransportEvents: quicx.TrackAll}

// with returns exact with the stream counts set.
func with(bidi, uni uint16) quicx.Settings {
	s := exact
	s.PeerBidiStreamCount, s.PeerUnidiStreamCount = bidi, uni
	return s
}

// newFixture starts a listener for ALPN "test" with settings, accepting every
// connection. Everything is closed and drained at cleanup.
func newFixture(t *testing.T, settings quicx.Settings, opts ...fixtureOption) *fixture {
	t.Helper()
	o := fixtureOptions{reg: quicx.RegistrationConfig{AppName: t.Name()}}
	for _, opt := range opts {
		opt(&o)
	}
	reg, err := quicx.OpenRegistration(o.reg)
	must(t, err)
	f := &fixture{t: t, reg: reg, settings: settings, accepted: make(chan *quicx.Connection, 64)}
	cert, err := quicx.SelfSignedCertificate()
	must(t, err)
	f.serverCfg, err = reg.OpenConfiguration([]string{"test"}, &settings)
	must(t, err)
	must(t, f.serverCfg.LoadCredential(&quicx.Credential{Type: quicx.CredentialCertificateContext, Certificate: cert}))
	f.clientCfg, err = reg.OpenConfiguration([]string{"test"}, &settings)
	must(t, err)
	must(t, f.clientCfg.LoadCredential(&quicx.Credential{Flags: quicx.CredentialClient | quicx.CredentialNoCertificateValidation}))
	f.listener, err = reg.OpenListener()
	must(t, err)
	must(t, f.listener.SetSettings(&settings))
	must(t, f.listener.Start([]string{"test"}, netip.MustParseAddrPort("127.0.0.1:0")))
	f.addr, err = f.listener.Addr()
	must(t, err)
	lnDone := make(chan struct{})
	go func() {
		defer close(lnDone)
		for ev := range f.listener.Events() {
			f.mu.Lock()
			f.lnEvents = append(f.lnEvents, ev)
			f.mu.Unlock()
			if nc, ok := ev.(*quicx.NewConnection); ok {
				if o.beforeAccept != nil {
					o.beforeAccept(nc)
				}
				if err := nc.Accept(f.serverCfg); err != nil {
					t.Errorf("accept: %v", err)
					nc.Reject(err)
					continue
				}
				f.accepted <- nc.Connection
			}
		}
	}()
	t.Cleanup(func() {
		_ = f.listener.Close()
		<-lnDone
		_ = f.serverCfg.Close()
		_ = f.clientCfg.Close()
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		defer cancel()
		if err := reg.CloseContext(ctx); err != nil {
			t.Errorf("registration close: %v", err)
		}
	})
	return f
}

// listenerEvents returns the listener's events so far.
func (f *fixture) listenerEvents() []quicx.ListenerEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]quicx.ListenerEvent(nil), f.lnEvents...)
}

// dial starts a client connection to the fixture's server.
func (f *fixture) dial() *quicx.Connection {
	f.t.Helper()
	c, err := f.reg.OpenConnection()
	must(f.t, err)
	must(f.t, c.Start(f.clientCfg, quicx.AddressFamilyINET, "127.0.0.1", f.addr.Port()))
	return c
}

// serverConn waits for the next accepted server connection.
func (f *fixture) serverConn() *quicx.Connection {
	f.t.Helper()
	select {
	case c := <-f.accepted:
		return c
	case <-time.After(eventTimeout):
		f.t.Fatal("no connection accepted")
		return nil
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// next waits for the next event on ch.
func next[E any](t testing.TB, ch <-chan E) E {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return ev
	case <-time.After(eventTimeout):
		t.Fatal("no event")
	}
	var zero E
	return zero
}

// expectNext waits for the next event and checks its type.
func expectNext[T any, E any](t testing.TB, ch <-chan E) T {
	t.Helper()
	ev := next(t, ch)
	v, ok := any(ev).(T)
	if !ok {
		var want T
		t.Fatalf("got %v, want %T", ev, want)
	}
	return v
}

// waitFor waits for the next event of type T, skipping others.
func waitFor[T any, E any](t testing.TB, ch <-chan E) T {
	t.Helper()
	for {
		if v, ok := any(next(t, ch)).(T); ok {
			return v
		}
	}
}

// drain collects events until ch is closed.
func drain[E any](t testing.TB, ch <-chan E) []E {
	t.Helper()
	var out []E
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-timer.C:
			t.Fatalf("channel not closed; got so far:\n%s", timelineOf(out))
			return out
		}
	}
}

// typeNames lists the event types, such as "Connected".
func typeNames[E any](evs []E) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = reflect.TypeOf(e).Elem().Name()
	}
	return out
}

func timelineOf[E any](evs []E) string {
	var b strings.Builder
	for i, e := range evs {
		fmt.Fprintf(&b, "  %2d %v\n", i, e)
	}
	return b.String()
}

// expectTypes checks the exact sequence of event types.
func expectTypes[E any](t testing.TB, evs []E, want ...string) {
	t.Helper()
	got := typeNames(evs)
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s want types %v", timelineOf(evs), want)
	}
}

// drainStream reads a stream to its end, completing every receive, and
// returns the events and the received bytes.
func drainStream(t testing.TB, s *quicx.Stream) ([]quicx.StreamEvent, []byte) {
	t.Helper()
	var evs []quicx.StreamEvent
	var data []byte
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return evs, data
			}
			evs = append(evs, ev)
			if r, ok := ev.(*quicx.Receive); ok {
				for _, b := range r.Buffers {
					data = append(data, b...)
				}
				r.Complete(r.TotalLength())
			}
		case <-timer.C:
			t.Fatalf("stream not finished; got so far:\n%s", timelineOf(evs))
			return evs, data
		}
	}
}
