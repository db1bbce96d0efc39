package quicxtest_test

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"quicx.dev/quicx"
	"quicx.dev/quicx/quicxtest"
)

// simNet returns a network closed at the end of the test.
func simNet(t *testing.T, cfg quicxtest.NetworkConfig) *quicxtest.Network {
	t.Helper()
	n, err := quicxtest.NewNetwork(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func listen(t *testing.T, h *quicxtest.Host, addr string) net.PacketConn {
	t.Helper()
	var ap netip.AddrPort
	if addr != "" {
		ap = netip.MustParseAddrPort(addr)
	}
	pc, err := h.ListenPacket(ap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

type arrival struct {
	at   time.Duration
	from netip.AddrPort
	data string
}

// readAll reads until the socket is closed, stamping each packet with the
// simulated time since start.
func readAll(pc net.PacketConn, start time.Time) <-chan []arrival {
	out := make(chan []arrival, 1)
	go func() {
		var got []arrival
		buf := make([]byte, 2000)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				out <- got
				return
			}
			ap := from.(*net.UDPAddr).AddrPort()
			got = append(got, arrival{at: time.Since(start), from: ap, data: string(buf[:n])})
		}
	}()
	return out
}

func send(t *testing.T, pc net.PacketConn, to netip.AddrPort, data string) {
	t.Helper()
	if _, err := pc.WriteTo([]byte(data), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatal(err)
	}
}

func TestHostAddressesAndPorts(t *testing.T) {
	n := simNet(t, quicxtest.NetworkConfig{})
	a, b := n.Host("a"), n.Host("B")
	if a.Addr() != netip.MustParseAddr("10.0.0.1") || b.Addr() != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("addresses %v %v", a.Addr(), b.Addr())
	}
	if n.Host("b") != b {
		t.Fatal("host names are case-insensitive")
	}
	pc := listen(t, a, "")
	if got := pc.LocalAddr().String(); got != "[::]:49152" {
		t.Errorf("wildcard socket address %s", got)
	}
	if got := listen(t, a, "10.0.0.1:0").LocalAddr().String(); got != "10.0.0.1:49153" {
		t.Errorf("second ephemeral port: %s", got)
	}
	if _, err := a.ListenPacket(netip.MustParseAddrPort("10.0.0.1:49152")); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("port in use: %v", err)
	}
	if _, err := a.ListenPacket(netip.MustParseAddrPort("10.0.0.2:5000")); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("another host's address: %v", err)
	}
	if _, err := n.AddHost("c", netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("AddHost accepted an address in use")
	}
	pc.Close()
	if _, err := a.ListenPacket(netip.MustParseAddrPort("0.0.0.0:49152")); err != nil {
		t.Errorf("port not freed by Close: %v", err)
	}
}

func TestLookup(t *testing.T) {
	n := simNet(t, quicxtest.NetworkConfig{})
	a := n.Host("a")
	s, err := n.AddHost("server", netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7"))
	if err != nil {
		t.Fatal(err)
	}
	n.AddName("www.example", netip.MustParseAddr("192.0.2.7"))
	ctx := context.Background()
	for _, c := range []struct {
		network, host string
		want          []string
	}{
		{"ip", "server", []string{"192.0.2.7", "2001:db8::7"}},
		{"ip6", "SERVER.", []string{"2001:db8::7"}},
		{"ip4", "www.example", []string{"192.0.2.7"}},
		{"ip", "localhost", []string{"127.0.0.1", "::1"}},
		{"ip4", "10.1.2.3", []string{"10.1.2.3"}},
	} {
		got, err := a.LookupNetIP(ctx, c.network, c.host)
		var gs []string
		for _, g := range got {
			gs = append(gs, g.String())
		}
		if err != nil || !slices.Equal(gs, c.want) {
			t.Errorf("LookupNetIP(%s, %s) = %v, %v; want %v", c.network, c.host, gs, err, c.want)
		}
	}
	_, err = s.LookupNetIP(ctx, "ip", "nowhere")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("unknown name: %v", err)
	}
}

