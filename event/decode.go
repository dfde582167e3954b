package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/agentaudit/agentaudit/internal/jsontok"
)

// decode reads one event object in a single pass: the I-JSON checks of Canonicalize (UTF-8, no
// duplicate names, at any depth) and the typed assignment of every field, without reflection.
// encoding/json did the same in three passes at several times the cost; a differential fuzz test
// keeps the two in agreement.
func decode(data []byte) (*Event, error) {
	p := newParser(data)
	p.SkipSpace()
	if p.Kind() != jsontok.Object {
		return nil, fmt.Errorf("%w: an event must be a JSON object", ErrInvalid)
	}
	var ev Event
	var seen [64]bool
	for more := p.Open(); more; more = p.Comma() {
		keyPos := p.Pos
		k, err := p.Name(&p.key)
		if err != nil {
			return nil, syntax(err)
		}
		idx, known := fieldByName[string(k)]
		if known {
			if seen[idx] {
				return nil, syntax(&SyntaxError{Offset: keyPos, Msg: fmt.Sprintf("duplicate member name %q", k)})
			}
			seen[idx] = true
		}
		if err := p.Colon(); err != nil {
			return nil, syntax(err)
		}
		if !known {
			name := string(k) // copied only here: k is the parser's scratch, reused below
			// Still check the rest is well-formed, so a syntax error is reported as one.
			if _, err := p.value(nil, 1); err != nil {
				return nil, syntax(err)
			}
			if err := p.rest(); err != nil {
				return nil, err
			}
			return nil, &FieldError{Field: name, Rule: "unknown field"}
		}
		if err := p.field(&ev, &Fields[idx]); err != nil {
			return nil, err
		}
	}
	if err := p.Close('}'); err != nil {
		return nil, syntax(err)
	}
	return &ev, p.end()
}

func syntax(err error) error { return fmt.Errorf("%w: %w", ErrInvalid, err) }

// end checks nothing follows the object.
func (p *jcsParser) end() error { return syntaxOrNil(p.End()) }

// rest checks the remainder of the object (after an unknown member) is well-formed.
func (p *jcsParser) rest() error {
	for p.Comma() {
		if _, err := p.Name(&p.key); err != nil {
			return syntax(err)
		}
		if err := p.Colon(); err != nil {
			return syntax(err)
		}
		if _, err := p.value(nil, 1); err != nil {
			return syntax(err)
		}
	}
	if err := p.Close('}'); err != nil {
		return syntax(err)
	}
	return p.end()
}

// field decodes the value at p.Pos into the field f.
func (p *jcsParser) field(ev *Event, f *Field) error {
	name, kind := f.Name, p.Kind()
	typeErr := func(want string) error {
		if _, err := p.value(nil, 1); err != nil { // a malformed value is a syntax error first
			return syntax(err)
		}
		return &FieldError{Field: name, Rule: fmt.Sprintf("must be %s, not a JSON %s", want, kind)}
	}
	if kind == jsontok.Null && f.Type != TypeJSON {
		_, err := p.Literal()
		if f.Type == TypeOptBool {
			ev.Success = nil
		}
		return syntaxOrNil(err)
	}
	switch dst := f.ptr(ev).(type) {
	case *string:
		if kind != jsontok.String {
			return typeErr("a string")
		}
		s, err := p.str()
		if err != nil {
			return syntax(err)
		}
		*dst = string(s)
		return nil
	case *time.Time:
		if kind != jsontok.String {
			return typeErr("an RFC 3339 time string")
		}
		start := p.Pos
		if _, err := p.str(); err != nil {
			return syntax(err)
		}
		// time.Time's own JSON rules, exactly as encoding/json applied them.
		if err := dst.UnmarshalJSON(p.In[start:p.Pos]); err != nil {
			return &FieldError{Field: name, Rule: "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05.123Z"}
		}
		return nil
	case *int64:
		if kind != jsontok.Number {
			return typeErr("an integer")
		}
		tok, _, err := p.number()
		if err != nil {
			return syntax(err)
		}
		n, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil {
			return &FieldError{Field: name, Rule: "must be an integer, not a JSON number"}
		}
		*dst = n
		return nil
	case *float64:
		if kind != jsontok.Number {
			return typeErr("a number")
		}
		// Its own parse, not number's value: an underflow is an error here, as in encoding/json.
		tok, _, err := p.number()
		if err != nil {
			return syntax(err)
		}
		v, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return &FieldError{Field: name, Rule: "must be a number"}
		}
		*dst = v
		return nil
	case *bool, **bool:
		if kind != jsontok.Bool {
			return typeErr("true or false")
		}
		lit, err := p.Literal()
		if err != nil {
			return syntax(err)
		}
		v := lit == "true"
		if b, ok := dst.(*bool); ok {
			*b = v
		} else {
			*dst.(**bool) = Bool(v)
		}
		return nil
	case *json.RawMessage:
		// An event's payloads share one buffer, sized by the input (their canonical forms are
		// rarely longer): one allocation per event instead of a growing one per payload. Each
		// is capped at its end, so an append to one cannot write over the next.
		if p.raw == nil {
			p.raw = make([]byte, 0, len(p.In)-p.Pos)
		}
		start := len(p.raw)
		raw, err := p.value(p.raw, 1)
		if err != nil {
			return syntax(err)
		}
		p.raw = raw
		*dst = raw[start:len(raw):len(raw)]
		return nil
	case *[]Redaction:
		if kind != jsontok.Array {
			return typeErr("an array of redactions")
		}
		raw, err := p.value(nil, 1)
		if err != nil {
			return syntax(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			return &FieldError{Field: name, Rule: "must be an array of {path, kind, action}"}
		}
		return nil
	}
	return &FieldError{Field: name, Rule: "unknown field"}
}

func syntaxOrNil(err error) error {
	if err != nil {
		return syntax(err)
	}
	return nil
}
