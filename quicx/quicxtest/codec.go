package quicxtest

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"quicx.dev/quicx"
)

// Track kinds: which quicx object a recorded timeline belongs to.
const (
	KindListener   = "listener"
	KindConnection = "connection"
	KindStream     = "stream"
)

// eventTypes maps a kind to its event types, by type name.
var eventTypes = func() map[string]map[string]reflect.Type {
	reg := func(samples ...any) map[string]reflect.Type {
		m := map[string]reflect.Type{}
		for _, s := range samples {
			t := reflect.TypeOf(s)
			m[t.Elem().Name()] = t
		}
		return m
	}
	return map[string]map[string]reflect.Type{
		KindListener: reg((*quicx.NewConnection)(nil), (*quicx.ListenerStopComplete)(nil)),
		KindConnection: reg((*quicx.Connected)(nil), (*quicx.ShutdownInitiatedByTransport)(nil),
			(*quicx.ShutdownInitiatedByPeer)(nil), (*quicx.ConnectionShutdownComplete)(nil),
			(*quicx.LocalAddressChanged)(nil), (*quicx.PeerAddressChanged)(nil), (*quicx.PeerStreamStarted)(nil),
			(*quicx.StreamsAvailable)(nil), (*quicx.PeerNeedsStreams)(nil), (*quicx.DatagramStateChanged)(nil),
			(*quicx.DatagramReceived)(nil), (*quicx.DatagramSendStateChanged)(nil), (*quicx.Resumed)(nil),
			(*quicx.ResumptionTicketReceived)(nil), (*quicx.PeerCertificateReceived)(nil)),
		KindStream: reg((*quicx.StartComplete)(nil), (*quicx.Receive)(nil), (*quicx.SendComplete)(nil),
			(*quicx.PeerSendShutdown)(nil), (*quicx.PeerSendAborted)(nil), (*quicx.PeerReceiveAborted)(nil),
			(*quicx.SendShutdownComplete)(nil), (*quicx.StreamShutdownComplete)(nil), (*quicx.IdealSendBufferSize)(nil),
			(*quicx.PeerAccepted)(nil), (*quicx.CancelOnLoss)(nil), (*quicx.ReceiveBufferNeeded)(nil)),
	}
}()

// kindOf names the kind of objects whose events are E.
func kindOf[E any]() (string, bool) {
	switch reflect.TypeFor[E]() {
	case reflect.TypeFor[quicx.ListenerEvent]():
		return KindListener, true
	case reflect.TypeFor[quicx.ConnectionEvent]():
		return KindConnection, true
	case reflect.TypeFor[quicx.StreamEvent]():
		return KindStream, true
	}
	return "", false
}

var (
	streamPtrType = reflect.TypeFor[*quicx.Stream]()
	connPtrType   = reflect.TypeFor[*quicx.Connection]()
	certsType     = reflect.TypeFor[[]*x509.Certificate]()
	anyType       = reflect.TypeFor[any]()
)

