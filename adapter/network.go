package adapter

import (
	"context"
	"net"
	"net/netip"
)

// Network opens the UDP sockets and resolves the names a registration uses.
// quicx.Network has the same method set; the OS network is the default, and
// quicxtest supplies an in-memory one.
type Network interface {
	// ListenPacket opens a UDP socket bound to addr. An unspecified address binds
	// every local address (dual-stack where the OS allows it); port 0 picks one.
	ListenPacket(addr netip.AddrPort) (net.PacketConn, error)
	// LookupNetIP resolves host; network is "ip", "ip4" or "ip6".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// OSNetwork is the machine's own UDP stack and resolver.
type OSNetwork struct{}

// ListenPacket implements Network.
func (OSNetwork) ListenPacket(addr netip.AddrPort) (net.PacketConn, error) {
	network := "udp"
	if addr.Addr().Is4() {
		network = "udp4"
	}
	return net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
}

// LookupNetIP implements Network.
func (OSNetwork) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

// addrPortOf converts a net.Addr from a socket into a netip.AddrPort, with
// IPv4-mapped IPv6 addresses unmapped.
func addrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
