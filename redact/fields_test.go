package redact

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// TestSanitizeEveryClassifiedField plants a secret and an e-mail address in every field that the
// event's field table classes as free text, content, payload or identifier, and checks neither
// reaches the canonical bytes: a field the table classifies is sanitized without a list of its
// own here.
func TestSanitizeEveryClassifiedField(t *testing.T) {
	const token, email = "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5", "jane.doe@example.com"
	r := testRedactor(t)
	for i := range event.Fields {
		f := &event.Fields[i]
		switch f.Class {
		case event.ClassText, event.ClassContent, event.ClassPayload, event.ClassIdentifier:
		default:
			continue
		}
		for _, secret := range []string{token, email} {
			t.Run(f.Name+"/"+secret[:4], func(t *testing.T) {
				ev := &event.Event{Kind: event.KindToolCall, ToolName: "lookup", Time: time.Now()}
				if f.Type == event.TypeJSON {
					*f.JSON(ev) = json.RawMessage(`{"note":"see ` + secret + ` now"}`)
				} else {
					*f.Str(ev) = "x " + secret
				}
				if err := r.Sanitize(ev); err != nil {
					t.Fatal(err)
				}
				c, err := ev.Canonical()
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(c, []byte(secret)) || strings.Contains(string(c), secret[:12]) {
					t.Errorf("%s kept %q: %s", f.Name, secret, c)
				}
			})
		}
	}
}
