package perfbase

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestHeaderParserSplit(t *testing.T) {
	var hdr [HeaderLen]byte
	EncodeHeader(hdr[:], 0x0102030405060708)
	stream := append(hdr[:], 0xAA, 0xBB)
	for split := 0; split <= len(stream); split++ {
		var h HeaderParser
		a, b := stream[:split], stream[split:]
		took := h.Feed(a)
		if !h.Done() {
			took += h.Feed(b)
		}
		if !h.Done() || h.Length() != 0x0102030405060708 || took != HeaderLen {
			t.Fatalf("split %d: done=%v length=%#x took=%d", split, h.Done(), h.Length(), took)
		}
	}
	var h HeaderParser
	h.Feed(hdr[:5])
	if h.Done() {
		t.Fatal("done after 5 bytes")
	}
}

func TestPayload(t *testing.T) {
	p := Payload(300)
	if p[0] != 0 || p[255] != 255 || p[256] != 0 || p[299] != 43 {
		t.Fatalf("payload pattern: %v", p[250:260])
	}
}

func TestSummarize(t *testing.T) {
	if Summarize(nil) != nil {
		t.Fatal("stats of no samples")
	}
	var s []time.Duration
	for i := 1000; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Microsecond)
	}
	st := Summarize(s)
	want := LatencyStats{Count: 1000, Min: time.Microsecond, P50: 500 * time.Microsecond, P90: 900 * time.Microsecond,
		P99: 990 * time.Microsecond, P999: 999 * time.Microsecond, Max: 1000 * time.Microsecond}
	if *st != want {
		t.Fatalf("got %+v, want %+v", *st, want)
	}
	one := Summarize([]time.Duration{7})
	if one.P50 != 7 || one.P999 != 7 || one.Max != 7 {
		t.Fatalf("one sample: %+v", one)
	}
}

func TestRatioAndValue(t *testing.T) {
	if r := Ratio(Upload, 9, 10); r != 0.9 {
		t.Errorf("upload ratio %v", r)
	}
	if r := Ratio(Latency, 100, 90); r != 0.9 {
		t.Errorf("latency ratio %v", r)
	}
	if r := Ratio(RPS, 0, 10); r != 0 {
		t.Errorf("ratio with a zero value %v", r)
	}
	r := Result{Scenario: Download, Bytes: 1e9, Elapsed: 2 * time.Second}
	if v := r.Value(); v != 4 {
		t.Errorf("download value %v Gbit/s", v)
	}
	r = Result{Scenario: Latency, Latency: &LatencyStats{P50: 1500 * time.Nanosecond}, Elapsed: time.Second}
	if v := r.Value(); v != 1.5 {
		t.Errorf("latency value %v µs", v)
	}
}

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestQUICGoScenarios runs every scenario of the baseline briefly against its
// own server.
func TestQUICGoScenarios(t *testing.T) {
	srv, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), testCert(t), ServerSettings(), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, sc := range Scenarios {
		t.Run(string(sc), func(t *testing.T) {
			cfg := &ClientConfig{Scenario: sc, Host: "127.0.0.1", Port: srv.Addr().Port(), ServerName: "localhost",
				Duration: 100 * time.Millisecond, Request: 512, Response: 4000, Streams: 2, Conns: 2, IOSize: 64 << 10,
				Settings: ClientSettings()}
			c := NewQUICGoClient(cfg)
			res, err := Run(context.Background(), "quic-go", c, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Value() <= 0 {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// TestMain fails the run if the baseline leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
