package adapter

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
)

// qlogFile opens a qlog file for one connection in dir, named as quic-go
// names them (<odcid>_<client|server>.sqlog). It returns nil if the file
// cannot be created.
func qlogFile(dir string, isClient bool, id quic.ConnectionID) qlogwriter.Trace {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil
	}
	role := "server"
	if isClient {
		role = "client"
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s_%s.sqlog", id, role)))
	if err != nil {
		return nil
	}
	seq := qlogwriter.NewConnectionFileSeq(&bufferedFile{Writer: bufio.NewWriter(f), f: f}, isClient, id)
	go seq.Run()
	return seq
}

// bufferedFile flushes its buffer before closing the file.
type bufferedFile struct {
	*bufio.Writer
	f *os.File
}

func (b *bufferedFile) Close() error {
	if err := b.Flush(); err != nil {
		_ = b.f.Close()
		return err
	}
	return b.f.Close()
}

// tee is a qlog trace that hands every event to several traces.
type tee []qlogwriter.Trace

func (t tee) AddProducer() qlogwriter.Recorder {
	rs := make(teeRecorder, len(t))
	for i, tr := range t {
		rs[i] = tr.AddProducer()
	}
	return rs
}

type teeRecorder []qlogwriter.Recorder

func (r teeRecorder) RecordEvent(ev qlogwriter.Event) {
	for _, x := range r {
		x.RecordEvent(ev)
	}
}

func (r teeRecorder) Close() error {
	var first error
	for _, x := range r {
		if err := x.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// connTrace is the qlog trace of one connection: quicx's recorder when it
// tracks anything or guards a client's 0-RTT phase (early.go), a qlog file
// when a directory is set, both, or nil.
func connTrace(rec *recorder, qlogDir string, isClient bool, id quic.ConnectionID) qlogwriter.Trace {
	var ts tee
	if rec != nil && (rec.track != 0 || rec.guardsParams()) {
		ts = append(ts, rec)
	}
	if qlogDir != "" {
		if f := qlogFile(qlogDir, isClient, id); f != nil {
			ts = append(ts, f)
		}
	}
	switch len(ts) {
	case 0:
		return nil
	case 1:
		return ts[0]
	}
	return ts
}
