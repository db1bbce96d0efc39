package adapter

import (
	"context"
	"errors"
	"io"

	"github.com/quic-go/quic-go"
)

// Stream is one QUIC stream: bidirectional, send-only (a local unidirectional
// stream) or receive-only (a peer's unidirectional stream).
type Stream struct {
	conn *Conn
	id   uint64
	send *quic.SendStream    // nil for a peer's unidirectional stream
	recv *quic.ReceiveStream // nil for a local unidirectional stream
	bidi *quic.Stream        // set for bidirectional streams
	rx   *recorder           // follows received data (TrackReceive), or nil
	zr   *recorder           // follows 0-RTT data (TrackZeroRTT), or nil
	gen  uint32              // local streams: the 0-RTT generation it was opened in (early.go)
}

func newBidiStream(c *Conn, s *quic.Stream) *Stream {
	id := uint64(s.StreamID())
	return &Stream{conn: c, id: id, bidi: s, rx: c.receiveRecorder(id), zr: c.zeroRTTRecorder()}
}

func newSendStream(c *Conn, s *quic.SendStream) *Stream {
	return &Stream{conn: c, id: uint64(s.StreamID()), send: s}
}

func newReceiveStream(c *Conn, s *quic.ReceiveStream) *Stream {
	id := uint64(s.StreamID())
	return &Stream{conn: c, id: id, recv: s, rx: c.receiveRecorder(id), zr: c.zeroRTTRecorder()}
}

// ID is the QUIC stream ID.
func (s *Stream) ID() uint64 { return s.id }

// TracksAcks reports whether the connection's recorder follows which of this
// stream's bytes the peer acknowledged.
func (s *Stream) TracksAcks() bool { return s.conn.Tracking()&TrackAcks != 0 }

// CanSend reports whether the stream has a send direction.
func (s *Stream) CanSend() bool { return s.bidi != nil || s.send != nil }

// CanReceive reports whether the stream has a receive direction.
func (s *Stream) CanReceive() bool { return s.bidi != nil || s.recv != nil }

// ReadResult classifies the end of a Read.
type ReadResult int

// Read results.
const (
	ReadMore         ReadResult = iota // more data may follow
	ReadFin                            // the peer's FIN: no more data
	ReadReset                          // the peer reset the stream (StreamErr has the code)
	ReadCanceled                       // we aborted the receive direction
	ReadConnError                      // the connection ended
	ReadRejected0RTT                   // the server rejected 0-RTT: this stream is void, reopen it
)

// Read reads into p. n bytes are valid whatever the result; err carries the
// stream error (ReadReset) or connection error (ReadConnError).
func (s *Stream) Read(p []byte) (n int, res ReadResult, err error) {
	if s.bidi != nil {
		n, err = s.bidi.Read(p)
	} else {
		n, err = s.recv.Read(p)
	}
	return n, classifyRead(err), err
}

func classifyRead(err error) ReadResult {
	switch {
	case err == nil:
		return ReadMore
	case errors.Is(err, io.EOF):
		return ReadFin
	case errors.Is(err, quic.Err0RTTRejected):
		return ReadRejected0RTT
	}
	if se, ok := streamErrOf(err); ok {
		if se.Remote {
			return ReadReset
		}
		return ReadCanceled
	}
	return ReadConnError
}

// PollReset reports whether the peer has reset the stream, without consuming
// data, by a zero-length Read. It must not run concurrently with Read (it
// would wait for it).
func (s *Stream) PollReset() (*StreamErr, bool) {
	_, res, err := s.Read(nil)
	if res == ReadReset {
		se, _ := streamErrOf(err)
		return se, true
	}
	return nil, false
}

// StreamErrCode returns the error code of a stream cancellation (a ReadReset
// or WriteStopSending error); 0 for other errors.
func StreamErrCode(err error) uint64 {
	if se, ok := streamErrOf(err); ok {
		return se.Code
	}
	return 0
}

// WriteResult classifies a failed Write.
type WriteResult int

// Write results.
const (
	WriteOK           WriteResult = iota
	WriteStopSending              // the peer sent STOP_SENDING (StreamErr has the code)
	WriteCanceled                 // we reset the send direction
	WriteConnError                // the connection ended
	WriteRejected0RTT             // the server rejected 0-RTT: this stream is void, reopen it
)

