package adapter

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// The Initial keys match RFC 9001 Appendix A.1 (v1) and RFC 9369 Appendix A.1 (v2).
func TestClientInitialKeys(t *testing.T) {
	dst, _ := hex.DecodeString("8394c8f03e515708")
	for _, c := range []struct {
		version     uint32
		key, iv, hp string
	}{
		{quicV1, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{quicV2, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
	} {
		k, err := clientInitialKeys(c.version, dst)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(k.key) + " " + hex.EncodeToString(k.iv) + " " + hex.EncodeToString(k.hp); got != c.key+" "+c.iv+" "+c.hp {
			t.Errorf("version %#x: keys %s", c.version, got)
		}
	}
}

// The close packet is a padded Initial that opens, with the client's Initial
// keys, to CONNECTION_CLOSE(0x1c, APPLICATION_ERROR) followed by PADDING.
func TestInitialClosePacket(t *testing.T) {
	dst, src := []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{9, 10, 11, 12}
	for _, version := range []uint32{quicV1, quicV2} {
		pkt, err := initialClose(version, dst, src)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) != minInitialSize {
			t.Fatalf("size %d", len(pkt))
		}
		k, _ := clientInitialKeys(version, dst)
		pnAt := 1 + 4 + 1 + len(dst) + 1 + len(src) + 1 + 2
		hp, _ := aes.NewCipher(k.hp)
		var mask [16]byte
		hp.Encrypt(mask[:], pkt[pnAt+4:pnAt+20])
		hdr := bytes.Clone(pkt[:pnAt+4])
		hdr[0] ^= mask[0] & 0x0f
		for i := range 4 {
			hdr[pnAt+i] ^= mask[1+i]
		}
		wantType := byte(0)
		if version == quicV2 {
			wantType = 1
		}
		if hdr[0] != 0xc0|wantType<<4|3 || binary.BigEndian.Uint32(hdr[1:]) != version {
			t.Fatalf("version %#x: header %x", version, hdr[:5])
		}
		if l := binary.BigEndian.Uint16(hdr[pnAt-2:]) &^ 0x4000; int(l) != len(pkt)-pnAt {
			t.Fatalf("length field %d, want %d", l, len(pkt)-pnAt)
		}
		pn := binary.BigEndian.Uint32(hdr[pnAt:])
		block, _ := aes.NewCipher(k.key)
		aead, _ := cipher.NewGCM(block)
		nonce := bytes.Clone(k.iv)
		for i := range 4 {
			nonce[len(nonce)-1-i] ^= byte(pn >> (8 * i))
		}
		plain, err := aead.Open(nil, nonce, pkt[pnAt+4:], hdr)
		if err != nil {
			t.Fatalf("version %#x: %v", version, err)
		}
		if !bytes.Equal(plain[:4], []byte{0x1c, 0x0c, 0, 0}) || bytes.ContainsFunc(plain[4:], func(r rune) bool { return r != 0 }) {
			t.Errorf("version %#x: payload %x…", version, plain[:8])
		}
	}
}
