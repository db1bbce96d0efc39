//go:build !linux

package adapter

import "net"

// reportUnreachable is Linux-only; elsewhere an unreachable peer surfaces as a
// handshake idle timeout.
func reportUnreachable(net.PacketConn, bool) bool { return false }