func TestLatencyAndLoopback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simNet(t, quicxtest.NetworkConfig{Link: quicxtest.Link{Latency: 30 * time.Millisecond}})
		a, b := n.Host("a"), n.Host("b")
		if err := n.SetLink(b, a, quicxtest.Link{Latency: 5 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		pa, pb := listen(t, a, "0.0.0.0:1000"), listen(t, b, "[::]:2000")
		loop := listen(t, b, "127.0.0.1:3000")
		start := time.Now()
		ra, rb, rl := readAll(pa, start), readAll(pb, start), readAll(loop, start)
		send(t, pa, netip.MustParseAddrPort("10.0.0.2:2000"), "a>b")
		send(t, pb, netip.MustParseAddrPort("10.0.0.1:1000"), "b>a")
		send(t, pb, netip.MustParseAddrPort("127.0.0.1:3000"), "b>b loopback")
		time.Sleep(time.Second) // the scenario's clock: let every packet land
		send(t, pa, netip.MustParseAddrPort("127.0.0.1:3000"), "a>a loopback: nobody there")
		time.Sleep(time.Second)
		pa.Close()
		pb.Close()
		loop.Close()
		want := map[string][]arrival{
			"a":    {{5 * time.Millisecond, netip.MustParseAddrPort("10.0.0.2:2000"), "b>a"}},
			"b":    {{30 * time.Millisecond, netip.MustParseAddrPort("10.0.0.1:1000"), "a>b"}},
			"loop": {{0, netip.MustParseAddrPort("127.0.0.1:2000"), "b>b loopback"}},
		}
		for name, ch := range map[string]<-chan []arrival{"a": ra, "b": rb, "loop": rl} {
			if got := <-ch; !slices.Equal(got, want[name]) {
				t.Errorf("%s received %v, want %v", name, got, want[name])
			}
		}
		if st := n.Stats(a, a); st.Sent != 1 || st.Unreachable != 1 {
			t.Errorf("loopback of a: %+v", st)
		}
	})
}

func TestBandwidthAndQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 1 Mbit/s: a 972-byte payload is 1000 bytes on the wire, 8 ms.
		n := simNet(t, quicxtest.NetworkConfig{Link: quicxtest.Link{Latency: 10 * time.Millisecond, Bandwidth: 1e6, QueueBytes: 4000}})
		a, b := n.Host("a"), n.Host("b")
		pa, pb := listen(t, a, ""), listen(t, b, "0.0.0.0:9")
		start := time.Now()
		rb := readAll(pb, start)
		payload := string(make([]byte, 972))
		for range 5 {
			send(t, pa, netip.MustParseAddrPort("10.0.0.2:9"), payload)
		}
		time.Sleep(time.Second)
		pb.Close()
		var at []time.Duration
		for _, r := range <-rb {
			at = append(at, r.at)
		}
		// The link holds 4000 bytes: the packet on the wire and three
		// waiting; the fifth does not fit and is dropped.
		want := []time.Duration{18 * time.Millisecond, 26 * time.Millisecond, 34 * time.Millisecond, 42 * time.Millisecond}
		if !slices.Equal(at, want) {
			t.Errorf("arrivals %v, want %v", at, want)
		}
		if st := n.Stats(a, b); st.Sent != 5 || st.QueueDrops != 1 || st.Delivered != 4 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestMTU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simNet(t, quicxtest.NetworkConfig{Link: quicxtest.Link{MTU: 1300}})
		a, b := n.Host("a"), n.Host("b")
		pa, pb := listen(t, a, ""), listen(t, b, "0.0.0.0:9")
		rb := readAll(pb, time.Now())
		send(t, pa, netip.MustParseAddrPort("10.0.0.2:9"), string(make([]byte, 1272))) // 1300 with headers
		send(t, pa, netip.MustParseAddrPort("10.0.0.2:9"), string(make([]byte, 1273)))
		time.Sleep(time.Second)
		pb.Close()
		if got := <-rb; len(got) != 1 || len(got[0].data) != 1272 {
			t.Errorf("received %d packets", len(got))
		}
		if st := n.Stats(a, b); st.TooBig != 1 || st.Delivered != 1 {
			t.Errorf("stats %+v", st)
		}
		if _, err := quicxtest.NewNetwork(quicxtest.NetworkConfig{Link: quicxtest.Link{MTU: 500}}); err == nil {
			t.Error("an MTU below IPv4's minimum was accepted")
		}
		send(t, pa, netip.MustParseAddrPort("10.9.9.9:9"), "nobody has this address")
		if got := n.Unroutable(); got != 1 {
			t.Errorf("Unroutable() = %d", got)
		}
	})
}

