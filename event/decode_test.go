package event

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// referenceParse is the decoder Parse replaced: the I-JSON check, then encoding/json with unknown
// fields refused, then Validate — with one correction: encoding/json matches member names without
// regard to case ("USER_ID" fills user_id, beside a "user_id" the duplicate check cannot see), and
// Parse, rightly, takes only the exact names. The fuzz test below keeps the two in agreement.
func referenceParse(data []byte) (*Event, error) {
	if b := bytes.TrimSpace(data); len(b) == 0 || b[0] != '{' {
		return nil, ErrInvalid
	}
	if _, err := Canonicalize(data); err != nil {
		return nil, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return nil, err
	}
	for k := range members {
		if _, ok := fieldByName[k]; !ok {
			return nil, &FieldError{Field: k, Rule: "unknown field"}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ev Event
	if err := dec.Decode(&ev); err != nil {
		return nil, err
	}
	return &ev, ev.Validate()
}

func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	c, _ := fullEvent().Canonical()
	for _, s := range []string{string(c),
		`{"kind":"custom","time":"2026-01-01T00:00:00Z","turn":3,"success":null,"arguments":null}`,
		`{"kind":"custom","time":"2026-01-01T00:00:00Z","turn":1.5}`,
		`{"kind":"custom","time":"2026-01-01T00:00:00Z","turn":1e2}`,
		`{"kind":"custom","time":"2026-01-01T00:00:00Z","user_id":null,"x":1}`,
		`{"kind":"tool_call","tool_name":"t","time":"2026-01-01T00:00:00.5+02:00","redactions":[{"path":"a","kind":"k","action":"redact"}]}`,
		`{"kind":"custom","time":"2026-01-01T00:00:00Z","redactions":[{"path":"a","kind":"k","action":"redact","v":1}]}`,
		`{"kind":"custom","time":"2026-01-01T00:00:00Z","kind":"error"}`,
		` { "kind" : "custom" , "time" : "2026-01-01T00:00:00Z" } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err1 := Parse(in)
		want, err2 := referenceParse(in)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Parse and the encoding/json reference disagree on %q:\n Parse: %v\n reference: %v", in, err1, err2)
		}
		if err1 != nil {
			if !strings.Contains(err1.Error(), "") || !isInvalid(err1) {
				t.Fatalf("error %v does not wrap ErrInvalid", err1)
			}
			return
		}
		c1, _ := got.Canonical()
		c2, _ := want.Canonical()
		if !bytes.Equal(c1, c2) {
			t.Fatalf("different events from %q:\n%s\n%s", in, c1, c2)
		}
	})
}

func isInvalid(err error) bool {
	for e := err; e != nil; {
		if e == ErrInvalid {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			if m, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range m.Unwrap() {
					if isInvalid(x) {
						return true
					}
				}
			}
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// TestDecodePayloadsIndependent: the payloads of one event share a buffer, so each must end
// where it ends: appending to one (as a sanitizer rewriting it may) leaves the others as decoded.
func TestDecodePayloadsIndependent(t *testing.T) {
	ev, err := Decode([]byte(`{"kind":"tool_call","tool_name":"t","arguments":{"b":1, "a":[2]},"result":{"ok":true},"metadata":{"m":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Arguments) != `{"a":[2],"b":1}` || string(ev.Result) != `{"ok":true}` || string(ev.Metadata) != `{"m":"x"}` {
		t.Fatalf("payloads %s %s %s", ev.Arguments, ev.Result, ev.Metadata)
	}
	_ = append(ev.Arguments, "XXXXXXXX"...)
	_ = append(ev.Result, "YYYYYYYY"...)
	if string(ev.Result) != `{"ok":true}` || string(ev.Metadata) != `{"m":"x"}` {
		t.Errorf("an append to one payload changed another: %s %s", ev.Result, ev.Metadata)
	}
}
