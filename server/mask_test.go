package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/event"
)

// TestMaskedFollowsFieldTable: a reader sees no value of a field the table classes as masked,
// and every value of the others; an auditor sees everything.
func TestMaskedFollowsFieldTable(t *testing.T) {
	ev := &event.Event{Kind: event.KindToolCall}
	for i := range event.Fields {
		f := &event.Fields[i]
		switch f.Type {
		case event.TypeJSON:
			*f.JSON(ev) = json.RawMessage(`{"secret_of":"` + f.Name + `"}`)
		case event.TypeString:
			if f.Class != event.ClassEnum && f.Class != event.ClassDigest {
				*f.Str(ev) = "secret_of:" + f.Name
			}
		}
	}
	reader := masked(ev, apikey.Key{Role: apikey.Reader})
	auditor := masked(ev, apikey.Key{Role: apikey.Auditor})
	for i := range event.Fields {
		f := &event.Fields[i]
		var r, a string
		switch f.Type {
		case event.TypeJSON:
			r, a = string(*f.JSON(reader)), string(*f.JSON(auditor))
		case event.TypeString:
			r, a = *f.Str(reader), *f.Str(auditor)
		default:
			continue
		}
		if a == "" || f.Class == event.ClassEnum {
			continue // enums and digests are not planted above
		}
		if !strings.Contains(a, f.Name) {
			t.Errorf("auditor: %s = %q", f.Name, a)
		}
		if f.Class.Masked() == strings.Contains(r, "secret_of") {
			t.Errorf("reader: %s (masked %v) = %q", f.Name, f.Class.Masked(), r)
		}
	}
	if !strings.Contains(string(ev.Arguments), "secret_of") {
		t.Error("masking changed the stored event")
	}
}
