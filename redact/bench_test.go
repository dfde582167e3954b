package redact

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// typicalToolCall is a ~1 KiB tool-call event: an arguments object with a nested array and a JSON
// string, and a ~600-byte result.
func typicalToolCall() *event.Event {
	return &event.Event{
		ID: "e", Kind: event.KindToolCall, Time: time.Unix(0, 0), ToolName: "update_order_status", UserID: "usr_98765",
		Arguments: json.RawMessage(`{"order_id":"ORD-456","status":"cancelled","items":[{"sku":"SKU-1","qty":2},{"sku":"SKU-9","qty":1}],"options":"{\"notify\":true,\"channel\":\"email\"}","note":"customer asked to cancel before delivery"}`),
		Result:    json.RawMessage(`{"success":false,"error":"Cannot cancel shipped order","order_id":"ORD-456","customer_id":"C-1001","status":"shipped","history":[` + strings.Repeat(`{"at":"2026-03-01T10:00:00Z","event":"label printed"},`, 9) + `{"at":"2026-03-02T09:00:00Z","event":"shipped"}]}`),
		Error:     "Cannot cancel shipped order", DurationMS: 38,
	}
}

func BenchmarkSanitizeToolCall(b *testing.B) { benchSanitize(b, typicalToolCall(), 0) }

// benchSanitize sanitizes copies of ev and checks each records the redactions it should.
func benchSanitize(b *testing.B, ev *event.Event, redactions int) {
	r := testRedactor(b)
	c, _ := ev.Canonical()
	b.SetBytes(int64(len(c)))
	var e event.Event
	for b.Loop() {
		e = *ev
		if err := r.Sanitize(&e); err != nil {
			b.Fatal(err)
		}
		if len(e.Redactions) != redactions {
			b.Fatalf("%d redactions, want %d: %+v", len(e.Redactions), redactions, e.Redactions)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSanitizeToolCallWithFindings is the same event carrying what the sanitizer must
// replace: a password field, a card number, an e-mail address and a GitHub token in text.
func BenchmarkSanitizeToolCallWithFindings(b *testing.B) {
	ev := typicalToolCall()
	ev.Arguments = json.RawMessage(`{"order_id":"ORD-456","status":"cancelled","password":"hunter2hunter2","items":[{"sku":"SKU-1","qty":2},{"sku":"SKU-9","qty":1}],"options":"{\"notify\":true,\"channel\":\"email\",\"to\":\"jane.doe@example.com\"}","note":"refund to card 4111 1111 1111 1111, deploy key ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"}`)
	benchSanitize(b, ev, 4)
}

// BenchmarkSanitizeLoadEvent is the event the load command (cmd/agentaudit-load) posts, with its
// id: a long digit run (a timestamp) that wakes the card, SSN and phone detectors, and finds
// nothing.
func BenchmarkSanitizeLoadEvent(b *testing.B) {
	var ev event.Event
	ev = event.Event{ID: "load-1764771234567890123-4242", SessionID: "load", Kind: event.KindToolCall, ToolName: "update_order_status",
		UserID: "usr_1", AgentID: "load", Time: time.Unix(0, 0),
		Arguments:  json.RawMessage(`{"order_id":"ORD-456","note":"` + strings.Repeat("n", 200) + `"}`),
		Result:     json.RawMessage(`{"success":false,"error":"Cannot cancel shipped order","detail":"` + strings.Repeat("d", 500) + `"}`),
		DurationMS: 38, Success: event.Bool(false)}
	benchSanitize(b, &ev, 0)
}
