package event

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFieldsCoverEvent pins the one field table to the struct: every member of Event has exactly
// one entry, with a class, a type matching its Go type, and an accessor that points at that very
// member. A member added to Event without an entry fails here, before it can reach the disk
// unclassified (and so unsanitized).
func TestFieldsCoverEvent(t *testing.T) {
	goType := map[Type]reflect.Type{
		TypeString: reflect.TypeFor[string](), TypeJSON: reflect.TypeFor[json.RawMessage](),
		TypeInt: reflect.TypeFor[int64](), TypeFloat: reflect.TypeFor[float64](), TypeBool: reflect.TypeFor[bool](),
		TypeOptBool: reflect.TypeFor[*bool](), TypeTime: reflect.TypeFor[time.Time](),
		TypeRedactions: reflect.TypeFor[[]Redaction](),
	}
	var ev Event
	v := reflect.ValueOf(&ev).Elem()
	st := v.Type()
	inTable := map[string]bool{}
	for i := range Fields {
		inTable[Fields[i].Name] = true
	}
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		f := FieldByName(name)
		if f == nil {
			t.Errorf("Event.%s (%q) is not in event.Fields: add it with a class, or it is neither sanitized nor masked", sf.Name, name)
			continue
		}
		delete(inTable, name)
		if f.Class == 0 {
			t.Errorf("field %q has no class", name)
		}
		want := goType[f.Type]
		if want == nil || sf.Type.Kind() != want.Kind() || (sf.Type.Kind() != reflect.String && sf.Type != want) {
			t.Errorf("field %q: table type %d, Go type %s", name, f.Type, sf.Type)
		}
		if got, want := reflect.ValueOf(f.Ptr(&ev)).Pointer(), v.Field(i).Addr().Pointer(); got != want {
			t.Errorf("field %q: accessor points at another member", name)
		}
		if f.Class == ClassEnum && len(f.Values) == 0 {
			t.Errorf("enum field %q lists no values", name)
		}
		if (f.Class == ClassPayload || f.Class == ClassRecord) != (f.Type == TypeJSON) {
			t.Errorf("field %q: only JSON fields are payload or record, and every JSON field is one", name)
		}
	}
	for name := range inTable {
		t.Errorf("event.Fields has %q, which Event lacks", name)
	}
	if !slices.IsSortedFunc(Fields, func(a, b Field) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("event.Fields must be sorted by name: the canonical encoder writes them in table order")
	}
}

// TestEveryFieldRoundTrips fills every field of the table and checks the canonical encoder
// writes it and the decoder reads it back: a field in the table but missing from either fails.
func TestEveryFieldRoundTrips(t *testing.T) {
	var ev Event
	for i := range Fields {
		f := &Fields[i]
		switch p := f.Ptr(&ev).(type) {
		case *string:
			switch {
			case f.Class == ClassEnum:
				*p = f.Values[len(f.Values)-1]
			case f.Class == ClassDigest:
				*p = strings.Repeat("ab", 32)
			default:
				*p = f.Name + "-value"
			}
		case *json.RawMessage:
			*p = json.RawMessage(`{"` + f.Name + `":1}`)
		case *int64:
			*p = int64(len(f.Name))
		case *float64:
			*p = float64(len(f.Name)) + 0.5
		case *bool:
			*p = true
		case **bool:
			*p = Bool(false)
		case *time.Time:
			*p = time.Date(2026, 1, 2, 3, 4, 5, len(f.Name), time.UTC)
		case *[]Redaction:
			*p = []Redaction{{Path: "arguments.password", Kind: "password", Action: "redact"}}
		default:
			t.Fatalf("field %q: accessor of unknown type %T", f.Name, p)
		}
	}
	c, err := ev.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(c, &members); err != nil {
		t.Fatal(err)
	}
	if len(members) != len(Fields) {
		t.Errorf("canonical form has %d members, the table %d fields", len(members), len(Fields))
	}
	back, err := Parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, &ev) {
		t.Errorf("round trip changed the event:\n got %+v\nwant %+v", back, &ev)
	}
}
