package quicxtest

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go/testutils/simnet"

	"quicx.dev/quicx"
)

// Link is one direction of the path between two hosts. The zero Link is a
// perfect wire: no delay, unlimited bandwidth, no loss, MTU 1500.
//
// Its random decisions (Loss, Reorder, Duplicate) are a function of
// NetworkConfig.Seed, the flow (source and destination address), the instant
// the packet is sent and its rank among the flow's packets sent at that
// instant: the same seed makes the same decisions for the same packets, and
// one packet more or less at one instant does not change the decisions of all
// the packets after it.
type Link struct {
	// Latency is the one-way propagation delay.
	Latency time.Duration
	// Bandwidth in bits per second; 0 is unlimited. A packet occupies the link
	// for its size (UDP payload plus IP and UDP headers) divided by Bandwidth,
	// and packets queue behind each other.
	Bandwidth int64
	// QueueBytes bounds the bytes a link with a Bandwidth holds, the packet
	// being sent included; a packet that does not fit is dropped (tail drop).
	// 0 is an unbounded queue.
	QueueBytes int
	// MTU is the largest IP packet the link carries, headers included (28 bytes
	// for IPv4 and UDP, 48 for IPv6 and UDP); larger packets are dropped. 0
	// means 1500. quic-go starts with 1280-byte UDP payloads unless
	// quicx.Settings.MinimumMtu says otherwise, and runs path MTU discovery
	// only on sockets where it can set the DF bit, which simulated sockets are
	// not: here it keeps its initial size.
	MTU int
	// Loss is the probability, from 0 to 1, that a packet is dropped.
	Loss float64
	// Reorder is the probability that a packet is held back by ReorderDelay, so
	// that packets sent after it overtake it.
	Reorder float64
	// ReorderDelay is the extra delay of a reordered packet; 0 means Latency, or
	// 1 ms on a link without latency.
	ReorderDelay time.Duration
	// Duplicate is the probability that a packet is delivered twice.
	Duplicate float64
}

func (l Link) validate() error {
	switch {
	case l.Latency < 0, l.ReorderDelay < 0:
		return errors.New("quicxtest: negative delay")
	case l.Bandwidth < 0, l.QueueBytes < 0:
		return errors.New("quicxtest: negative bandwidth or queue")
	case l.MTU != 0 && l.MTU < 576:
		return fmt.Errorf("quicxtest: MTU %d below IPv4's minimum of 576", l.MTU)
	}
	for _, p := range []float64{l.Loss, l.Reorder, l.Duplicate} {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("quicxtest: probability %v outside [0, 1]", p)
		}
	}
	return nil
}

func (l Link) mtu() int {
	if l.MTU == 0 {
		return 1500
	}
	return l.MTU
}

func (l Link) reorderDelay() time.Duration {
	switch {
	case l.ReorderDelay > 0:
		return l.ReorderDelay
	case l.Latency > 0:
		return l.Latency
	}
	return time.Millisecond
}

// LinkStats counts what happened to the packets sent over a link.
type LinkStats struct {
	Sent        uint64 // packets handed to the link
	Bytes       uint64 // UDP payload bytes of those packets
	Delivered   uint64 // packets handed to a socket, duplicates included
	Lost        uint64 // dropped by Loss
	TooBig      uint64 // dropped for exceeding the MTU
	QueueDrops  uint64 // dropped because the queue was full
	Reordered   uint64 // held back by ReorderDelay
	Duplicated  uint64 // delivered a second time
	Unreachable uint64 // arrived where no socket was bound (or the NAT mapping was gone)
}

// NetworkConfig configures a Network.
type NetworkConfig struct {
	// Seed seeds every random decision of the network's links.
	Seed uint64
	// Link is the default link between two different hosts, in each direction,
	// until SetLink changes it. A host always reaches itself over a perfect
	// loopback link unless SetLink(h, h, …) says otherwise.
	Link Link
}

