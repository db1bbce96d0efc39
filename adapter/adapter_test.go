package adapter

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// wakes records the recorder's StreamReadable calls; the other handler
// methods are not exercised here.
type wakes struct {
	RecorderHandler
	ids []uint64
}

func (w *wakes) StreamReadable(id uint64) { w.ids = append(w.ids, id) }

// The receive tracker of a server: the client's bidi streams are 0, 4, 8 …
func TestReceiveTrackerWakesWaitingReaders(t *testing.T) {
	w := &wakes{}
	r := newRecorder(TrackReceive, false, nil)
	r.h = w

	// Stream 8's first frame opens 0 and 4 too; each is then readable only
	// where its own data has arrived.
	r.received(8, 0, 5, false, false, false)
	for _, c := range []struct {
		id   uint64
		pos  int64
		want bool
	}{{8, 0, true}, {8, 5, false}, {0, 0, false}, {4, 0, false}} {
		if got := r.readableOrWatch(c.id, c.pos); got != c.want {
			t.Errorf("stream %d at %d: readable %v, want %v", c.id, c.pos, got, c.want)
		}
	}
	// Stream 0 and 4 wait at 0, stream 8 at 5. Out-of-order data wakes no one;
	// the gap's filling wakes stream 4, a FIN-only frame stream 8, a reset
	// stream 0.
	r.received(4, 10, 20, false, false, false)
	r.received(4, 0, 10, false, false, false)
	r.received(8, 5, 5, true, false, false)
	r.received(0, 0, 0, false, true, false)
	if want := []uint64{4, 8, 0}; !slices.Equal(w.ids, want) {
		t.Errorf("woken %v, want %v", w.ids, want)
	}
	// A wake is given once per wait.
	r.received(4, 20, 30, false, false, false)
	if len(w.ids) != 3 {
		t.Errorf("woken again: %v", w.ids)
	}
	// A forgotten stream is not followed again by a late frame; a local
	// stream only once watched; a frame far beyond any stream limit opens
	// nothing.
	r.mu.Lock()
	delete(r.rx.streams, 4)
	r.mu.Unlock()
	r.received(4, 30, 40, false, false, false)
	r.received(1, 0, 10, false, false, false)
	r.received(4*(1<<16)+12, 0, 1, false, false, false)
	r.mu.Lock()
	n := len(r.rx.streams)
	r.mu.Unlock()
	if n != 2 {
		t.Errorf("%d streams followed, want 2 (0 and 8)", n)
	}
	r.watchStream(1)
	if r.readableOrWatch(1, 0) {
		t.Error("a watched local stream with nothing received is readable")
	}
	r.received(1, 0, 3, false, false, false)
	if w.ids[len(w.ids)-1] != 1 {
		t.Errorf("woken %v, want 1 last", w.ids)
	}
}
