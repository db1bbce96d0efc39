package adapter

import (
	"context"
	"testing"

	"github.com/quic-go/quic-go/qlog"
)

func packet(t qlog.PacketType, frames ...any) qlog.PacketReceived {
	p := qlog.PacketReceived{Header: qlog.PacketHeader{PacketType: t}}
	for _, f := range frames {
		p.Frames = append(p.Frames, qlog.Frame{Frame: f})
	}
	return p
}

// A server's recorder with TrackZeroRTT: which client streams a 0-RTT packet
// opened, and how far each stream's 0-RTT data reaches (MsQuic's
// RecvMax0RttLength: only frames with data count).
func TestZeroRTTTracker(t *testing.T) {
	r := newRecorder(TrackZeroRTT, false, nil)
	if r.track&TrackReceive == 0 {
		t.Fatal("TrackZeroRTT does not turn on TrackReceive")
	}
	// 0-RTT: stream 4's data opens 0 and 4; an empty FIN frame on 0 does not
	// move 0's 0-RTT end. 1-RTT: stream 12 opens 8 and 12, and more of 4.
	r.RecordEvent(packet(qlog.PacketType0RTT,
		&qlog.StreamFrame{StreamID: 4, Offset: 0, Length: 7},
		&qlog.StreamFrame{StreamID: 0, Offset: 0, Length: 0, Fin: true}))
	r.RecordEvent(packet(qlog.PacketType1RTT,
		&qlog.MaxStreamDataFrame{StreamID: 12, MaximumStreamData: 100},
		&qlog.StreamFrame{StreamID: 4, Offset: 7, Length: 5}))
	// A late 0-RTT packet for an already open stream opens nothing but moves
	// 4's 0-RTT end; one for a new uni stream (2) opens it in 0-RTT.
	r.RecordEvent(packet(qlog.PacketType0RTT,
		&qlog.StreamFrame{StreamID: 4, Offset: 12, Length: 3},
		&qlog.ResetStreamFrame{StreamID: 6},
		&qlog.StreamFrame{StreamID: 1, Offset: 0, Length: 3})) // a server stream: not the peer's

	ctx := context.Background()
	for id, want := range map[uint64]bool{0: true, 4: true, 8: false, 12: false, 2: true, 6: true} {
		s := &Stream{id: id, zr: r}
		if got := s.OpenedIn0RTT(ctx); got != want {
			t.Errorf("stream %d opened in 0-RTT: %v, want %v", id, got, want)
		}
	}
	for id, want := range map[uint64]uint64{0: 0, 4: 15, 8: 0} {
		s := &Stream{id: id, zr: r}
		if got := s.ZeroRTTEnd(); got != want {
			t.Errorf("stream %d: 0-RTT end %d, want %d", id, got, want)
		}
	}

	// A stream accepted before its packet is recorded waits for the record.
	s := &Stream{id: 16, zr: r}
	got := make(chan bool)
	go func() { got <- s.OpenedIn0RTT(ctx) }()
	r.RecordEvent(packet(qlog.PacketType0RTT, &qlog.StopSendingFrame{StreamID: 16}))
	if !<-got {
		t.Error("stream 16, opened by STOP_SENDING in 0-RTT: not marked")
	}
	// A local stream was not opened by the peer, and waits for nothing.
	if (&Stream{id: 1, zr: r}).OpenedIn0RTT(ctx) {
		t.Error("local stream 1 marked")
	}
	// One whose packet is never recorded waits until ctx ends.
	cctx, cancel := context.WithCancel(ctx)
	go cancel()
	if (&Stream{id: 20, zr: r}).OpenedIn0RTT(cctx) {
		t.Error("stream 20 marked without a packet")
	}

	// Without TrackZeroRTT nothing is followed.
	r2 := newRecorder(TrackReceive, false, nil)
	r2.RecordEvent(packet(qlog.PacketType0RTT, &qlog.StreamFrame{StreamID: 0, Length: 5}))
	s2 := &Stream{id: 0, zr: (&Conn{rec: r2}).zeroRTTRecorder()}
	if s2.OpenedIn0RTT(ctx) || s2.ZeroRTTEnd() != 0 {
		t.Error("0-RTT followed without TrackZeroRTT")
	}
}
