package quicx

import "testing"

func TestNextIdealBytes(t *testing.T) {
	for _, c := range []struct{ in, want uint64 }{
		{0, 131072},
		{131071, 131072},
		{131072, 196608}, // equal rounds up to the next step
		{196607, 196608},
		{196608, 294912},
		{1 << 30, maxIdealSendBufferSize},
		{maxIdealSendBufferSize, maxIdealSendBufferSize},
	} {
		if got := nextIdealBytes(c.in); got != c.want {
			t.Errorf("nextIdealBytes(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}