// Network is an in-memory IP network of hosts joined by links, carrying UDP
// through quic-go's simnet sockets. Packets to an address where no socket is
// bound are dropped silently, as behind a firewall: a client dialing such an
// address sees a handshake timeout.
//
// No two packets arrive at the same instant anywhere on the network: packets
// due together are delivered 1 ns apart, in an order that depends on the
// packets (their link, flow and send order), not on which goroutine sent them
// first. Inside a testing/synctest bubble everything a packet sets off
// therefore happens before the next one arrives, which makes runs repeatable.
//
// It works in real time, and in simulated time inside a testing/synctest
// bubble (create it inside the bubble then). All methods are safe for
// concurrent use. Close stops it.
type Network struct {
	seed uint64
	def  Link

	mu     sync.Mutex
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
	hosts  []*Host
	byName map[string]*Host
	byAddr map[netip.Addr]*Host
	names  map[string][]netip.Addr
	links  map[[2]*Host]*link
	unrout uint64 // packets to addresses no host owns

	// Packets in flight, delivered by one goroutine in order of arrival.
	q        flightHeap
	running  bool
	wake     chan struct{}
	lastBase time.Time // the due time of the last packet delivered
	lastRank int       // how many packets due then were delivered before it
	lastAt   time.Time // when the last packet was delivered
}

// NewNetwork returns an empty network. It fails only for an invalid default
// link.
func NewNetwork(cfg NetworkConfig) (*Network, error) {
	if err := cfg.Link.validate(); err != nil {
		return nil, err
	}
	return &Network{
		seed:   cfg.Seed,
		def:    cfg.Link,
		done:   make(chan struct{}),
		byName: map[string]*Host{},
		byAddr: map[netip.Addr]*Host{},
		names:  map[string][]netip.Addr{},
		links:  map[[2]*Host]*link{},
		wake:   make(chan struct{}, 1),
	}, nil
}

// ErrNetworkClosed is returned by a closed network's operations.
var ErrNetworkClosed = errors.New("quicxtest: network closed")

// Host returns the host called name, adding it with the next free address of
// 10.0.0.0/8 (10.0.0.1, 10.0.0.2, … in the order hosts are added) if there is
// none. Names are case-insensitive. On a closed network it returns nil
// instead of adding a host.
func (n *Network) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h := n.byName[normName(name)]; h != nil {
		return h
	}
	if n.closed {
		return nil
	}
	for i := len(n.hosts) + 1; ; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if n.byAddr[a] == nil {
			h, _ := n.addHostLocked(name, []netip.Addr{a})
			return h
		}
	}
}

// AddHost adds a host called name with the given addresses (IPv4 or IPv6, not
// loopback, not unspecified); the first of each family is the one it sends
// from. Every host also owns 127.0.0.1 and ::1, reachable only from itself.
func (n *Network) AddHost(name string, addrs ...netip.Addr) (*Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrNetworkClosed
	}
	if name == "" || len(addrs) == 0 {
		return nil, errors.New("quicxtest: a host needs a name and an address")
	}
	if n.byName[normName(name)] != nil {
		return nil, fmt.Errorf("quicxtest: host %q exists", name)
	}
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("quicxtest: %v cannot be a host address", a)
		}
		if n.byAddr[a] != nil {
			return nil, fmt.Errorf("quicxtest: %v belongs to host %q", a, n.byAddr[a].name)
		}
	}
	return n.addHostLocked(name, addrs)
}

func (n *Network) addHostLocked(name string, addrs []netip.Addr) (*Host, error) {
	h := &Host{net: n, index: len(n.hosts), name: name, ports: map[uint16][]*socket{}, public: map[uint16][]*socket{}, nextPort: firstEphemeralPort}
	for _, a := range addrs {
		h.addrs = append(h.addrs, a.Unmap())
		n.byAddr[a.Unmap()] = h
	}
	n.hosts = append(n.hosts, h)
	n.byName[normName(name)] = h
	return h, nil
}

// AddName makes name resolve to addrs on every host (a DNS record). Host names
// resolve without it.
func (n *Network) AddName(name string, addrs ...netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range addrs {
		n.names[normName(name)] = append(n.names[normName(name)], a.Unmap())
	}
}

func normName(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".") }

// SetLink sets the link from one host to another (one direction). It applies
// to packets sent from now on; packets in flight keep their schedule.
func (n *Network) SetLink(from, to *Host, l Link) error {
	if err := l.validate(); err != nil {
		return err
	}
	if from == nil || to == nil || from.net != n || to.net != n {
		return errors.New("quicxtest: hosts of another network")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.linkLocked(from, to).cfg = l
	return nil
}

// SetLinks sets the links between a and b in both directions to l.
func (n *Network) SetLinks(a, b *Host, l Link) error {
	if err := n.SetLink(a, b, l); err != nil {
		return err
	}
	return n.SetLink(b, a, l)
}

// Link returns the link from one host to another.
func (n *Network) Link(from, to *Host) Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.linkLocked(from, to).cfg
}