// statusJSON is an error field: the quicx Status it carries and its text.
type statusJSON struct {
	Status  uint32 `json:"status"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// encodeFields turns an event's exported fields into JSON. Errors become
// their Status; a *quicx.Stream its ID; a *quicx.Connection nothing;
// certificates their DER bytes; a context value its JSON form (or its %v
// text if it has none).
func encodeFields(ev any) (json.RawMessage, error) {
	v := reflect.ValueOf(ev)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("quicxtest: cannot record %T", ev)
	}
	v = v.Elem()
	t := v.Type()
	m := map[string]any{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		switch {
		case f.Type == errorType:
			if fv.IsNil() {
				m[f.Name] = nil
				continue
			}
			err := fv.Interface().(error)
			st := quicx.StatusOf(err)
			m[f.Name] = statusJSON{Status: uint32(st), Name: st.Name(), Message: err.Error()}
		case f.Type == streamPtrType:
			if s, _ := fv.Interface().(*quicx.Stream); s != nil {
				if id, err := s.ID(); err == nil {
					m[f.Name+"ID"] = id
				}
			}
		case f.Type == connPtrType:
		case f.Type == certType:
			if c, _ := fv.Interface().(*x509.Certificate); c != nil {
				m[f.Name] = c.Raw
			}
		case f.Type == certsType:
			var ders [][]byte
			for _, c := range fv.Interface().([]*x509.Certificate) {
				ders = append(ders, c.Raw)
			}
			m[f.Name] = ders
		case f.Type == anyType:
			val := fv.Interface()
			if b, err := json.Marshal(val); err == nil {
				m[f.Name] = json.RawMessage(b)
			} else {
				m[f.Name] = fmt.Sprint(val)
			}
		default:
			m[f.Name] = fv.Interface()
		}
	}
	return json.Marshal(m)
}

// decodeEvent rebuilds an event of kind from its type name and fields. The
// answer hooks of Receive, NewConnection and PeerCertificateReceived are
// wired to hooks.
func decodeEvent(kind, typ string, raw json.RawMessage, hooks decodeHooks) (any, error) {
	t, ok := eventTypes[kind][typ]
	if !ok {
		return nil, fmt.Errorf("quicxtest: unknown %s event type %q", kind, typ)
	}
	var fields map[string]json.RawMessage
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, fmt.Errorf("quicxtest: %s fields: %w", typ, err)
		}
	}
	pv := reflect.New(t.Elem())
	v := pv.Elem()
	for i := range t.Elem().NumField() {
		f := t.Elem().Field(i)
		r, present := fields[f.Name]
		if !f.IsExported() || !present || string(r) == "null" {
			continue
		}
		fv := v.Field(i)
		switch {
		case f.Type == errorType:
			var s statusJSON
			if err := json.Unmarshal(r, &s); err != nil {
				return nil, fmt.Errorf("quicxtest: %s.%s: %w", typ, f.Name, err)
			}
			var e error = quicx.Status(s.Status)
			if s.Status == 0 {
				e = errors.New(s.Message)
			}
			fv.Set(reflect.ValueOf(&e).Elem())
		case f.Type == certType:
			c, err := decodeCert(r)
			if err != nil {
				return nil, fmt.Errorf("quicxtest: %s.%s: %w", typ, f.Name, err)
			}
			fv.Set(reflect.ValueOf(c))
		case f.Type == certsType:
			var ders []json.RawMessage
			if err := json.Unmarshal(r, &ders); err != nil {
				return nil, fmt.Errorf("quicxtest: %s.%s: %w", typ, f.Name, err)
			}
			var certs []*x509.Certificate
			for _, d := range ders {
				c, err := decodeCert(d)
				if err != nil {
					return nil, fmt.Errorf("quicxtest: %s.%s: %w", typ, f.Name, err)
				}
				certs = append(certs, c)
			}
			fv.Set(reflect.ValueOf(certs))
		default:
			if err := json.Unmarshal(r, fv.Addr().Interface()); err != nil {
				return nil, fmt.Errorf("quicxtest: %s.%s: %w", typ, f.Name, err)
			}
		}
	}
	switch e := pv.Interface().(type) {
	case *quicx.Receive:
		return quicx.NewReceiveEvent(e.AbsoluteOffset, e.Buffers, e.Flags, hooks.complete), nil
	case *quicx.NewConnection:
		return quicx.NewNewConnectionEvent(e.Info, nil, hooks.answer), nil
	case *quicx.PeerCertificateReceived:
		return quicx.NewPeerCertificateReceivedEvent(e.Certificate, e.Chain, e.DeferredStatus, hooks.certificate), nil
	}
	return pv.Interface(), nil
}

// decodeHooks receive the answers to a decoded event.
type decodeHooks struct {
	complete    func(n uint64)
	answer      quicx.NewConnectionAnswer
	certificate func(accept bool)
}

func decodeCert(r json.RawMessage) (*x509.Certificate, error) {
	var der []byte
	if err := json.Unmarshal(r, &der); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