// Write writes p in full unless the stream or connection fails.
func (s *Stream) Write(p []byte) (WriteResult, error) {
	var err error
	if s.bidi != nil {
		_, err = s.bidi.Write(p)
	} else {
		_, err = s.send.Write(p)
	}
	if err == nil {
		return WriteOK, nil
	}
	return classifyWrite(err), err
}

func classifyWrite(err error) WriteResult {
	if errors.Is(err, quic.Err0RTTRejected) {
		return WriteRejected0RTT
	}
	if se, ok := streamErrOf(err); ok {
		if se.Remote {
			return WriteStopSending
		}
		return WriteCanceled
	}
	return WriteConnError
}

// TryWrite writes all of p at once if flow control allows, without blocking;
// quic-go copies p. It reports false (writing nothing) when p does not fit now
// or a Write is in progress.
func (s *Stream) TryWrite(p []byte) (bool, WriteResult, error) {
	var err error
	if s.bidi != nil {
		err = s.bidi.TryWriteAll(p)
	} else {
		err = s.send.TryWriteAll(p)
	}
	switch {
	case err == nil:
		return true, WriteOK, nil
	case errors.Is(err, quic.ErrWouldBlock):
		return false, WriteOK, nil
	}
	return false, classifyWrite(err), err
}

// CloseWrite queues the FIN after the data written so far.
func (s *Stream) CloseWrite() {
	if s.bidi != nil {
		_ = s.bidi.Close()
	} else if s.send != nil {
		_ = s.send.Close()
	}
}

// CancelWrite resets the send direction (RESET_STREAM with code).
func (s *Stream) CancelWrite(code uint64) {
	if s.bidi != nil {
		s.bidi.CancelWrite(quic.StreamErrorCode(code))
	} else if s.send != nil {
		s.send.CancelWrite(quic.StreamErrorCode(code))
	}
}

// CancelRead aborts the receive direction (STOP_SENDING with code).
func (s *Stream) CancelRead(code uint64) {
	if s.bidi != nil {
		s.bidi.CancelRead(quic.StreamErrorCode(code))
	} else if s.recv != nil {
		s.recv.CancelRead(quic.StreamErrorCode(code))
	}
}

// ReleaseCredit lets the peer open another stream in place of this one once it
// completes (a peer-opened stream only).
func (s *Stream) ReleaseCredit() {
	if s.bidi != nil {
		s.bidi.ReleaseStreamCredit()
	} else if s.recv != nil {
		s.recv.ReleaseStreamCredit()
	}
}

// SetPriority sets quic-go's scheduling urgency (0 most urgent … 7) and
// incremental flag.
func (s *Stream) SetPriority(urgency int8, incremental bool) {
	if s.bidi != nil {
		s.bidi.SetPriority(urgency, incremental)
	} else if s.send != nil {
		s.send.SetPriority(urgency, incremental)
	}
}

// SetReliableBoundary makes the data written so far survive a later reset
// (RESET_STREAM_AT), when both sides support it.
func (s *Stream) SetReliableBoundary() {
	if s.bidi != nil {
		s.bidi.SetReliableBoundary()
	} else if s.send != nil {
		s.send.SetReliableBoundary()
	}
}

// OnStopSending runs f once, on a goroutine of its own, when the peer sends
// STOP_SENDING, or when the connection ends (f is then given ok=false). It
// does not fire after CloseWrite or CancelWrite.
func (s *Stream) OnStopSending(f func(code uint64, ok bool)) (stop func() bool) {
	var ctx context.Context
	switch {
	case s.bidi != nil:
		ctx = s.bidi.Context()
	case s.send != nil:
		ctx = s.send.Context()
	default:
		return func() bool { return false }
	}
	return context.AfterFunc(ctx, func() {
		cause := context.Cause(ctx)
		if se, ok := streamErrOf(cause); ok && se.Remote {
			f(se.Code, true)
			return
		}
		f(0, false)
	})
}

// OnFinalSize runs f with the final size when the peer's FIN or RESET_STREAM
// fixes it. f runs on quic-go's goroutine and must not block or call into the
// stream; if the final size is known already, it runs before OnFinalSize
// returns.
func (s *Stream) OnFinalSize(f func(size int64)) {
	if s.bidi != nil {
		s.bidi.SetReceiveFinalSizeCallback(f)
	} else if s.recv != nil {
		s.recv.SetReceiveFinalSizeCallback(f)
	}
}