// Stats returns the counters of the link from one host to another.
func (n *Network) Stats(from, to *Host) LinkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.linkLocked(from, to).stats
}

func (n *Network) linkLocked(from, to *Host) *link {
	k := [2]*Host{from, to}
	l := n.links[k]
	if l == nil {
		l = &link{net: n, from: from, to: to, cfg: n.def, flows: map[[2]netip.AddrPort]*flowState{}}
		if from == to {
			l.cfg = Link{}
		}
		n.links[k] = l
	}
	return l
}

// Unroutable counts the packets sent to addresses no host owns (dropped).
func (n *Network) Unroutable() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.unrout
}

// Close stops the network: packets in flight are dropped, sockets still open
// are closed (their readers get net.ErrClosed) and Close returns once the
// network's own goroutines have exited. Further calls do nothing.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	var conns []*simnet.SimConn
	for _, h := range n.hosts {
		for _, ss := range h.ports {
			for _, s := range ss {
				s.closed = true
				conns = append(conns, s.conn)
			}
		}
		h.ports, h.public = map[uint16][]*socket{}, map[uint16][]*socket{}
	}
	n.q = nil
	n.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	n.wg.Wait()
	return nil
}

// ---- hosts ----

const firstEphemeralPort = 49152

// Host is a machine on a Network. It implements quicx.Network: point a
// registration at it with quicx.RegistrationConfig{Network: host}. Its sockets
// bind its own addresses and the loopback addresses.
type Host struct {
	net   *Network
	index int // in the order hosts were added
	name  string
	addrs []netip.Addr

	// Guarded by net.mu.
	ports    map[uint16][]*socket // by local port
	public   map[uint16][]*socket // by NAT-mapped port, for packets from other hosts
	nextPort uint16
}

var _ quicx.Network = (*Host)(nil)

// Name is the host's name.
func (h *Host) Name() string { return h.name }

// Addr is the host's first address.
func (h *Host) Addr() netip.Addr { return h.addrs[0] }

// Addrs returns all of the host's addresses, loopback excluded.
func (h *Host) Addrs() []netip.Addr { return append([]netip.Addr(nil), h.addrs...) }

// Network returns the network the host is on.
func (h *Host) Network() *Network { return h.net }

// String returns the host's name and first address.
func (h *Host) String() string { return fmt.Sprintf("%s(%s)", h.name, h.addrs[0]) }

// ListenPacket implements quicx.Network: it binds a UDP socket on the host.
// The zero AddrPort and [::] bind every address of the host (IPv4 and IPv6),
// 0.0.0.0 every IPv4 address; port 0 picks the next free port from 49152 up.
// Binding a port in use fails with an error matching syscall.EADDRINUSE, an
// address the host does not own with syscall.EADDRNOTAVAIL.
func (h *Host) ListenPacket(addr netip.AddrPort) (net.PacketConn, error) {
	n := h.net
	ip := addr.Addr().Unmap()
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(addr), Err: os.NewSyscallError("bind", err)}
	}
	if n.closed {
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(addr), Err: ErrNetworkClosed}
	}
	s := &socket{host: h, ip: ip}
	switch {
	case !ip.IsValid() || ip == netip.IPv6Unspecified():
		s.ip, s.v4, s.v6 = netip.IPv6Unspecified(), true, true
	case ip == netip.IPv4Unspecified():
		s.v4 = true
	case ip.IsLoopback():
		s.v4, s.v6 = ip.Is4(), ip.Is6()
	case n.byAddr[ip] == h:
		s.v4, s.v6 = ip.Is4(), ip.Is6()
	default:
		return nil, opErr(syscall.EADDRNOTAVAIL)
	}
	port := addr.Port()
	if port == 0 {
		port = h.freePortLocked()
		if port == 0 {
			return nil, opErr(syscall.EADDRINUSE)
		}
	} else {
		for _, o := range h.ports[port] {
			if o.overlaps(s) {
				return nil, opErr(syscall.EADDRINUSE)
			}
		}
		for _, o := range h.public[port] {
			if o.port != port {
				return nil, opErr(syscall.EADDRINUSE) // taken by a NAT mapping
			}
		}
	}
	s.port, s.pub = port, port
	h.ports[port] = append(h.ports[port], s)
	if !s.ip.IsLoopback() {
		h.public[port] = append(h.public[port], s)
	}
	s.conn = simnet.NewBlockingSimConn(net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.ip, port)), &socketRouter{s: s})
	return &packetConn{SimConn: s.conn, s: s}, nil
}

