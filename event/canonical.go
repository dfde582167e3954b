package event

import (
	"encoding/json"
	"strconv"
	"time"
)

// Canonical returns the event's RFC 8785 canonical bytes: what the ledger salts and hashes.
// Empty fields are left out, times are UTC RFC 3339 with nanoseconds as needed. A zero
// RecordedAt is left out, so the canonical form of a not-yet-recorded event identifies its
// content for idempotent retries.
func (e *Event) Canonical() ([]byte, error) {
	return e.AppendCanonical(make([]byte, 0, 512+len(e.Arguments)+len(e.Result)+len(e.InputMessages)+len(e.OutputText)))
}

// AppendCanonical appends the canonical bytes to dst. It writes the members of the field table
// directly, in its sorted order (a test checks the order against the general JCS encoder), since
// encoding/json followed by a JCS pass costs several times more on the ingest path.
func (e *Event) AppendCanonical(dst []byte) ([]byte, error) {
	w := canonWriter{b: append(dst, '{')}
	for i := range Fields {
		f := &Fields[i]
		switch p := f.ptr(e).(type) {
		case *string:
			w.str(f.Name, *p)
		case *json.RawMessage:
			w.raw(f.Name, *p)
		case *int64:
			w.int(f.Name, *p)
		case *float64:
			w.num(f.Name, *p)
		case *bool:
			w.boolean(f.Name, *p)
		case **bool:
			if *p != nil {
				w.key(f.Name)
				w.b = strconv.AppendBool(w.b, **p)
			}
		case *time.Time:
			w.time(f.Name, *p)
		case *[]Redaction:
			w.redactions(f.Name, *p)
		}
	}
	if w.err != nil {
		return dst, w.err
	}
	return append(w.b, '}'), nil
}

type canonWriter struct {
	b     []byte
	first bool
	err   error
}

func (w *canonWriter) key(k string) {
	if w.first {
		w.b = append(w.b, ',')
	}
	w.first = true
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *canonWriter) str(k, v string) {
	if v != "" {
		w.key(k)
		w.b = appendJCSString(w.b, v)
	}
}

func (w *canonWriter) int(k string, v int64) {
	if v != 0 {
		w.key(k)
		w.b = strconv.AppendInt(w.b, v, 10)
	}
}

func (w *canonWriter) num(k string, v float64) {
	if v != 0 {
		w.key(k)
		w.b = AppendNumber(w.b, v)
	}
}

func (w *canonWriter) boolean(k string, v bool) {
	if v {
		w.key(k)
		w.b = append(w.b, "true"...)
	}
}

func (w *canonWriter) time(k string, t time.Time) {
	if !t.IsZero() {
		w.key(k)
		w.b = append(w.b, '"')
		w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
		w.b = append(w.b, '"')
	}
}

func (w *canonWriter) redactions(k string, rs []Redaction) {
	if len(rs) == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '[')
	for i, r := range rs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, `{"action":`...)
		w.b = appendJCSString(w.b, r.Action)
		w.b = append(w.b, `,"kind":`...)
		w.b = appendJCSString(w.b, r.Kind)
		w.b = append(w.b, `,"path":`...)
		w.b = appendJCSString(w.b, r.Path)
		w.b = append(w.b, '}')
	}
	w.b = append(w.b, ']')
}

func (w *canonWriter) raw(k string, v json.RawMessage) {
	if len(v) == 0 || w.err != nil {
		return
	}
	w.key(k)
	var err error
	if w.b, err = AppendCanonical(w.b, v); err != nil {
		w.err = &FieldError{Field: k, Rule: err.Error()}
	}
}
