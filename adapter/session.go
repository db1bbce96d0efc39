package adapter

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"sync"
)

// appDataPrefix marks quicx's entry in a session ticket's SessionState.Extra
// (quic-go keeps its own entry there, prefixed "quic-go").
var appDataPrefix = []byte("quicx-app1\x00")

// ServerSessionHooks is how a server connection takes part in session
// resumption. Every function runs inside crypto/tls, on the connection's frozen
// loop: it must return quickly.
type ServerSessionHooks struct {
	// TicketAppData returns the app data to put into the ticket quic-go issues
	// at the end of the handshake, and records that the ticket is issued.
	TicketAppData func() []byte
	// Resumed receives the app data of the ticket the client resumed with.
	Resumed func(appData []byte)
}

// ServerTLS returns conf with the resumption hooks installed. conf must be a
// connection's own copy: its ticket keys are used for the ticket.
func ServerTLS(conf *tls.Config, h ServerSessionHooks) *tls.Config {
	conf.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		var data []byte
		if h.TicketAppData != nil {
			data = h.TicketAppData()
		}
		ss.Extra = append(ss.Extra, append(bytes.Clone(appDataPrefix), data...))
		return conf.EncryptTicket(cs, ss)
	}
	conf.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := conf.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return ss, err
		}
		for _, e := range ss.Extra {
			if bytes.HasPrefix(e, appDataPrefix) && h.Resumed != nil {
				h.Resumed(bytes.Clone(e[len(appDataPrefix):]))
			}
		}
		return ss, nil
	}
	return conf
}

// ticketMagic starts a quicx resumption ticket blob.
var ticketMagic = []byte("QXT1")

// TicketCache is a client connection's tls.ClientSessionCache: it serves the
// ticket the app restored (if any) and reports every ticket the server sends
// as a blob the app can store.
type TicketCache struct {
	mu       sync.Mutex
	restored *tls.ClientSessionState
	onTicket func(blob []byte)
}

// NewTicketCache makes a cache holding restored (a blob from a previous
// connection; nil for none) that calls onTicket for each new ticket.
func NewTicketCache(restored []byte, onTicket func(blob []byte)) (*TicketCache, error) {
	c := &TicketCache{onTicket: onTicket}
	if restored != nil {
		cs, err := ParseTicket(restored)
		if err != nil {
			return nil, err
		}
		c.restored = cs
	}
	return c, nil
}

// HasTicket reports whether the cache holds a restored ticket.
func (c *TicketCache) HasTicket() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restored != nil
}

// Get implements tls.ClientSessionCache: the restored ticket, whatever the key
// (the app chose it for this connection).
func (c *TicketCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restored, c.restored != nil
}

// Put implements tls.ClientSessionCache. It runs on quic-go's goroutine.
func (c *TicketCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil {
		c.mu.Lock()
		c.restored = nil // crypto/tls drops a ticket the server refused
		c.mu.Unlock()
		return
	}
	ticket, state, err := cs.ResumptionState()
	if err != nil || state == nil || c.onTicket == nil {
		return
	}
	sb, err := state.Bytes()
	if err != nil || len(ticket) > 0xFFFF {
		return
	}
	blob := make([]byte, 0, len(ticketMagic)+2+len(ticket)+len(sb))
	blob = append(blob, ticketMagic...)
	blob = binary.BigEndian.AppendUint16(blob, uint16(len(ticket)))
	blob = append(blob, ticket...)
	blob = append(blob, sb...)
	c.onTicket(blob)
}

// ErrBadTicket reports a resumption ticket blob quicx did not make.
var ErrBadTicket = errors.New("adapter: not a quicx resumption ticket")

// ParseTicket turns a ticket blob back into a session crypto/tls can resume.
func ParseTicket(blob []byte) (*tls.ClientSessionState, error) {
	if !bytes.HasPrefix(blob, ticketMagic) || len(blob) < len(ticketMagic)+2 {
		return nil, ErrBadTicket
	}
	rest := blob[len(ticketMagic):]
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < n {
		return nil, ErrBadTicket
	}
	st, err := tls.ParseSessionState(rest[n:])
	if err != nil {
		return nil, errors.Join(ErrBadTicket, err)
	}
	cs, err := tls.NewResumptionState(bytes.Clone(rest[:n]), st)
	if err != nil {
		return nil, errors.Join(ErrBadTicket, err)
	}
	return cs, nil
}

// TicketAllowsEarlyData reports whether a ticket blob permits 0-RTT.
func TicketAllowsEarlyData(blob []byte) bool {
	if !bytes.HasPrefix(blob, ticketMagic) || len(blob) < len(ticketMagic)+2 {
		return false
	}
	rest := blob[len(ticketMagic):]
	n := int(binary.BigEndian.Uint16(rest))
	if len(rest) < 2+n {
		return false
	}
	st, err := tls.ParseSessionState(rest[2+n:])
	return err == nil && st.EarlyData
}
