//go:build linux

package adapter

import (
	"net"
	"syscall"
)

// reportUnreachable asks the kernel to report ICMP errors on an unconnected UDP
// socket (IP_RECVERR / IPV6_RECVERR). The next read then fails with
// ECONNREFUSED or EHOSTUNREACH, quic-go closes the transport with that error, and
// the connection ends as QUIC_STATUS_UNREACHABLE, as MsQuic reports it. It is
// used only on a client connection's own socket and only until the handshake
// completes: MsQuic, too, ignores unreachable reports after that point because
// they could be spoofed. It reports whether the option was set.
func reportUnreachable(pc net.PacketConn, on bool) bool {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	v := 0
	if on {
		v = 1
	}
	set := false
	_ = raw.Control(func(fd uintptr) {
		e4 := syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, v)
		e6 := syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVERR, v)
		set = e4 == nil || e6 == nil
	})
	return set
}
