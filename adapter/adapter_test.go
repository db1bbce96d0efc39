package adapter

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The acknowledged ranges of a stream merge whatever order the ACKs come in,
// and the prefix is the contiguous part from offset 0.
func TestAckStateMerges(t *testing.T) {
	cases := []struct {
		adds   [][2]int64
		ranges string
		prefix int64
	}{
		{[][2]int64{{0, 10}, {10, 20}}, "[[0 20]]", 20},
		{[][2]int64{{10, 20}, {0, 10}}, "[[0 20]]", 20},
		{[][2]int64{{20, 30}, {0, 10}}, "[[0 10] [20 30]]", 10},
		{[][2]int64{{20, 30}, {0, 10}, {5, 25}}, "[[0 30]]", 30},
		{[][2]int64{{40, 50}, {20, 30}, {0, 5}, {25, 45}}, "[[0 5] [20 50]]", 5},
		{[][2]int64{{0, 10}, {10, 10}}, "[[0 10]]", 10}, // a FIN-only frame
		{[][2]int64{{5, 8}}, "[[5 8]]", 0},
	}
	for _, c := range cases {
		var a ackState
		for _, r := range c.adds {
			a.add(r[0], r[1])
		}
		if got := fmt.Sprint(a.ranges); got != c.ranges || a.prefix() != c.prefix {
			t.Errorf("adds %v: ranges %s prefix %d, want %s %d", c.adds, got, a.prefix(), c.ranges, c.prefix)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want CloseInfo
	}{
		{&quic.ApplicationError{Remote: true, ErrorCode: 0x42, ErrorMessage: "bye"}, CloseInfo{Kind: CloseApplication, Remote: true, Code: 0x42, Reason: "bye"}},
		{&quic.TransportError{Remote: true, ErrorCode: 0x12a}, CloseInfo{Kind: CloseTransport, Remote: true, Code: 0x12a}},
		{&quic.IdleTimeoutError{}, CloseInfo{Kind: CloseIdle}},
		{&quic.HandshakeTimeoutError{}, CloseInfo{Kind: CloseHandshakeTimeout}},
		{&quic.StatelessResetError{}, CloseInfo{Kind: CloseStatelessReset, Remote: true}},
		{&quic.VersionNegotiationError{}, CloseInfo{Kind: CloseVersionNegotiation}},
		{fmt.Errorf("read: %w", syscall.ECONNREFUSED), CloseInfo{Kind: CloseUnreachable}},
		{context.Canceled, CloseInfo{Kind: CloseCanceled}},
		{errors.New("something else"), CloseInfo{Kind: CloseOther}},
	}
	for _, c := range cases {
		got := Classify(c.err)
		got.Err = nil
		if got != c.want {
			t.Errorf("Classify(%v) = %+v, want %+v", c.err, got, c.want)
		}
	}
}

func TestTicketBlobs(t *testing.T) {
	if _, err := ParseTicket([]byte("QXT1")); !errors.Is(err, ErrBadTicket) {
		t.Errorf("short blob: %v", err)
	}
	if _, err := ParseTicket([]byte("not a ticket at all")); !errors.Is(err, ErrBadTicket) {
		t.Errorf("foreign blob: %v", err)
	}
	if _, err := NewTicketCache([]byte("junk"), nil); err == nil {
		t.Error("a cache accepted a bad ticket")
	}
	c, err := NewTicketCache(nil, nil)
	if err != nil || c.HasTicket() {
		t.Fatalf("empty cache: %v %v", c.HasTicket(), err)
	}
	if _, ok := c.Get("any"); ok {
		t.Error("an empty cache served a ticket")
	}
}