// lossPattern sends 400 numbered packets over a lossy, reordering,
// duplicating link and returns what arrived, in order.
func lossPattern(t *testing.T, seed uint64) ([]string, quicxtest.LinkStats) {
	var (
		got   []string
		stats quicxtest.LinkStats
	)
	synctest.Test(t, func(t *testing.T) {
		link := quicxtest.Link{Latency: 10 * time.Millisecond, Loss: 0.25, Reorder: 0.2, ReorderDelay: 3 * time.Millisecond, Duplicate: 0.1}
		n := simNet(t, quicxtest.NetworkConfig{Seed: seed, Link: link})
		a, b := n.Host("a"), n.Host("b")
		pa, pb := listen(t, a, ""), listen(t, b, "0.0.0.0:9")
		rb := readAll(pb, time.Now())
		for i := range 400 {
			send(t, pa, netip.MustParseAddrPort("10.0.0.2:9"), string(rune('0'+i%10))+string(rune(i)))
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		pb.Close()
		for _, r := range <-rb {
			got = append(got, r.data)
		}
		stats = n.Stats(a, b)
	})
	return got, stats
}

func TestLossReorderDuplicateAreSeeded(t *testing.T) {
	p1, s1 := lossPattern(t, 1)
	again, _ := lossPattern(t, 1)
	other, _ := lossPattern(t, 2)
	if !slices.Equal(p1, again) {
		t.Error("the same seed gave different outcomes")
	}
	if slices.Equal(p1, other) {
		t.Error("different seeds gave the same outcome")
	}
	// Binomial counts, each within 5 standard deviations of its mean. Lost
	// packets are neither reordered nor duplicated.
	within := func(name string, got, n uint64, p float64) {
		mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
		if math.Abs(float64(got)-mean) > 5*sd {
			t.Errorf("%s: %d of %d, expected about %.0f", name, got, n, mean)
		}
	}
	within("lost", s1.Lost, s1.Sent, 0.25)
	within("reordered", s1.Reordered, s1.Sent-s1.Lost, 0.2)
	within("duplicated", s1.Duplicated, s1.Sent-s1.Lost, 0.1)
	if want := s1.Sent - s1.Lost + s1.Duplicated; uint64(len(p1)) != want || s1.Delivered != want {
		t.Errorf("delivered %d (stats %d), want %d: %+v", len(p1), s1.Delivered, want, s1)
	}
	inOrder := slices.IsSortedFunc(p1, func(a, b string) int { return int([]rune(a)[1]) - int([]rune(b)[1]) })
	if inOrder {
		t.Error("nothing was reordered")
	}
}

func TestSimultaneousPacketsAreSpaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simNet(t, quicxtest.NetworkConfig{Link: quicxtest.Link{Latency: 20 * time.Millisecond, Duplicate: 1}})
		a, b := n.Host("a"), n.Host("b")
		pa, pb := listen(t, a, ""), listen(t, b, "0.0.0.0:9")
		start := time.Now()
		rb := readAll(pb, start)
		send(t, pa, netip.MustParseAddrPort("10.0.0.2:9"), "x")
		send(t, pa, netip.MustParseAddrPort("10.0.0.2:9"), "y")
		time.Sleep(time.Second)
		pb.Close()
		var got []arrival
		for _, r := range <-rb {
			r.from = netip.AddrPort{}
			got = append(got, r)
		}
		ms := 20 * time.Millisecond
		want := []arrival{{ms, netip.AddrPort{}, "x"}, {ms + 1, netip.AddrPort{}, "x"}, {ms + 2, netip.AddrPort{}, "y"}, {ms + 3, netip.AddrPort{}, "y"}}
		if !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

func TestRebind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simNet(t, quicxtest.NetworkConfig{Link: quicxtest.Link{Latency: time.Millisecond}})
		a, b := n.Host("a"), n.Host("b")
		pa, pb := listen(t, a, ""), listen(t, b, "0.0.0.0:9")
		start := time.Now()
		ra, rb := readAll(pa, start), readAll(pb, start)
		server := netip.MustParseAddrPort("10.0.0.2:9")
		send(t, pa, server, "before")
		time.Sleep(10 * time.Millisecond)
		a.Rebind()
		send(t, pa, server, "after")
		time.Sleep(10 * time.Millisecond)
		send(t, pb, netip.MustParseAddrPort("10.0.0.1:49152"), "to the old mapping")
		send(t, pb, netip.MustParseAddrPort("10.0.0.1:49153"), "to the new mapping")
		time.Sleep(10 * time.Millisecond)
		pa.Close()
		pb.Close()
		gotB := <-rb
		if len(gotB) != 2 || gotB[0].from.String() != "10.0.0.1:49152" || gotB[1].from.String() != "10.0.0.1:49153" {
			t.Errorf("b saw %v", gotB)
		}
		if gotA := <-ra; len(gotA) != 1 || gotA[0].data != "to the new mapping" {
			t.Errorf("a received %v", gotA)
		}
		if pa.LocalAddr().String() != "[::]:49152" {
			t.Errorf("the socket noticed the rebinding: %v", pa.LocalAddr())
		}
		if st := n.Stats(b, a); st.Unreachable != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestCloseEndsReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, err := quicxtest.NewNetwork(quicxtest.NetworkConfig{Link: quicxtest.Link{Latency: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		a, b := n.Host("a"), n.Host("b")
		pa, _ := a.ListenPacket(netip.AddrPort{})
		pb, _ := b.ListenPacket(netip.MustParseAddrPort("0.0.0.0:9"))
		rb := readAll(pb, time.Now())
		send(t, pa, netip.MustParseAddrPort("10.0.0.2:9"), "in flight")
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if got := <-rb; len(got) != 0 {
			t.Errorf("delivered after Close: %v", got)
		}
		if _, err := a.ListenPacket(netip.AddrPort{}); !errors.Is(err, quicxtest.ErrNetworkClosed) {
			t.Errorf("ListenPacket after Close: %v", err)
		}
		if n.Host("new") != nil {
			t.Error("Host added a host to a closed network")
		}
	})
}

// The network's errors map onto quicx's statuses.
func TestQuicxStatusesFromNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simNet(t, quicxtest.NetworkConfig{})
		reg, err := quicx.OpenRegistration(quicx.RegistrationConfig{Network: n.Host("server")})
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		l1, _ := reg.OpenListener()
		defer l1.Close()
		if err := l1.Start([]string{"a"}, netip.MustParseAddrPort("10.0.0.9:443")); !errors.Is(err, quicx.ErrAddressNotAvailable) {
			t.Errorf("foreign address: %v", err)
		}
		other, err := quicx.OpenRegistration(quicx.RegistrationConfig{Network: n.Host("server")})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		l2, _ := other.OpenListener()
		defer l2.Close()
		if err := l1.Start([]string{"a"}, netip.MustParseAddrPort("0.0.0.0:443")); err != nil {
			t.Fatal(err)
		}
		if err := l2.Start([]string{"b"}, netip.MustParseAddrPort("0.0.0.0:443")); !errors.Is(err, quicx.ErrAddressInUse) {
			t.Errorf("port in use by another registration: %v", err)
		}
		_ = l1.Close()
		quicxtest.Drain(l1.Events())
	})
}