// freePortLocked returns a port neither bound nor used by a NAT mapping.
func (h *Host) freePortLocked() uint16 {
	for range 65536 - firstEphemeralPort {
		p := h.nextPort
		h.nextPort++
		if h.nextPort == 0 {
			h.nextPort = firstEphemeralPort
		}
		if len(h.ports[p]) == 0 && len(h.public[p]) == 0 {
			return p
		}
	}
	return 0
}

// LookupNetIP implements quicx.Network. "localhost" is the asking host's
// loopback address; a host's name resolves to that host's addresses, and
// names added with Network.AddName to theirs. network is "ip", "ip4" or
// "ip6". An unknown name fails with a *net.DNSError whose IsNotFound is set.
func (h *Host) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var all []netip.Addr
	name := normName(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		all = []netip.Addr{ip.Unmap()}
	} else if name == "localhost" {
		all = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	} else {
		n := h.net
		n.mu.Lock()
		if o := n.byName[name]; o != nil {
			all = append(all, o.addrs...)
		}
		all = append(all, n.names[name]...)
		n.mu.Unlock()
	}
	var out []netip.Addr
	for _, a := range all {
		if (network == "ip4" && !a.Is4()) || (network == "ip6" && !a.Is6()) {
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// Rebind simulates NAT rebinding: every socket of the host gets a new public
// port, so its peers see its packets come from a new address, and packets
// still addressed to the old one are dropped. The sockets themselves notice
// nothing (their LocalAddr is unchanged). Traffic between the host and itself
// is not translated.
func (h *Host) Rebind() {
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	var socks []*socket
	for _, ss := range h.public {
		socks = append(socks, ss...)
	}
	// In port order, so that the new ports are the same in every run.
	slices.SortFunc(socks, func(a, b *socket) int { return cmp.Compare(a.pub, b.pub) })
	clear(h.public)
	for _, s := range socks {
		s.pub = h.freePortLocked()
		h.public[s.pub] = []*socket{s}
	}
}

// ---- sockets ----

// socket is one bound UDP socket. Its fields are guarded by net.mu.
type socket struct {
	host   *Host
	ip     netip.Addr // as bound: unspecified for a wildcard
	v4, v6 bool       // families it can send and receive
	port   uint16     // local port
	pub    uint16     // the port its packets leave the host with (NAT)
	conn   *simnet.SimConn
	closed bool
}

func (s *socket) wildcard() bool { return s.ip.IsUnspecified() }

func (s *socket) overlaps(o *socket) bool {
	if s.wildcard() || o.wildcard() {
		return (s.v4 && o.v4) || (s.v6 && o.v6)
	}
	return s.ip == o.ip
}

// accepts reports whether s receives packets addressed to ip.
func (s *socket) accepts(ip netip.Addr) bool {
	if s.wildcard() {
		return (ip.Is4() && s.v4) || (ip.Is6() && s.v6)
	}
	return s.ip == ip
}

// packetConn is the net.PacketConn ListenPacket returns: a simnet.SimConn that
// frees its port when closed.
type packetConn struct {
	*simnet.SimConn
	s *socket
}

// Close closes the socket and frees its port.
func (c *packetConn) Close() error {
	s := c.s
	n := s.host.net
	n.mu.Lock()
	if !s.closed {
		s.closed = true
		h := s.host
		h.ports[s.port] = slices.DeleteFunc(h.ports[s.port], func(o *socket) bool { return o == s })
		if len(h.ports[s.port]) == 0 {
			delete(h.ports, s.port)
		}
		h.public[s.pub] = slices.DeleteFunc(h.public[s.pub], func(o *socket) bool { return o == s })
		if len(h.public[s.pub]) == 0 {
			delete(h.public, s.pub)
		}
	}
	n.mu.Unlock()
	return c.SimConn.Close()
}

// socketRouter is the simnet.Router of one socket: it hands the socket's
// packets to the network.
type socketRouter struct{ s *socket }

// SendPacket implements simnet.Router.
func (r *socketRouter) SendPacket(p simnet.Packet) error {
	r.s.host.net.send(r.s, p)
	return nil
}

// AddNode implements simnet.Router; the network already knows the socket.
func (r *socketRouter) AddNode(net.Addr, simnet.PacketReceiver) {}

func addrPortOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// ---- links ----

// link is one direction between two hosts, with its queue of packets in
// flight. Its fields are guarded by net.mu.
type link struct {
	net      *Network
	from, to *Host
	cfg      Link
	stats    LinkStats
	flows    map[[2]netip.AddrPort]*flowState
	busy     time.Time // when the link has finished sending what is queued
}

// flight is a packet on its way.
type flight struct {
	link     *link
	due      time.Time // when the link would deliver it
	key      flightKey // orders packets due at the same instant
	src, dst netip.AddrPort
	external bool // from another host: addressed to a NAT-mapped port
	data     []byte
}

// flightKey orders packets due at the same instant by what they are, not by
// which goroutine sent them first, so that the order is the same in every run.
type flightKey struct {
	from, to int    // the link's hosts' indexes
	flow     uint64 // the flow's hash
	sent     int64  // the send instant
	rank     uint64 // the packet's rank among its flow's packets sent then
	dup      bool   // the duplicate of a packet
}

func (k flightKey) less(o flightKey) bool {
	switch {
	case k.from != o.from:
		return k.from < o.from
	case k.to != o.to:
		return k.to < o.to
	case k.flow != o.flow:
		return k.flow < o.flow
	case k.sent != o.sent:
		return k.sent < o.sent
	case k.rank != o.rank:
		return k.rank < o.rank
	}
	return !k.dup && o.dup
}

type flightHeap []*flight

func (h flightHeap) Len() int { return len(h) }
func (h flightHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].key.less(h[j].key)
}
func (h flightHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *flightHeap) Push(x any)   { *h = append(*h, x.(*flight)) }
func (h *flightHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return f
}

// send routes one packet written on s.
func (n *Network) send(s *socket, p simnet.Packet) {
	dst := addrPortOf(p.To)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || s.closed {
		return
	}
	src, to, ok := n.routeLocked(s, dst.Addr())
	if !ok {
		n.unrout++
		return
	}
	l := n.linkLocked(s.host, to)
	cfg := l.cfg
	size := len(p.Data)
	l.stats.Sent++
	l.stats.Bytes += uint64(size)

	// Every packet draws the same three values, whatever the settings, so that
	// one setting does not shift the decisions of another.
	now := time.Now()
	flow, rank, lossDraw, reorderDraw, dupDraw := l.draws(src, dst, now)

	wire := size + 28
	if dst.Addr().Is6() {
		wire = size + 48
	}
	if wire > cfg.mtu() {
		l.stats.TooBig++
		return
	}
	sent := now
	if cfg.Bandwidth > 0 {
		start := l.busy
		if start.Before(now) {
			start = now
		}
		if cfg.QueueBytes > 0 {
			backlog := int64(start.Sub(now)) * cfg.Bandwidth / 8 / int64(time.Second)
			if backlog+int64(wire) > int64(cfg.QueueBytes) {
				l.stats.QueueDrops++
				return
			}
		}
		sent = start.Add(time.Duration(int64(wire) * 8 * int64(time.Second) / cfg.Bandwidth))
		l.busy = sent
	}
	if lossDraw < cfg.Loss {
		l.stats.Lost++
		return
	}
	at := sent.Add(cfg.Latency)
	if reorderDraw < cfg.Reorder {
		l.stats.Reordered++
		at = at.Add(cfg.reorderDelay())
	}
	key := flightKey{from: s.host.index, to: to.index, flow: flow, sent: now.UnixNano(), rank: rank}
	f := &flight{link: l, due: at, key: key, src: src, dst: dst, external: s.host != to, data: p.Data}
	n.pushLocked(f)
	if dupDraw < cfg.Duplicate {
		l.stats.Duplicated++
		d := *f
		d.key.dup = true
		d.data = append([]byte(nil), p.Data...)
		n.pushLocked(&d)
	}
}

// routeLocked picks the source address of a packet from s to dst and the host
// it goes to.
func (n *Network) routeLocked(s *socket, dst netip.Addr) (netip.AddrPort, *Host, bool) {
	if (dst.Is4() && !s.v4) || (dst.Is6() && !s.v6) {
		return netip.AddrPort{}, nil, false
	}
	h := s.host
	if dst.IsLoopback() {
		if !s.wildcard() && !s.ip.IsLoopback() {
			return netip.AddrPort{}, nil, false
		}
		return netip.AddrPortFrom(dst, s.port), h, true
	}
	to := n.byAddr[dst]
	if to == nil {
		return netip.AddrPort{}, nil, false
	}
	srcIP := s.ip
	if s.wildcard() {
		srcIP = netip.Addr{}
		for _, a := range h.addrs {
			if a.Is4() == dst.Is4() {
				srcIP = a
				break
			}
		}
		if !srcIP.IsValid() {
			return netip.AddrPort{}, nil, false
		}
	} else if s.ip.IsLoopback() {
		return netip.AddrPort{}, nil, false
	}
	port := s.pub
	if to == h {
		port = s.port
	}
	return netip.AddrPortFrom(srcIP, port), to, true
}

// draws returns the three random values of a packet of the flow src→dst
// sent now. They depend only on the seed, the flow, the send time and the
// packet's rank among the flow's packets sent at that instant, so that one
// packet more or less at one instant (quic-go's packing varies with goroutine
// scheduling) does not shift the decisions of every later packet.
func (l *link) draws(src, dst netip.AddrPort, now time.Time) (flow, rank uint64, loss, reorder, dup float64) {
	k := [2]netip.AddrPort{src, dst}
	f := l.flows[k]
	if f == nil {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s>%s", src, dst)
		f = &flowState{id: h.Sum64()}
		l.flows[k] = f
	}
	if !now.Equal(f.last) {
		f.last, f.rank = now, 0
	}
	f.rank++
	r := rand.New(rand.NewPCG(l.net.seed^f.id, uint64(now.UnixNano())*0x9E3779B97F4A7C15+f.rank))
	return f.id, f.rank, r.Float64(), r.Float64(), r.Float64()
}

// flowState is what the network remembers of a flow.
type flowState struct {
	id   uint64    // a hash of the addresses
	last time.Time // the instant of the flow's last packet
	rank uint64    // packets of the flow sent at that instant
}

// pushLocked queues f and makes sure the delivery goroutine runs.
func (n *Network) pushLocked(f *flight) {
	heap.Push(&n.q, f)
	if !n.running {
		n.running = true
		n.wg.Go(n.deliver)
		return
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// deliver hands packets to their sockets in order of arrival. It exits when
// nothing is in flight.
//
// No two packets arrive at the same instant anywhere on the network: packets
// due at the same instant come 1 ns apart, in an order that depends on the
// packets and not on the goroutines that sent them. Inside a testing/synctest
// bubble everything a packet sets off then happens before the next packet
// arrives, whatever the goroutine scheduling, which makes runs repeatable.
func (n *Network) deliver() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		n.mu.Lock()
		if n.closed || len(n.q) == 0 {
			n.running = false
			n.mu.Unlock()
			return
		}
		f := n.q[0]
		at, rank := f.due, 0
		if at.Equal(n.lastBase) {
			rank = n.lastRank + 1
			at = at.Add(time.Duration(rank))
		}
		if !at.After(n.lastAt) && !n.lastAt.IsZero() {
			at = n.lastAt.Add(time.Nanosecond)
		}
		if wait := time.Until(at); wait > 0 {
			n.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-n.wake:
				timer.Stop()
			case <-n.done:
			}
			continue
		}
		heap.Pop(&n.q)
		n.lastBase, n.lastRank, n.lastAt = f.due, rank, time.Now()
		l := f.link
		s := l.to.socketForLocked(f.dst, f.external)
		if s == nil {
			l.stats.Unreachable++
			n.mu.Unlock()
			continue
		}
		l.stats.Delivered++
		conn := s.conn
		n.mu.Unlock()
		// Blocks while the socket's receive queue is full, until its reader
		// catches up or it is closed: the simulated network loses nothing it
		// was not told to lose.
		conn.RecvPacket(simnet.Packet{From: net.UDPAddrFromAddrPort(f.src), To: net.UDPAddrFromAddrPort(f.dst), Data: f.data})
	}
}

// socketForLocked finds the socket a packet to dst is delivered to.
func (h *Host) socketForLocked(dst netip.AddrPort, external bool) *socket {
	cands := h.ports[dst.Port()]
	if external {
		cands = h.public[dst.Port()]
	}
	var wild *socket
	for _, s := range cands {
		if s.closed || !s.accepts(dst.Addr()) {
			continue
		}
		if !s.wildcard() {
			return s
		}
		wild = s
	}
	return wild
}
