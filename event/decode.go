package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// decode reads one event object in a single pass: the I-JSON checks of Canonicalize (UTF-8, no
// duplicate names, at any depth) and the typed assignment of every field, without reflection.
// encoding/json did the same in three passes at several times the cost; a differential fuzz test
// keeps the two in agreement.
func decode(data []byte) (*Event, error) {
	p := jcsParser{in: data}
	p.skipSpace()
	if p.pos >= len(p.in) || p.in[p.pos] != '{' {
		return nil, fmt.Errorf("%w: an event must be a JSON object", ErrInvalid)
	}
	p.pos++
	var ev Event
	var seen [64]bool
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		return &ev, p.end()
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return nil, syntax(p.errorf("expected a member name"))
		}
		keyPos := p.pos
		k, err := p.str(p.key[:0])
		if err != nil {
			return nil, syntax(err)
		}
		p.key = k
		idx, known := fieldByName[string(k)]
		if known {
			if seen[idx] {
				return nil, syntax(&SyntaxError{Offset: keyPos, Msg: fmt.Sprintf("duplicate member name %q", k)})
			}
			seen[idx] = true
		}
		name := string(k)
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return nil, syntax(p.errorf("expected ':' after member name"))
		}
		p.pos++
		p.skipSpace()
		if !known {
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
		p.skipSpace()
		if p.pos >= len(p.in) {
			return nil, syntax(p.errorf("unexpected end of input in object"))
		}
		if p.in[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.in[p.pos] != '}' {
			return nil, syntax(p.errorf("expected ',' or '}' in object"))
		}
		p.pos++
		return &ev, p.end()
	}
}

func syntax(err error) error { return fmt.Errorf("%w: %w", ErrInvalid, err) }

// end checks nothing follows the object.
func (p *jcsParser) end() error {
	p.skipSpace()
	if p.pos != len(p.in) {
		return syntax(p.errorf("unexpected data after the JSON value"))
	}
	return nil
}

// rest checks the remainder of the object (after an unknown member) is well-formed.
func (p *jcsParser) rest() error {
	for {
		p.skipSpace()
		if p.pos >= len(p.in) {
			return syntax(p.errorf("unexpected end of input in object"))
		}
		switch p.in[p.pos] {
		case '}':
			p.pos++
			return p.end()
		case ',':
			p.pos++
			p.skipSpace()
			if p.pos >= len(p.in) || p.in[p.pos] != '"' {
				return syntax(p.errorf("expected a member name"))
			}
			if _, err := p.str(p.key[:0]); err != nil {
				return syntax(err)
			}
			p.skipSpace()
			if p.pos >= len(p.in) || p.in[p.pos] != ':' {
				return syntax(p.errorf("expected ':' after member name"))
			}
			p.pos++
			p.skipSpace()
			if _, err := p.value(nil, 1); err != nil {
				return syntax(err)
			}
		default:
			return syntax(p.errorf("expected ',' or '}' in object"))
		}
	}
}

// jsonKind names the JSON type of the value at p.pos, for type errors.
func (p *jcsParser) jsonKind() string {
	switch c := p.in[p.pos]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	}
	return "number"
}

// field decodes the value at p.pos into the field f.
func (p *jcsParser) field(ev *Event, f *Field) error {
	name := f.Name
	if p.pos >= len(p.in) {
		return syntax(p.errorf("unexpected end of input"))
	}
	isNull := p.in[p.pos] == 'n'
	typeErr := func(want string) error {
		kind := p.jsonKind()
		if _, err := p.value(nil, 1); err != nil { // a malformed value is a syntax error first
			return syntax(err)
		}
		return &FieldError{Field: name, Rule: fmt.Sprintf("must be %s, not a JSON %s", want, kind)}
	}
	if isNull && f.Type != TypeJSON {
		_, err := p.literal(nil, "null")
		if f.Type == TypeOptBool {
			ev.Success = nil
		}
		return syntaxOrNil(err)
	}
	switch dst := f.ptr(ev).(type) {
	case *string:
		if p.in[p.pos] != '"' {
			return typeErr("a string")
		}
		s, err := p.str(nil)
		if err != nil {
			return syntax(err)
		}
		*dst = string(s)
		return nil
	case *time.Time:
		if p.in[p.pos] != '"' {
			return typeErr("an RFC 3339 time string")
		}
		start := p.pos
		if _, err := p.str(nil); err != nil {
			return syntax(err)
		}
		// time.Time's own JSON rules, exactly as encoding/json applied them.
		if err := dst.UnmarshalJSON(p.in[start:p.pos]); err != nil {
			return &FieldError{Field: name, Rule: "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05.123Z"}
		}
		return nil
	case *int64:
		if p.jsonKind() != "number" {
			return typeErr("an integer")
		}
		start := p.pos
		if _, err := p.number(nil); err != nil {
			return syntax(err)
		}
		n, err := strconv.ParseInt(string(p.in[start:p.pos]), 10, 64)
		if err != nil {
			return &FieldError{Field: name, Rule: "must be an integer, not a JSON number"}
		}
		*dst = n
		return nil
	case *float64:
		if p.jsonKind() != "number" {
			return typeErr("a number")
		}
		start := p.pos
		if _, err := p.number(nil); err != nil {
			return syntax(err)
		}
		v, err := strconv.ParseFloat(string(p.in[start:p.pos]), 64)
		if err != nil {
			return &FieldError{Field: name, Rule: "must be a number"}
		}
		*dst = v
		return nil
	case *bool, **bool:
		if p.jsonKind() != "bool" {
			return typeErr("true or false")
		}
		v := p.in[p.pos] == 't'
		lit := "false"
		if v {
			lit = "true"
		}
		if _, err := p.literal(nil, lit); err != nil {
			return syntax(err)
		}
		if b, ok := dst.(*bool); ok {
			*b = v
		} else {
			*dst.(**bool) = Bool(v)
		}
		return nil
	case *json.RawMessage:
		raw, err := p.value(nil, 1)
		if err != nil {
			return syntax(err)
		}
		*dst = raw
		return nil
	case *[]Redaction:
		if p.in[p.pos] != '[' {
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
