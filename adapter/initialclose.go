package adapter

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"

	"github.com/quic-go/quic-go"
)

// A client that abandons its handshake must still tell the server, as MsQuic
// does: RFC 9000 §10.2.3 has it send CONNECTION_CLOSE with APPLICATION_ERROR
// in an Initial packet when it has no 1-RTT keys. quic-go cannot: the only
// handle on a connection that is still dialing is the dial's context, and
// cancelling it drops the connection without a word (transport.go doDial:
// conn.destroy(nil)). So the adapter writes that one packet itself, after
// quic-go's connection has stopped, from what it learns at the dial: the
// client's connection IDs (its own ConnectionIDGenerator and the Tracer's
// argument, quic-go's original destination ID) and the version. Initial keys
// depend only on that destination ID (RFC 9001 §5.2).

// handshakeIDs is what a client connection needs to close its handshake.
type handshakeIDs struct {
	mu       sync.Mutex
	lastSrc  quic.ConnectionID // the generator's latest ID
	src, dst quic.ConnectionID // of the latest dial attempt
	attempts int               // dial attempts; more than one after a version switch
}

// cidGenerator is the client transport's ConnectionIDGenerator: quic-go's
// default (4 random bytes), remembering the latest ID, which is the source
// ID of a dial that follows it at once.
type cidGenerator struct{ ids *handshakeIDs }

func (g cidGenerator) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := quic.ConnectionIDFromBytes(b[:])
	g.ids.mu.Lock()
	g.ids.lastSrc = id
	g.ids.mu.Unlock()
	return id, nil
}

func (g cidGenerator) ConnectionIDLen() int { return 4 }

// dialed records a dial attempt: quic-go generates the source ID and then
// the destination ID, and calls the Tracer with the latter.
func (h *handshakeIDs) dialed(dst quic.ConnectionID) {
	h.mu.Lock()
	h.src, h.dst = h.lastSrc, dst
	h.attempts++
	h.mu.Unlock()
}

func (h *handshakeIDs) get() (src, dst quic.ConnectionID, attempts int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.src, h.dst, h.attempts
}

const (
	quicV1 uint32 = 0x00000001
	quicV2 uint32 = 0x6b3343cf
	// closePacketNumber is far above any packet number a client sends during
	// a handshake, and close enough to 0 for a 4-byte encoding to be decoded
	// exactly (RFC 9000 §17.1), so the server cannot take it for a duplicate.
	closePacketNumber = 1 << 24
	minInitialSize    = 1200 // RFC 9000 §14.1: a client pads Initial datagrams
)

var (
	saltV1 = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	saltV2 = []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
)

// initialKeys are a client's Initial packet protection keys (RFC 9001 §5.2,
// RFC 9369 §3.3.1).
type initialKeys struct {
	key, iv, hp []byte
}

func clientInitialKeys(version uint32, dst []byte) (initialKeys, error) {
	salt, prefix := saltV1, "quic "
	switch version {
	case quicV1:
	case quicV2:
		salt, prefix = saltV2, "quicv2 "
	default:
		return initialKeys{}, errors.New("adapter: no Initial keys for this QUIC version")
	}
	initial, err := hkdf.Extract(sha256.New, dst, salt)
	if err != nil {
		return initialKeys{}, err
	}
	secret := expandLabel(initial, "client in", 32)
	return initialKeys{
		key: expandLabel(secret, prefix+"key", 16),
		iv:  expandLabel(secret, prefix+"iv", 12),
		hp:  expandLabel(secret, prefix+"hp", 16),
	}, nil
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context.
func expandLabel(secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	out, err := hkdf.Expand(sha256.New, secret, string(info), n)
	if err != nil {
		panic(err) // n is far below SHA-256's limit
	}
	return out
}

// initialClose builds a client Initial packet, padded to 1200 bytes, that
// carries CONNECTION_CLOSE (type 0x1c) with APPLICATION_ERROR, no frame type
// and no reason: what RFC 9000 §10.2.3 prescribes for an application close
// before 1-RTT keys exist.
func initialClose(version uint32, dst, src []byte) ([]byte, error) {
	keys, err := clientInitialKeys(version, dst)
	if err != nil {
		return nil, err
	}
	const pnLen = 4
	typeBits := byte(0) // Initial, v1
	if version == quicV2 {
		typeBits = 1
	}
	hdr := make([]byte, 0, minInitialSize)
	hdr = append(hdr, 0xc0|typeBits<<4|(pnLen-1))
	hdr = binary.BigEndian.AppendUint32(hdr, version)
	hdr = append(hdr, byte(len(dst)))
	hdr = append(hdr, dst...)
	hdr = append(hdr, byte(len(src)))
	hdr = append(hdr, src...)
	hdr = append(hdr, 0) // no token
	// Length (2-byte varint) covers the packet number, the payload and the tag.
	lengthAt := len(hdr)
	hdr = append(hdr, 0, 0)
	pnAt := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, closePacketNumber)

	block, err := aes.NewCipher(keys.key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	payloadLen := minInitialSize - len(hdr) - aead.Overhead()
	payload := make([]byte, payloadLen) // PADDING after the frame
	copy(payload, []byte{0x1c, byte(CodeApplicationError), 0x00, 0x00})
	binary.BigEndian.PutUint16(hdr[lengthAt:], 0x4000|uint16(pnLen+payloadLen+aead.Overhead()))

	nonce := make([]byte, len(keys.iv))
	copy(nonce, keys.iv)
	for i := range 8 {
		nonce[len(nonce)-1-i] ^= byte(uint64(closePacketNumber) >> (8 * i))
	}
	pkt := aead.Seal(hdr, nonce, payload, hdr)

	// Header protection (RFC 9001 §5.4): the sample starts 4 bytes after the
	// start of the packet number.
	hp, err := aes.NewCipher(keys.hp)
	if err != nil {
		return nil, err
	}
	var mask [16]byte
	hp.Encrypt(mask[:], pkt[pnAt+4:pnAt+4+16])
	pkt[0] ^= mask[0] & 0x0f
	for i := range pnLen {
		pkt[pnAt+i] ^= mask[1+i]
	}
	return pkt, nil
}
