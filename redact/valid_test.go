package redact

import (
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// TestSanitizeKeepsValidEventsValid: the ledger validates an event once, before sanitizing it,
// so sanitizing must never make a valid event invalid — even where replacements are longer than
// what they replace, in a field at its length limit.
func TestSanitizeKeepsValidEventsValid(t *testing.T) {
	r := testRedactor(t)
	for i := range event.Fields {
		f := &event.Fields[i]
		if f.Type != event.TypeString || f.MaxLen == 0 || f.Class == event.ClassEnum || f.Class == event.ClassDigest {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			ev := &event.Event{Kind: event.KindCustom, Time: time.Now(), BreakGlass: true, BreakGlassReason: "ER"}
			// Short e-mail addresses and SSNs, whose markers and pseudonyms are longer.
			v := strings.Repeat("a@b.io 123-45-6789 ", f.MaxLen)[:f.MaxLen]
			*f.Str(ev) = v
			if err := ev.Validate(); err != nil {
				t.Fatalf("the planted event is invalid already: %v", err)
			}
			if err := r.Sanitize(ev); err != nil {
				t.Fatal(err)
			}
			if err := ev.Validate(); err != nil {
				t.Errorf("sanitized event is invalid: %v (%d bytes)", err, len(*f.Str(ev)))
			}
			if strings.Contains(*f.Str(ev), "a@b.io") {
				t.Errorf("kept the address: %.80s", *f.Str(ev))
			}
		})
	}
}
