package quicx

import "testing"

func TestUrgencyMapping(t *testing.T) {
	cases := []struct {
		p    uint16
		want int8
	}{
		{0xFFFF, 0}, {0xD556, 0}, {0xD555, 1}, {0xAAAB, 1}, {0xAAAA, 2}, {0x8000, 2},
		{0x7FFF, 3}, // MsQuic's default onto quic-go's default
		{0x7FFE, 4}, {0x5FFF, 4}, {0x5FFE, 5}, {0x3FFE, 6}, {0x1FFE, 7}, {0, 7},
	}
	for _, c := range cases {
		if got := urgency(c.p); got != c.want {
			t.Errorf("urgency(%#x) = %d, want %d", c.p, got, c.want)
		}
	}
	// Higher MsQuic priority never maps to a less urgent level.
	for p := 1; p <= 0xFFFF; p++ {
		if urgency(uint16(p)) > urgency(uint16(p-1)) {
			t.Fatalf("urgency(%#x) = %d after urgency(%#x) = %d", p, urgency(uint16(p)), p-1, urgency(uint16(p-1)))
		}
	}
}
