package quicxtest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"math/big"
	"time"

	"quicx.dev/quicx/internal/selfca"
)

// Validity of the certificates NewCertificate makes: wide enough for real time
// and for testing/synctest's clock, which starts at midnight UTC on 2000-01-01.
var (
	certNotBefore = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
)

// NewCertificate makes a self-signed Ed25519 certificate for hosts (DNS
// names or IP addresses; "localhost" when none are given), derived from seed:
// the same seed and hosts always give the same certificate, byte for byte, so
// handshakes have the same size in every run. It is its own CA, valid from
// 1999 to 2099.
func NewCertificate(seed uint64, hosts ...string) (*tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost"}
	}
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seed)
	keySeed := sha256.Sum256(append([]byte("quicxtest certificate key "), s[:]...))
	key := ed25519.NewKeyFromSeed(keySeed[:])
	return selfca.Make(selfca.Template{
		Key:          key,
		Serial:       new(big.Int).SetUint64(seed | 1<<62),
		Organization: "quicxtest",
		NotBefore:    certNotBefore,
		NotAfter:     certNotAfter,
	}, hosts)
}
